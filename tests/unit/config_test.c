/* config_test.c - unit tests for src/policy/config*.c: the built-in default, loading
 * full and broken files (each error checked with its exact "file:line:" prefix),
 * listeners, number suffixes, users and aliases files, and config_resolve.
 * Files are written into a temporary directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/config.h"
#include "util/limits.h"
#include "tmpdir.h"

static char test_dir[256];

static int config_test_setup(void **state)
{
	tmpdir_make(test_dir, sizeof(test_dir), "tern-config-test");
	return 0;
}

static int config_test_teardown(void **state)
{
	return tmpdir_remove(test_dir);
}

/* Write test_dir/name with text; returns the full path (static buffer per slot). */
static const char *config_test_write(const char *name, const char *text)
{
	static char paths[4][512];
	static int slot;
	char *path = paths[slot++ % 4];
	FILE *f;

	snprintf(path, 512, "%s/%s", test_dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	return path;
}

static struct config *config_test_load(const char *text)
{
	char err[512] = "";
	const char *path = config_test_write("t.conf", text);
	struct config *c = config_load(path, err, sizeof(err));

	if (c == NULL)
		fail_msg("load failed: %s", err);
	return c;
}

/* Load text as t.conf, expect failure with "<file>:<line>: " + a message containing
 * want. file is "t.conf" or the name of the users/aliases file. */
static void config_test_expect_err(const char *text, const char *file, unsigned line,
                                   const char *want)
{
	char err[512] = "", prefix[600];
	const char *path = config_test_write("t.conf", text);
	struct config *c = config_load(path, err, sizeof(err));

	if (c != NULL) {
		config_free(c);
		fail_msg("expected an error containing '%s' for:\n%s", want, text);
	}
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s/%s:%u: ", test_dir, file, line);
	else
		snprintf(prefix, sizeof(prefix), "%s/%s: ", test_dir, file);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error '%s' lacks prefix '%s'", err, prefix);
	if (strstr(err + strlen(prefix), want) == NULL)
		fail_msg("error '%s' lacks '%s'", err, want);
}

static uint16_t config_test_port(const struct config_listener *l)
{
	if (l->sa.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&l->sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&l->sa)->sin6_port);
}

/* ---- resolve collector ---- */

struct config_test_got {
	char v[32][400];
	int n;
};

static void config_test_emit(void *arg, const char *user, const char *domain)
{
	struct config_test_got *g = arg;

	assert_true(g->n < 32);
	snprintf(g->v[g->n++], sizeof(g->v[0]), "%s@%s", user, domain);
}

static bool config_test_has(const struct config_test_got *g, const char *s)
{
	for (int i = 0; i < g->n; i++) {
		if (strcmp(g->v[i], s) == 0)
			return true;
	}
	return false;
}

static int config_test_resolve(const struct config *c, const char *user, const char *domain,
                               struct config_test_got *g)
{
	int rc;

	memset(g, 0, sizeof(*g));
	rc = config_resolve(c, user, domain, config_test_emit, g);
	if (rc >= 0)
		assert_int_equal(rc, g->n);
	return rc;
}

/* ---- tests ---- */

static void test_default(void **state)
{
	struct config *c = config_default();
	struct sockaddr_in *s4;

	assert_non_null(c);
	assert_string_equal(c->source, "(built-in default)");
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].name, "127.0.0.1:2525");
	s4 = (struct sockaddr_in *)&c->listeners[0].sa;
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 2525);
	assert_int_equal(ntohl(s4->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(c->listeners[0].salen, sizeof(struct sockaddr_in));
	assert_true(c->listeners[0].lenient_lf);
	assert_true(c->listeners[0].vrfy);
	assert_true(c->listeners[0].expn);
	assert_false(c->listeners[0].require_helo);
	assert_true(c->accept_any_domain);
	assert_non_null(c->local_domains);
	assert_null(c->local_domains[0]);
	assert_int_equal(c->nlocal_domains, 0);
	assert_string_equal(c->data_dir, "./var");
	assert_string_equal(c->mailbox_pattern, "mail/%d/%u/Maildir");
	assert_true(strlen(c->hostname) > 0);
	assert_int_equal(c->max_msg_size, 35u * 1024 * 1024);
	assert_int_equal(c->max_rcpts, 1000);
	assert_int_equal(c->max_errors, 20);
	assert_int_equal(c->cmd_timeout, 300);
	assert_int_equal(c->max_conn, 10000);
	assert_int_equal(c->max_conn_per_ip, 50);
	assert_int_equal(c->delivery_threads, 2);
	assert_false(c->check_users);
	assert_false(c->use_syslog);
	assert_null(c->users);
	assert_null(c->aliases);
	/* capture mode: everything is local and every user known */
	assert_true(config_is_local_domain(c, "anything.example"));
	assert_true(config_is_known_user(c, "whoever", "anything.example"));
	config_free(c);
	config_free(NULL);
}

static const char config_test_full[] =
	"# production-like\n"
	"hostname = mx.example.org\n"
	"data_dir = /var/spool/tern   # inline comment\n"
	"mailbox_pattern = /srv/mail/%d/%u\n"
	"local_domains = example.org, Example.NET\n"
	"local_domains = example.com example.org\n"
	"users = users\n"
	"aliases = aliases\n"
	"max_message_size = 50M\n"
	"max_recipients = 200\n"
	"max_errors = 5\n"
	"command_timeout = 10m\n"
	"max_connections = 500\n"
	"max_connections_per_ip = 7\n"
	"delivery_threads = 4\n"
	"syslog = yes\n"
	"\n"
	"[listener 0.0.0.0:25]\n"
	"expn = no\n"
	"vrfy = no\n"
	"\n"
	"[listener [::]:25]  # IPv6\n"
	"require_helo = yes\n"
	"[listener 127.0.0.1:2525]\n"
	"lenient_lf = yes\n";

static void test_full_file(void **state)
{
	struct config *c;
	struct sockaddr_in6 *s6;

	config_test_write("users", "alice:$6$salt$hash\nbob@example.net\n");
	config_test_write("aliases", "postmaster: alice\n");
	c = config_test_load(config_test_full);
	assert_string_equal(c->hostname, "mx.example.org");
	assert_string_equal(c->data_dir, "/var/spool/tern");
	assert_string_equal(c->mailbox_pattern, "/srv/mail/%d/%u");
	assert_int_equal(c->nlocal_domains, 3);
	assert_string_equal(c->local_domains[0], "example.org");
	assert_string_equal(c->local_domains[1], "example.net");
	assert_string_equal(c->local_domains[2], "example.com");
	assert_null(c->local_domains[3]);
	assert_false(c->accept_any_domain);
	assert_true(c->check_users);
	assert_non_null(c->users);
	assert_non_null(c->aliases);
	assert_int_equal(c->max_msg_size, 50u * 1024 * 1024);
	assert_int_equal(c->max_rcpts, 200);
	assert_int_equal(c->max_errors, 5);
	assert_int_equal(c->cmd_timeout, 600);
	assert_int_equal(c->max_conn, 500);
	assert_int_equal(c->max_conn_per_ip, 7);
	assert_int_equal(c->delivery_threads, 4);
	assert_true(c->use_syslog);
	assert_int_equal(c->nlisteners, 3);
	assert_string_equal(c->listeners[0].name, "0.0.0.0:25");
	assert_false(c->listeners[0].lenient_lf);
	assert_false(c->listeners[0].vrfy);
	assert_false(c->listeners[0].expn);
	assert_false(c->listeners[0].require_helo);
	assert_string_equal(c->listeners[1].name, "[::]:25");
	s6 = (struct sockaddr_in6 *)&c->listeners[1].sa;
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 25);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr));
	assert_int_equal(c->listeners[1].salen, sizeof(struct sockaddr_in6));
	assert_false(c->listeners[1].lenient_lf);
	assert_true(c->listeners[1].vrfy);
	assert_true(c->listeners[1].expn);
	assert_true(c->listeners[1].require_helo);
	assert_true(c->listeners[2].lenient_lf);
	assert_true(strstr(c->source, "t.conf") != NULL);

	assert_true(config_is_local_domain(c, "example.org"));
	assert_true(config_is_local_domain(c, "EXAMPLE.net"));
	assert_true(config_is_local_domain(c, "example.com."));
	assert_false(config_is_local_domain(c, "example.edu"));
	assert_false(config_is_local_domain(c, "sub.example.org"));
	assert_false(config_is_local_domain(c, ""));
	assert_false(config_is_local_domain(c, NULL));
	assert_true(config_is_known_user(c, "alice", "example.com"));
	assert_true(config_is_known_user(c, "bob", "example.net"));
	assert_false(config_is_known_user(c, "bob", "example.org"));
	assert_false(config_is_known_user(c, "carol", "example.org"));
	assert_true(config_is_known_user(c, "postmaster", "example.org"));
	config_free(c);
}

static void test_no_listener_is_strict(void **state)
{
	struct config *c = config_test_load("hostname = mx.example.org\n");

	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].name, "127.0.0.1:2525");
	assert_false(c->listeners[0].lenient_lf);
	assert_true(c->accept_any_domain);
	assert_false(c->check_users);
	config_free(c);

	/* empty and comment-only files are valid too */
	c = config_test_load("# nothing\n\n   \t\n");
	assert_int_equal(c->nlisteners, 1);
	config_free(c);
	c = config_test_load("");
	assert_int_equal(c->nlisteners, 1);
	config_free(c);
}

static void test_accept_any_and_check_users(void **state)
{
	struct config *c;

	config_test_write("users", "alice\n");
	c = config_test_load("local_domains = example.org\naccept_any_domain = yes\n");
	assert_true(c->accept_any_domain);
	assert_int_equal(c->nlocal_domains, 1);
	config_free(c);
	c = config_test_load("users = users\ncheck_users = no\n");
	assert_false(c->check_users);
	assert_true(config_is_known_user(c, "nobody", "x.org"));
	config_free(c);
	c = config_test_load("users = users\n");
	assert_true(c->check_users);
	assert_false(config_is_known_user(c, "nobody", "x.org"));
	assert_true(config_is_known_user(c, "ALICE", "x.org"));
	config_free(c);
	/* CRLF line ends and true/false/on/off are accepted */
	c = config_test_load("syslog = On\r\n[listener 127.0.0.1:25]\r\nvrfy = FALSE\r\n");
	assert_true(c->use_syslog);
	assert_false(c->listeners[0].vrfy);
	config_free(c);
}

static void test_errors(void **state)
{
	char longline[5000];

	config_test_write("users", "alice\n");
	config_test_write("aliases", "a: alice\n");
	config_test_expect_err("hostname = a\nbogus = 1\n", "t.conf", 2, "unknown key 'bogus'");
	config_test_expect_err("syslog = maybe\n", "t.conf", 1, "expected yes or no");
	config_test_expect_err("\n[server]\n", "t.conf", 2, "unknown section '[server]'");
	config_test_expect_err("[listener 127.0.0.1:25]\n[listener 127.0.0.1:25]\n", "t.conf", 2,
	                       "duplicate listener 127.0.0.1:25");
	config_test_expect_err("[listener [::1]:25]\n[listener [0:0::1]:25]\n", "t.conf", 2,
	                       "duplicate listener");
	config_test_expect_err("# c\nusers = nonexistent\n", "t.conf", 2, "users: cannot read");
	config_test_expect_err("aliases = /nonexistent/aliases\n", "t.conf", 1,
	                       "aliases: cannot read");
	config_test_expect_err("[listener localhost:25]\n", "t.conf", 1,
	                       "not a numeric IPv4 address");
	config_test_expect_err("[listener 127.0.0.1:0]\n", "t.conf", 1, "bad port '0'");
	config_test_expect_err("[listener 127.0.0.1:65536]\n", "t.conf", 1, "bad port");
	config_test_expect_err("[listener 127.0.0.1]\n", "t.conf", 1, "missing ':PORT'");
	config_test_expect_err("[listener ::1:25]\n", "t.conf", 1, "must be in brackets");
	config_test_expect_err("[listener [::1:25]\n", "t.conf", 1, "unbalanced brackets");
	config_test_expect_err("[listener [fe80::zz]:25]\n", "t.conf", 1,
	                       "not a numeric IPv6 address");
	config_test_expect_err("[listener 127.0.0.1:25\n", "t.conf", 1, "unbalanced brackets");
	config_test_expect_err("[listener 127.0.0.1:25]]\n", "t.conf", 1, "unbalanced brackets");
	config_test_expect_err("[listener]\n", "t.conf", 1, "needs an address");
	config_test_expect_err("max_errors = 99999999999999999999999\n", "t.conf", 1,
	                       "too large");
	config_test_expect_err("max_errors = 4294967296\n", "t.conf", 1, "too large");
	config_test_expect_err("max_message_size = 17179869184G\n", "t.conf", 1, "too large");
	config_test_expect_err("max_recipients = 99\n", "t.conf", 1, "too small (at least 100)");
	config_test_expect_err("max_errors = 0\n", "t.conf", 1, "too small");
	config_test_expect_err("max_errors = -1\n", "t.conf", 1, "expected a number");
	config_test_expect_err("max_message_size = 10T\n", "t.conf", 1, "bad number");
	config_test_expect_err("max_message_size = 10 M\n", "t.conf", 1, "bad number");
	config_test_expect_err("command_timeout = 5d\n", "t.conf", 1, "bad number");
	config_test_expect_err("command_timeout = 0\n", "t.conf", 1, "too small");
	config_test_expect_err("delivery_threads = 1000\n", "t.conf", 1, "too large");
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	{
		char text[sizeof(longline) + 64];

		snprintf(text, sizeof(text), "hostname = a\n# %s\n", longline);
		config_test_expect_err(text, "t.conf", 2, "line too long");
	}
	config_test_expect_err("[listener 127.0.0.1:25]\nhostname = x\n", "t.conf", 2,
	                       "is a global key");
	config_test_expect_err("vrfy = no\n", "t.conf", 1, "belongs in a [listener");
	config_test_expect_err("max_errors = 3\nmax_errors = 4\n", "t.conf", 2,
	                       "duplicate key 'max_errors' (first on line 1)");
	config_test_expect_err("[listener 127.0.0.1:25]\nvrfy = no\nvrfy = yes\n", "t.conf", 3,
	                       "duplicate key 'vrfy'");
	config_test_expect_err("hostname =\n", "t.conf", 1, "empty value for 'hostname'");
	config_test_expect_err("hostname = bad_host!\n", "t.conf", 1, "not a valid host name");
	config_test_expect_err("just some words\n", "t.conf", 1, "expected 'key = value'");
	config_test_expect_err("= x\n", "t.conf", 1, "missing key");
	config_test_expect_err("local_domains = ok.org bad..org\n", "t.conf", 1,
	                       "'bad..org' is not a valid domain");
	config_test_expect_err("mailbox_pattern = mail/%x\n", "t.conf", 1, "unknown escape");
	config_test_expect_err("mailbox_pattern = ../%u\n", "t.conf", 1, "'..' is not allowed");
	config_test_expect_err("\n\naccept_any_domain = no\n", "t.conf", 3,
	                       "needs local_domains");
	config_test_expect_err("check_users = yes\n", "t.conf", 1, "needs a users or aliases");
	{
		/* a NUL byte: write by hand since the helper uses strlen */
		char path[512];
		char err[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/nul.conf", test_dir);
		f = fopen(path, "w");
		assert_non_null(f);
		fwrite("syslog = no\nhost\0name = x\n", 1, 26, f);
		fclose(f);
		assert_null(config_load(path, err, sizeof(err)));
		snprintf(path, sizeof(path), "%s/nul.conf:2: NUL byte in line", test_dir);
		assert_string_equal(err, path);
	}
	{
		/* too many listeners */
		char text[4096];
		size_t n = 0;

		for (int i = 0; i <= CONFIG_LISTENERS_MAX; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "[listener 127.0.0.1:%d]\n",
			                      1000 + i);
		config_test_expect_err(text, "t.conf", CONFIG_LISTENERS_MAX + 1,
		                       "too many listeners");
	}
	{
		char err[512], want[600], path[512];

		snprintf(want, sizeof(want), "%s/missing.conf: cannot open: ", test_dir);
		snprintf(path, sizeof(path), "%s/missing.conf", test_dir);
		assert_null(config_load(path, err, sizeof(err)));
		assert_memory_equal(err, want, strlen(want));
	}
}

static void test_errors_in_users_and_aliases(void **state)
{
	config_test_write("u1", "alice\n# c\n\nbad user\n");
	config_test_expect_err("users = u1\n", "u1", 4, "bad user name 'bad user'");
	config_test_write("u2", "alice\nALICE:$1$x\n");
	config_test_expect_err("users = u2\n", "u2", 2, "duplicate user 'alice' (first on line 1)");
	config_test_write("u3", "alice:\n");
	config_test_expect_err("users = u3\n", "u3", 1, "empty password hash");
	config_test_write("u4", "alice:$6$a:1000:1000\n");
	config_test_expect_err("users = u4\n", "u4", 1, "bad password hash");
	config_test_write("u5", "alice@bad_domain\n");
	config_test_expect_err("users = u5\n", "u5", 1, "bad user name");
	config_test_write("u6", "../etc\n");
	config_test_expect_err("users = u6\n", "u6", 1, "bad user name");

	config_test_write("a1", "# aliases\nroot: alice\nsales: |/usr/bin/prog\n");
	config_test_expect_err("aliases = a1\n", "a1", 3, "pipe target '|/usr/bin/prog' refused");
	config_test_write("a2", "list: :include:/etc/list\n");
	config_test_expect_err("aliases = a2\n", "a2", 1, ":include: lists are not supported");
	config_test_write("a3", "log: alice,\n  /var/log/mail\n");
	config_test_expect_err("aliases = a3\n", "a3", 2, "file target '/var/log/mail' refused");
	config_test_write("a4", "\n  alice\n");
	config_test_expect_err("aliases = a4\n", "a4", 2, "continuation line without an alias");
	config_test_write("a5", "root alice\n");
	config_test_expect_err("aliases = a5\n", "a5", 1, "missing ':'");
	config_test_write("a6", "root: alice\nRoot: bob\n");
	config_test_expect_err("aliases = a6\n", "a6", 2, "duplicate alias 'root' (first on line 1)");
	config_test_write("a7", "root:\n\nx: y\n");
	config_test_expect_err("aliases = a7\n", "a7", 1, "alias 'root' has no targets");
	config_test_write("a8", "x: y\nroot:   \n");
	config_test_expect_err("aliases = a8\n", "a8", 2, "alias 'root' has no targets");
	config_test_write("a9", "x: \"a b\"\n");
	config_test_expect_err("aliases = a9\n", "a9", 1, "quoted target");
	config_test_write("a10", "x: a b\n");
	config_test_expect_err("aliases = a10\n", "a10", 1, "bad target 'a b'");
	config_test_write("a11", ": a\n");
	config_test_expect_err("aliases = a11\n", "a11", 1, "empty alias name");
}

static void test_listeners(void **state)
{
	struct config *c = config_default();
	char err[512] = "";

	assert_non_null(c);
	assert_int_equal(config_add_listener(c, "[::1]:2526", false, err, sizeof(err)), 0);
	assert_int_equal(c->nlisteners, 2);
	assert_string_equal(c->listeners[1].name, "[::1]:2526");
	assert_int_equal(c->listeners[1].sa.ss_family, AF_INET6);
	assert_int_equal(config_test_port(&c->listeners[1]), 2526);
	assert_true(c->listeners[1].lenient_lf); /* loopback */
	assert_true(c->listeners[1].vrfy);
	assert_true(c->listeners[1].expn);

	assert_int_equal(config_add_listener(c, "127.1.2.3:25", true, err, sizeof(err)), 0);
	assert_int_equal(c->nlisteners, 1);
	assert_true(c->listeners[0].lenient_lf); /* 127.0.0.0/8 */
	assert_int_equal(config_add_listener(c, "0.0.0.0:25", false, err, sizeof(err)), 0);
	assert_false(c->listeners[1].lenient_lf);
	assert_int_equal(config_add_listener(c, "[2001:db8::1]:587", false, err, sizeof(err)), 0);
	assert_false(c->listeners[2].lenient_lf);
	assert_int_equal(config_test_port(&c->listeners[2]), 587);
	assert_int_equal(config_add_listener(c, "[::ffff:127.0.0.1]:26", false, err, sizeof(err)),
	                 0);
	assert_true(c->listeners[3].lenient_lf);
	assert_int_equal(c->nlisteners, 4);

	assert_int_equal(config_add_listener(c, "0.0.0.0:25", false, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "given twice"));
	assert_int_equal(config_add_listener(c, "localhost:25", false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad listener 'localhost:25'"));
	assert_non_null(strstr(err, "not a numeric"));
	/* a bad spec with replace=true leaves the listeners alone */
	assert_int_equal(config_add_listener(c, "1.2.3.4:99999", true, err, sizeof(err)), -EINVAL);
	assert_int_equal(c->nlisteners, 4);
	assert_int_equal(config_add_listener(c, "1.2.3.4:", false, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_add_listener(c, ":25", false, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_add_listener(c, "1.2.3.4:+25", false, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_add_listener(c, "[::1]25", false, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_add_listener(c, "[::1:25", false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "missing ']'"));
	assert_int_equal(config_add_listener(c, "1.2.3.4:65535", false, err, sizeof(err)), 0);
	assert_int_equal(config_add_listener(c, "1.2.3.4:1", false, err, sizeof(err)), 0);
	for (int i = 0; c->nlisteners < CONFIG_LISTENERS_MAX; i++) {
		char spec[64];

		snprintf(spec, sizeof(spec), "10.0.0.1:%d", 1000 + i);
		assert_int_equal(config_add_listener(c, spec, false, err, sizeof(err)), 0);
	}
	assert_int_equal(config_add_listener(c, "10.0.0.2:1", false, err, sizeof(err)), -ENOSPC);
	config_free(c);
}

static void test_size_suffixes(void **state)
{
	static const struct {
		const char *v;
		uint64_t want;
	} cases[] = {
		{"1", 1},
		{"1000", 1000},
		{"10k", 10240},
		{"10K", 10240},
		{"35m", 35u * 1024 * 1024},
		{"35M", 35u * 1024 * 1024},
		{"2g", 2ull * 1024 * 1024 * 1024},
		{"2G", 2ull * 1024 * 1024 * 1024},
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *c;

		snprintf(text, sizeof(text), "max_message_size = %s\n", cases[i].v);
		c = config_test_load(text);
		assert_int_equal(c->max_msg_size, cases[i].want);
		config_free(c);
	}
	{
		static const struct {
			const char *v;
			unsigned want;
		} t[] = {{"1", 1}, {"45s", 45}, {"5m", 300}, {"2h", 7200}, {"600", 600}};

		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			struct config *c;

			snprintf(text, sizeof(text), "command_timeout = %s\n", t[i].v);
			c = config_test_load(text);
			assert_int_equal(c->cmd_timeout, t[i].want);
			config_free(c);
		}
	}
}

static const char config_test_aliases[] =
	"# sample aliases(5) file\n"
	"Postmaster: root\n"
	"root: alice,\n"
	"  bob\n"
	"# a comment between continuation lines\n"
	"\tcarol@example.net , ALICE\n"
	"staff: root, dave@elsewhere.example, staff\n"
	"loop1: loop2\n"
	"loop2: loop1\n"
	"self: self, bob\n"
	"d0: d1\nd1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\nd9: d10\n"
	"d10: d11\nd11: alice\n"
	"e1: e2\ne2: e3\ne3: e4\ne4: e5\ne5: e6\ne6: e7\ne7: e8\ne8: e9\ne9: e10\ne10: alice\n"
	"ghost: nobody\n"
	"sales@example.net: bob\n"
	"sales: carol\n"
	"wide: w1, w2, w3, w1\nw1: x1, x2\nw2: x1, x2\nw3: x2, x1\nx1: alice, bob\nx2: bob, x1\n";

static void test_aliases_and_resolve(void **state)
{
	struct config_test_got g;
	const char *const *t;
	struct config *c;
	size_t n;

	config_test_write("users", "alice:$2b$05$abcdefghijklmnopqrstuv\nbob\ncarol@example.net\n"
	                           "loop1\nd11\n");
	config_test_write("aliases", config_test_aliases);
	c = config_test_load("local_domains = example.org example.net\n"
	                     "users = users\naliases = aliases\n");
	assert_true(c->check_users);

	t = config_alias_lookup(c, "root", &n);
	assert_non_null(t);
	assert_int_equal(n, 3); /* alice listed twice counts once */
	assert_string_equal(t[0], "alice");
	assert_string_equal(t[1], "bob");
	assert_string_equal(t[2], "carol@example.net");
	assert_null(t[3]);
	assert_non_null(config_alias_lookup(c, "ROOT", &n));
	assert_null(config_alias_lookup(c, "alice", &n));
	assert_int_equal(n, 0);
	t = config_alias_lookup(c, "postmaster", &n);
	assert_int_equal(n, 1);
	assert_string_equal(t[0], "root");

	/* plain user; case folded */
	assert_int_equal(config_test_resolve(c, "Alice", "Example.ORG", &g), 1);
	assert_string_equal(g.v[0], "alice@example.org");
	/* unknown */
	assert_int_equal(config_test_resolve(c, "zed", "example.org", &g), -1);
	assert_false(config_is_known_user(c, "zed", "example.org"));
	/* domain-bound user only in its own domain */
	assert_int_equal(config_test_resolve(c, "carol", "example.net", &g), 1);
	assert_int_equal(config_test_resolve(c, "carol", "example.org", &g), -1);
	/* continuation lines, bare targets take the recipient's domain */
	assert_int_equal(config_test_resolve(c, "root", "example.org", &g), 3);
	assert_true(config_test_has(&g, "alice@example.org"));
	assert_true(config_test_has(&g, "bob@example.org"));
	assert_true(config_test_has(&g, "carol@example.net"));
	/* recursion through postmaster -> root; dedupe; remote target kept */
	assert_int_equal(config_test_resolve(c, "staff", "example.org", &g), 4);
	assert_true(config_test_has(&g, "dave@elsewhere.example"));
	assert_false(config_test_has(&g, "staff@example.org")); /* loop cut, not a user */
	/* loops: loop1 -> loop2 -> loop1 stops at loop1, a user; from loop2 the loop
	 * stops at loop2, no user */
	assert_int_equal(config_test_resolve(c, "loop1", "example.org", &g), 1);
	assert_string_equal(g.v[0], "loop1@example.org");
	assert_int_equal(config_test_resolve(c, "loop2", "example.org", &g), -1);
	/* self-reference keeps the name as a mailbox; 'self' is no user so only bob */
	assert_int_equal(config_test_resolve(c, "self", "example.org", &g), 1);
	assert_string_equal(g.v[0], "bob@example.org");
	/* depth: e1..e10 -> alice is 10 expansions: allowed */
	assert_int_equal(config_test_resolve(c, "e1", "example.org", &g), 1);
	assert_string_equal(g.v[0], "alice@example.org");
	/* d0..d11 -> alice needs 12 expansions: cut at depth 10 (d10 is no user) */
	assert_int_equal(config_test_resolve(c, "d0", "example.org", &g), -1);
	/* from d1 the cut falls on d11, which is a user */
	assert_int_equal(config_test_resolve(c, "d1", "example.org", &g), 1);
	assert_string_equal(g.v[0], "d11@example.org");
	/* an alias to unknown users only: known name, resolves to nothing */
	assert_true(config_is_known_user(c, "ghost", "example.org"));
	assert_int_equal(config_test_resolve(c, "ghost", "example.org", &g), -1);
	/* domain-specific alias wins over the bare one */
	assert_int_equal(config_test_resolve(c, "sales", "example.net", &g), 1);
	assert_string_equal(g.v[0], "bob@example.net");
	assert_int_equal(config_test_resolve(c, "SALES", "example.org", &g), -1); /* carol@org */
	/* postmaster always resolves, through its alias here */
	assert_int_equal(config_test_resolve(c, "POSTMASTER", "example.org", &g), 3);
	/* diamonds: each alias is expanded once */
	assert_int_equal(config_test_resolve(c, "wide", "example.org", &g), 2);
	assert_true(config_test_has(&g, "alice@example.org"));
	assert_true(config_test_has(&g, "bob@example.org"));
	/* the emit callback may be NULL */
	assert_int_equal(config_resolve(c, "root", "example.org", NULL, NULL), 3);
	/* too long, empty, '@' in the local part */
	assert_int_equal(config_resolve(c, "", "example.org", NULL, NULL), -1);
	assert_int_equal(config_resolve(c, "a@b", "example.org", NULL, NULL), -1);
	assert_int_equal(config_resolve(c, "alice", "", NULL, NULL), -1);
	{
		char big[100];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(config_resolve(c, big, "example.org", NULL, NULL), -1);
	}

	/* hashes kept for AUTH */
	assert_string_equal(config_user_hash(c, "ALICE", "example.org"),
	                    "$2b$05$abcdefghijklmnopqrstuv");
	assert_null(config_user_hash(c, "bob", "example.org"));
	assert_null(config_user_hash(c, "nobody", "example.org"));
	config_free(c);
}

static void test_postmaster_without_alias(void **state)
{
	struct config_test_got g;
	struct config *c;

	config_test_write("users", "alice\n");
	c = config_test_load("local_domains = example.org\nusers = users\n");
	assert_true(config_is_known_user(c, "postmaster", "example.org"));
	assert_int_equal(config_test_resolve(c, "PostMaster", "Example.Org", &g), 1);
	assert_string_equal(g.v[0], "postmaster@example.org");
	assert_int_equal(config_test_resolve(c, "alice", "example.org", &g), 1);
	config_free(c);

	/* without check_users everyone resolves to themselves */
	c = config_default();
	assert_int_equal(config_test_resolve(c, "Someone", "Any.Example", &g), 1);
	assert_string_equal(g.v[0], "someone@any.example");
	assert_int_equal(config_test_resolve(c, "postmaster", "x.example", &g), 1);
	config_free(c);
}

static void test_aliases_only(void **state)
{
	struct config_test_got g;
	struct config *c;

	/* aliases without users: check_users stays off, aliases still expand */
	config_test_write("aliases", "info: alice, bob@other.example\n");
	c = config_test_load("local_domains = example.org\naliases = aliases\n");
	assert_false(c->check_users);
	assert_int_equal(config_test_resolve(c, "info", "example.org", &g), 2);
	assert_true(config_test_has(&g, "alice@example.org"));
	assert_true(config_test_has(&g, "bob@other.example"));
	config_free(c);
	/* aliases with check_users: alias names are the only known recipients */
	c = config_test_load("aliases = aliases\ncheck_users = yes\nlocal_domains = example.org\n");
	assert_true(config_is_known_user(c, "INFO", "example.org"));
	assert_false(config_is_known_user(c, "alice", "example.org"));
	/* alice is no user, the remote target passes */
	assert_int_equal(config_test_resolve(c, "info", "example.org", &g), 1);
	assert_string_equal(g.v[0], "bob@other.example");
	config_free(c);
}

static void test_relative_paths(void **state)
{
	char sub[512], path[600], err[512];
	struct config *c;
	FILE *f;

	snprintf(sub, sizeof(sub), "%s/etc", test_dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/u", sub);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("zoe\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/ternd.conf", sub);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("users = u\n", f);
	fclose(f);
	c = config_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_true(config_is_known_user(c, "zoe", "a.example"));
	config_free(c);
}

static void test_tls_cert_for(void **state)
{
	struct config *c;
	char want[600];

	config_test_write("c.pem", "x");
	config_test_write("k.pem", "x");
	config_test_write("a.pem", "x");
	config_test_write("a.key", "x");
	c = config_test_load("[listener 127.0.0.1:25]\n"
	                     "tls_cert = c.pem\n"
	                     "tls_key = k.pem\n"
	                     "tls_cert_for = MX.Example.ORG, *.example.org a.pem a.key\n"
	                     "tls_cert_for =\tother.example\t\ta.pem   a.key\n"
	                     "[listener 127.0.0.1:26]\n");
	assert_int_equal(c->listeners[0].tls, CONFIG_TLS_STARTTLS);
	assert_int_equal(c->listeners[0].tls_cert_line, 2);
	assert_int_equal(c->listeners[0].ntls_pairs, 2);
	assert_string_equal(c->listeners[0].tls_pairs[0].names, "mx.example.org *.example.org");
	snprintf(want, sizeof want, "%s/a.pem", test_dir);
	assert_string_equal(c->listeners[0].tls_pairs[0].cert, want);
	snprintf(want, sizeof want, "%s/a.key", test_dir);
	assert_string_equal(c->listeners[0].tls_pairs[0].key, want);
	assert_int_equal(c->listeners[0].tls_pairs[0].line, 4);
	assert_string_equal(c->listeners[0].tls_pairs[1].names, "other.example");
	assert_int_equal(c->listeners[0].tls_pairs[1].line, 5);
	assert_int_equal(c->listeners[1].ntls_pairs, 0);
	assert_null(c->listeners[1].tls_pairs);
	assert_ptr_equal(config_find_listener(c, "127.0.0.1:26"), &c->listeners[1]);
	assert_null(config_find_listener(c, "127.0.0.1:27"));
	/* --listen replacing the configured listeners frees their pairs */
	assert_int_equal(config_add_listener(c, "127.0.0.1:2600", true, NULL, 0), 0);
	assert_int_equal(c->nlisteners, 1);
	config_free(c);

	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = a.pem a.key\n",
	                       "t.conf", 4, "expected NAME[, NAME...] CERTFILE KEYFILE");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = x.example a.pem\n",
	                       "t.conf", 4, "expected NAME");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = , a.pem a.key\n",
	                       "t.conf", 4, "no server name");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = a*.example a.pem a.key\n",
	                       "t.conf", 4, "'a*.example' is not a host name or *.domain");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = * a.pem a.key\n",
	                       "t.conf", 4, "not a host name");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = *.*.example a.pem a.key\n",
	                       "t.conf", 4, "not a host name");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = x_y.example a.pem a.key\n",
	                       "t.conf", 4, "not a host name");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = a.example a.pem a.key\n"
	                       "tls_cert_for = b.example, A.EXAMPLE a.pem a.key\n",
	                       "t.conf", 5, "a.example given twice (first on line 4)");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = a.example a.example a.pem a.key\n",
	                       "t.conf", 4, "given twice");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = a.example missing.pem a.key\n",
	                       "t.conf", 4, "tls_cert_for: cannot read");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert = c.pem\ntls_key = k.pem\n"
	                       "tls_cert_for = a.example a.pem missing.key\n",
	                       "t.conf", 4, "missing.key");
	config_test_expect_err("[listener 127.0.0.1:25]\ntls_cert_for = a.example a.pem a.key\n",
	                       "t.conf", 2, "tls_cert_for needs tls_cert and tls_key");
	config_test_expect_err("tls_cert_for = a.example a.pem a.key\n", "t.conf", 1,
	                       "belongs in a [listener");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_no_listener_is_strict),
		cmocka_unit_test(test_accept_any_and_check_users),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_errors_in_users_and_aliases),
		cmocka_unit_test(test_listeners),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_aliases_and_resolve),
		cmocka_unit_test(test_postmaster_without_alias),
		cmocka_unit_test(test_aliases_only),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_tls_cert_for),
	};

	return cmocka_run_group_tests_name("config", tests, config_test_setup,
	                                   config_test_teardown);
}
