/* config.c - the built-in default configuration, the ternd.conf loader (format in
 * docs/CONFIG.md), listener address parsing and the local-domain query.
 * Any error makes config_load fail as a whole with "file:line: what is wrong"; a
 * partial config is never returned. It does not resolve host names, open sockets or
 * create directories: those belong to the server. Users and aliases files are
 * parsed in config_lists.c. */
#include "policy/config.h"
#include "policy/config_int.h"
#include "util/limits.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_DEFAULT_LISTENER "127.0.0.1:2525"
#define CONFIG_DELIVERY_THREADS_DEFAULT 2
#define CONFIG_AUTH_FAIL_DELAY_DEFAULT 2
#define CONFIG_AUTH_MAX_FAILURES_DEFAULT 3
#define CONFIG_AUTH_IP_MAX_FAILURES_DEFAULT 10
#define CONFIG_AUTH_IP_WINDOW_DEFAULT 600
#define CONFIG_DELIVERY_THREADS_MAX 256

/* ---- listeners ---- */

static bool config_is_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
	}
	return true;
}

/* Parse "A.B.C.D:PORT" or "[V6]:PORT" into l (name, sa, salen). On error writes a
 * message without a location prefix to msg and returns -EINVAL. */
static int config_listener_parse(const char *spec, struct config_listener *l, char *msg,
                                 size_t msgsz)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *port, *end;
	size_t alen;
	unsigned long pn;
	bool v6;

	memset(l, 0, sizeof(*l));
	if (strlen(spec) >= sizeof(l->name)) {
		snprintf(msg, msgsz, "listener address too long");
		return -EINVAL;
	}
	if (spec[0] == '[') {
		end = strchr(spec, ']');
		if (end == NULL) {
			snprintf(msg, msgsz, "missing ']' in '%s'", spec);
			return -EINVAL;
		}
		if (end[1] != ':') {
			snprintf(msg, msgsz, "expected ':PORT' after ']' in '%s'", spec);
			return -EINVAL;
		}
		v6 = true;
		alen = (size_t)(end - spec - 1);
		spec++;
		port = end + 2;
	} else {
		end = strrchr(spec, ':');
		if (end == NULL) {
			snprintf(msg, msgsz, "missing ':PORT' in '%s'", spec);
			return -EINVAL;
		}
		if (memchr(spec, ':', (size_t)(end - spec)) != NULL) {
			snprintf(msg, msgsz, "IPv6 address in '%s' must be in brackets, e.g. [::1]:25",
			         spec);
			return -EINVAL;
		}
		v6 = false;
		alen = (size_t)(end - spec);
		port = end + 1;
	}
	if (alen == 0) {
		snprintf(msg, msgsz, "missing address before the port");
		return -EINVAL;
	}
	if (alen >= sizeof(addr)) {
		snprintf(msg, msgsz, "'%.*s' is not a numeric IP address", (int)alen, spec);
		return -EINVAL;
	}
	memcpy(addr, spec, alen);
	addr[alen] = '\0';
	if (!config_is_digits(port) || strlen(port) > 5 || (pn = strtoul(port, NULL, 10)) < 1 ||
	    pn > 65535) {
		snprintf(msg, msgsz, "bad port '%s' (expected 1..65535)", port);
		return -EINVAL;
	}
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&l->sa;

		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) {
			snprintf(msg, msgsz, "'%s' is not a numeric IPv6 address", addr);
			return -EINVAL;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		l->salen = sizeof(*s6);
		snprintf(l->name, sizeof(l->name), "[%s]:%s", addr, port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&l->sa;

		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) {
			snprintf(msg, msgsz,
			         "'%s' is not a numeric IPv4 address (host names are not resolved: "
			         "use e.g. 127.0.0.1:25 or [::1]:25)",
			         addr);
			return -EINVAL;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		l->salen = sizeof(*s4);
		snprintf(l->name, sizeof(l->name), "%s:%s", addr, port);
	}
	l->vrfy = true;
	l->expn = true;
	return 0;
}

static bool config_listener_is_loopback(const struct config_listener *l)
{
	if (l->sa.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&l->sa;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (l->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&l->sa;
		const uint8_t *b = s6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127;
	}
	return false;
}

static bool config_listener_same(const struct config_listener *a,
                                 const struct config_listener *b)
{
	if (a->sa.ss_family != b->sa.ss_family)
		return false;
	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa;
		const struct sockaddr_in *y = (const struct sockaddr_in *)&b->sa;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->sa;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
}

/* Free what a listener owns (its tls_cert_for list). */
static void config_listener_clear(struct config_listener *l)
{
	free(l->tls_pairs);
	l->tls_pairs = NULL;
	l->ntls_pairs = 0;
}

const struct config_listener *config_find_listener(const struct config *c, const char *name)
{
	for (size_t i = 0; c != NULL && i < c->nlisteners; i++) {
		if (strcmp(c->listeners[i].name, name) == 0)
			return &c->listeners[i];
	}
	return NULL;
}

/* Append l unless full (-ENOSPC) or already there (-EEXIST). */
static int config_listener_append(struct config *c, const struct config_listener *l)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		if (config_listener_same(&c->listeners[i], l))
			return -EEXIST;
	}
	if (c->nlisteners >= CONFIG_LISTENERS_MAX)
		return -ENOSPC;
	c->listeners[c->nlisteners++] = *l;
	return 0;
}

int config_add_listener(struct config *c, const char *spec, bool replace, char *err, size_t errsz)
{
	struct config_listener l;
	char msg[400], dummy[1];
	int rc;

	if (err == NULL || errsz == 0) {
		err = dummy;
		errsz = sizeof(dummy);
	}
	rc = config_listener_parse(spec, &l, msg, sizeof(msg));
	if (rc < 0) {
		snprintf(err, errsz, "bad listener '%s': %s", spec, msg);
		return rc;
	}
	l.lenient_lf = config_listener_is_loopback(&l);
	if (replace) {
		for (size_t i = 0; i < c->nlisteners; i++)
			config_listener_clear(&c->listeners[i]);
		c->nlisteners = 0;
	}
	rc = config_listener_append(c, &l);
	if (rc == -EEXIST)
		snprintf(err, errsz, "listener %s given twice", l.name);
	else if (rc == -ENOSPC)
		snprintf(err, errsz, "too many listeners (at most %d)", CONFIG_LISTENERS_MAX);
	return rc;
}

/* ---- default, free, queries ---- */

struct config *config_default(void)
{
	struct config *c = calloc(1, sizeof(*c));
	struct config_listener l;
	char msg[400];

	if (c == NULL)
		return NULL;
	c->local_domains = calloc(1, sizeof(char *));
	if (c->local_domains == NULL)
		goto fail;
	snprintf(c->source, sizeof(c->source), "(built-in default)");
	if (gethostname(c->hostname, sizeof(c->hostname) - 1) != 0 || c->hostname[0] == '\0')
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	c->hostname[sizeof(c->hostname) - 1] = '\0';
	snprintf(c->data_dir, sizeof(c->data_dir), "./var");
	snprintf(c->mailbox_pattern, sizeof(c->mailbox_pattern), "mail/%%d/%%u/Maildir");
	c->accept_any_domain = true;
	c->check_users = false;
	c->max_msg_size = TERN_MSG_SIZE_DEFAULT;
	c->max_rcpts = TERN_RCPTS_DEFAULT;
	c->max_errors = TERN_ERRORS_DEFAULT;
	c->cmd_timeout = TERN_CMD_TIMEOUT_DEFAULT_S;
	c->max_conn = TERN_CONN_MAX_DEFAULT;
	c->max_conn_per_ip = TERN_CONN_PER_IP_DEFAULT;
	c->delivery_threads = CONFIG_DELIVERY_THREADS_DEFAULT;
	c->use_syslog = false;
	c->auth_fail_delay = CONFIG_AUTH_FAIL_DELAY_DEFAULT;
	c->auth_max_failures = CONFIG_AUTH_MAX_FAILURES_DEFAULT;
	config_relay_defaults(&c->relay);
	c->auth_ip_max_failures = CONFIG_AUTH_IP_MAX_FAILURES_DEFAULT;
	c->auth_ip_window = CONFIG_AUTH_IP_WINDOW_DEFAULT;
	if (config_listener_parse(CONFIG_DEFAULT_LISTENER, &l, msg, sizeof(msg)) < 0)
		goto fail;
	l.lenient_lf = true;
	l.vrfy = true;
	l.expn = true;
	l.require_helo = false;
	c->listeners[0] = l;
	c->nlisteners = 1;
	return c;
fail:
	config_free(c);
	return NULL;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	if (c->local_domains != NULL) {
		for (size_t i = 0; i < c->nlocal_domains; i++)
			free(c->local_domains[i]);
		free(c->local_domains);
	}
	config_users_free(c->users);
	config_aliases_free(c->aliases);
	config_relay_free(&c->relay);
	config_senders_free(c->senders);
	for (size_t i = 0; i < c->nlisteners; i++)
		config_listener_clear(&c->listeners[i]);
	free(c);
}

bool config_is_local_domain(const struct config *c, const char *domain)
{
	size_t n;

	if (c == NULL || domain == NULL || domain[0] == '\0')
		return false;
	if (c->accept_any_domain)
		return true;
	n = strlen(domain);
	if (n > 1 && domain[n - 1] == '.')
		n--; /* "example.org." is example.org */
	for (size_t i = 0; i < c->nlocal_domains; i++) {
		if (strlen(c->local_domains[i]) == n &&
		    strncasecmp(c->local_domains[i], domain, n) == 0)
			return true;
	}
	return false;
}

/* ---- the file loader ---- */

enum config_scope { CONFIG_SC_GLOBAL, CONFIG_SC_LISTENER };

struct config_parse {
	struct config *c;
	const char *path;
	char dir[512];                  /* directory of path, for relative file names */
	unsigned lineno;
	char *err;
	size_t errsz;
	struct config_listener *l;      /* current [listener] section, NULL in global */
	unsigned *seen;                 /* line each key was set on, per key index */
	bool accept_any_set;
	unsigned accept_any_line;
	bool check_users_set;
	unsigned check_users_line;
	bool tls_set;                   /* current listener section set tls= / auth= */
	bool auth_set;
};

struct config_key {
	const char *name;
	enum config_scope scope;
	bool repeatable;                /* may appear more than once (values add up) */
	int (*set)(struct config_parse *p, char *val);
};

#define CONFIG_PERR(p, ...) config_err((p)->err, (p)->errsz, (p)->path, (p)->lineno, __VA_ARGS__)

static int config_parse_bool(struct config_parse *p, const char *key, const char *val, bool *out)
{
	if (strcasecmp(val, "yes") == 0 || strcasecmp(val, "true") == 0 ||
	    strcasecmp(val, "on") == 0) {
		*out = true;
		return 0;
	}
	if (strcasecmp(val, "no") == 0 || strcasecmp(val, "false") == 0 ||
	    strcasecmp(val, "off") == 0) {
		*out = false;
		return 0;
	}
	return CONFIG_PERR(p, "%s: expected yes or no, not '%s'", key, val);
}

/* Unsigned decimal with an optional one-letter suffix from sfx[] (matching multipliers
 * in mul[]); the result must lie in [min, max]. */
static int config_parse_num(struct config_parse *p, const char *key, const char *val,
                            const char *sfx, const uint64_t *mul, uint64_t min, uint64_t max,
                            uint64_t *out)
{
	uint64_t v = 0, m = 1;
	const char *s = val;

	if (!isdigit((unsigned char)*s))
		return CONFIG_PERR(p, "%s: expected a number, not '%s'", key, val);
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return CONFIG_PERR(p, "%s: number '%s' is too large", key, val);
		v = v * 10 + d;
	}
	if (*s != '\0') {
		const char *hit = sfx ? strchr(sfx, *s) : NULL;

		if (hit == NULL || s[1] != '\0')
			return CONFIG_PERR(p, "%s: bad number '%s'%s%s", key, val,
			                   sfx ? "; allowed suffixes: " : "", sfx ? sfx : "");
		m = mul[hit - sfx];
	}
	if (v != 0 && m > UINT64_MAX / v)
		return CONFIG_PERR(p, "%s: number '%s' is too large", key, val);
	v *= m;
	if (v > max)
		return CONFIG_PERR(p, "%s: %s is too large (at most %llu)", key, val,
		                   (unsigned long long)max);
	if (v < min)
		return CONFIG_PERR(p, "%s: %s is too small (at least %llu)", key, val,
		                   (unsigned long long)min);
	*out = v;
	return 0;
}

static int config_parse_uint(struct config_parse *p, const char *key, const char *val,
                             unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;
	int rc = config_parse_num(p, key, val, NULL, NULL, min, max, &v);

	if (rc == 0)
		*out = (unsigned)v;
	return rc;
}

static int config_set_str(struct config_parse *p, const char *key, const char *val, char *dst,
                          size_t dstsz)
{
	int n = snprintf(dst, dstsz, "%s", val);

	if (n < 0 || (size_t)n >= dstsz)
		return CONFIG_PERR(p, "%s: value too long (at most %zu bytes)", key, dstsz - 1);
	return 0;
}

/* Resolve a file name against the config file's directory. */
static int config_path(struct config_parse *p, const char *key, const char *val, char *out,
                       size_t outsz)
{
	int n;

	if (val[0] == '/' || p->dir[0] == '\0')
		n = snprintf(out, outsz, "%s", val);
	else
		n = snprintf(out, outsz, "%s/%s", p->dir, val);
	if (n < 0 || (size_t)n >= outsz)
		return CONFIG_PERR(p, "%s: path too long", key);
	return 0;
}

static int config_k_hostname(struct config_parse *p, char *val)
{
	if (!config_is_valid_domain(val))
		return CONFIG_PERR(p, "hostname: '%s' is not a valid host name", val);
	return config_set_str(p, "hostname", val, p->c->hostname, sizeof(p->c->hostname));
}

static int config_k_data_dir(struct config_parse *p, char *val)
{
	return config_set_str(p, "data_dir", val, p->c->data_dir, sizeof(p->c->data_dir));
}

static int config_k_mailbox_pattern(struct config_parse *p, char *val)
{
	const char *s;

	for (s = val; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		if (s[1] != 'd' && s[1] != 'u' && s[1] != '%')
			return CONFIG_PERR(p, "mailbox_pattern: unknown escape '%%%c' (use %%d, %%u "
			                      "or %%%%)", s[1] ? s[1] : ' ');
		s++;
	}
	for (s = val; (s = strstr(s, "..")) != NULL; s += 2) {
		if ((s == val || s[-1] == '/') && (s[2] == '/' || s[2] == '\0'))
			return CONFIG_PERR(p, "mailbox_pattern: '..' is not allowed");
	}
	return config_set_str(p, "mailbox_pattern", val, p->c->mailbox_pattern,
	                      sizeof(p->c->mailbox_pattern));
}

static int config_k_local_domains(struct config_parse *p, char *val)
{
	struct config *c = p->c;
	char *s = val;

	while (*s != '\0') {
		size_t n = strcspn(s, " \t,");
		char *d, **v;
		bool dup = false;

		if (n == 0) {
			s++;
			continue;
		}
		d = strndup(s, n);
		if (d == NULL)
			return CONFIG_PERR(p, "out of memory");
		s += n;
		config_lower(d);
		if (!config_is_valid_domain(d)) {
			int rc = CONFIG_PERR(p, "local_domains: '%s' is not a valid domain", d);

			free(d);
			return rc;
		}
		for (size_t i = 0; i < c->nlocal_domains && !dup; i++)
			dup = strcmp(c->local_domains[i], d) == 0;
		if (dup) {
			free(d);
			continue;
		}
		v = realloc(c->local_domains, (c->nlocal_domains + 2) * sizeof(*v));
		if (v == NULL) {
			free(d);
			return CONFIG_PERR(p, "out of memory");
		}
		c->local_domains = v;
		v[c->nlocal_domains++] = d;
		v[c->nlocal_domains] = NULL;
	}
	return 0;
}

static int config_k_accept_any_domain(struct config_parse *p, char *val)
{
	p->accept_any_set = true;
	p->accept_any_line = p->lineno;
	return config_parse_bool(p, "accept_any_domain", val, &p->c->accept_any_domain);
}

static int config_k_users(struct config_parse *p, char *val)
{
	char path[1024];
	int rc = config_path(p, "users", val, path, sizeof(path));

	if (rc < 0)
		return rc;
	if (access(path, R_OK) != 0)
		return CONFIG_PERR(p, "users: cannot read '%s': %s", path, strerror(errno));
	return config_users_load(path, &p->c->users, p->err, p->errsz);
}

static int config_k_aliases(struct config_parse *p, char *val)
{
	char path[1024];
	int rc = config_path(p, "aliases", val, path, sizeof(path));

	if (rc < 0)
		return rc;
	if (access(path, R_OK) != 0)
		return CONFIG_PERR(p, "aliases: cannot read '%s': %s", path, strerror(errno));
	return config_aliases_load(path, &p->c->aliases, p->err, p->errsz);
}

static int config_k_check_users(struct config_parse *p, char *val)
{
	p->check_users_set = true;
	p->check_users_line = p->lineno;
	return config_parse_bool(p, "check_users", val, &p->c->check_users);
}

static int config_k_max_message_size(struct config_parse *p, char *val)
{
	static const uint64_t mul[] = {1024, 1024, 1024 * 1024, 1024 * 1024,
	                               1024ull * 1024 * 1024, 1024ull * 1024 * 1024};

	return config_parse_num(p, "max_message_size", val, "kKmMgG", mul, 1, UINT64_MAX / 2,
	                        &p->c->max_msg_size);
}

static int config_k_max_recipients(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "max_recipients", val, TERN_RCPTS_MIN, UINT_MAX,
	                         &p->c->max_rcpts);
}

static int config_k_max_errors(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "max_errors", val, 1, UINT_MAX, &p->c->max_errors);
}

static int config_k_command_timeout(struct config_parse *p, char *val)
{
	static const uint64_t mul[] = {1, 60, 3600};
	uint64_t v;
	int rc = config_parse_num(p, "command_timeout", val, "smh", mul, 1, 7 * 24 * 3600, &v);

	if (rc == 0)
		p->c->cmd_timeout = (unsigned)v;
	return rc;
}

static int config_k_max_connections(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "max_connections", val, 1, UINT_MAX, &p->c->max_conn);
}

static int config_k_max_connections_per_ip(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "max_connections_per_ip", val, 1, UINT_MAX,
	                         &p->c->max_conn_per_ip);
}

static int config_k_delivery_threads(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "delivery_threads", val, 1, CONFIG_DELIVERY_THREADS_MAX,
	                         &p->c->delivery_threads);
}

static int config_k_syslog(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "syslog", val, &p->c->use_syslog);
}

static int config_k_durability(struct config_parse *p, char *val)
{
	if (strcmp(val, "full") == 0)
		p->c->relaxed = false;
	else if (strcmp(val, "relaxed") == 0)
		p->c->relaxed = true;
	else
		return CONFIG_PERR(p, "durability: expected full or relaxed, not '%s'", val);
	return 0;
}

static int config_k_lenient_lf(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "lenient_lf", val, &p->l->lenient_lf);
}

static int config_k_vrfy(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "vrfy", val, &p->l->vrfy);
}

static int config_k_expn(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "expn", val, &p->l->expn);
}

static int config_k_require_helo(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "require_helo", val, &p->l->require_helo);
}

static int config_k_greet_delay(struct config_parse *p, char *val)
{
	static const uint64_t mul[] = {1};
	uint64_t v;
	int rc = config_parse_num(p, "greet_delay", val, "s", mul, 0, TERN_GREET_DELAY_MAX_S, &v);

	if (rc == 0)
		p->l->greet_delay = (unsigned)v;
	return rc;
}

/* ---- TLS, AUTH, relay, privileges (docs/CONFIG.md "TLS, AUTH and submission") ---- */

static int config_k_tls(struct config_parse *p, char *val)
{
	if (strcasecmp(val, "none") == 0)
		p->l->tls = CONFIG_TLS_NONE;
	else if (strcasecmp(val, "starttls") == 0)
		p->l->tls = CONFIG_TLS_STARTTLS;
	else if (strcasecmp(val, "implicit") == 0)
		p->l->tls = CONFIG_TLS_IMPLICIT;
	else
		return CONFIG_PERR(p, "tls: expected none, starttls or implicit, not '%s'", val);
	p->tls_set = true;
	return 0;
}

static int config_k_tls_file(struct config_parse *p, const char *key, char *val, char *dst,
                             size_t dstsz)
{
	int rc = config_path(p, key, val, dst, dstsz);

	if (rc < 0)
		return rc;
	if (access(dst, R_OK) != 0)
		return CONFIG_PERR(p, "%s: cannot read '%s': %s", key, dst, strerror(errno));
	return 0;
}

static int config_k_tls_cert(struct config_parse *p, char *val)
{
	p->l->tls_cert_line = p->lineno;
	return config_k_tls_file(p, "tls_cert", val, p->l->tls_cert, sizeof(p->l->tls_cert));
}

/* An SNI pattern: a host name, or "*." and a host name (one wildcard label). */
static bool config_is_valid_sni_pattern(const char *s)
{
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	return config_is_valid_domain(s);
}

/* The tls_cert_for pattern equal to name in this listener, or NULL. */
static const struct config_tls_pair *config_sni_find(const struct config_listener *l,
                                                     const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < l->ntls_pairs; i++) {
		const char *s = l->tls_pairs[i].names;

		while (*s != '\0') {
			size_t m = strcspn(s, " ");

			if (m == n && memcmp(s, name, n) == 0)
				return &l->tls_pairs[i];
			s += m;
			s += *s == ' ';
		}
	}
	return NULL;
}

/* "tls_cert_for = NAME[, NAME...] CERTFILE KEYFILE": the last two words are the files,
 * the words before them (separated by blanks and/or commas) the server names. */
static int config_k_tls_cert_for(struct config_parse *p, char *val)
{
	struct config_listener *l = p->l;
	struct config_tls_pair *pair, *v;
	char *words[2], *s, *end = val + strlen(val);
	size_t len = 0;
	int rc;

	/* the last two words, from the end; each is cut off from the names before it */
	for (int w = 1; w >= 0; w--) {
		s = end;
		while (s > val && s[-1] != ' ' && s[-1] != '\t')
			s--;
		if (s == val)
			return CONFIG_PERR(p, "tls_cert_for: expected NAME[, NAME...] CERTFILE "
			                      "KEYFILE");
		words[w] = s;
		end = s - 1;
		while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
	}
	if (l->ntls_pairs >= CONFIG_TLS_PAIRS_MAX)
		return CONFIG_PERR(p, "tls_cert_for: too many (at most %d per listener)",
		                   CONFIG_TLS_PAIRS_MAX);
	v = realloc(l->tls_pairs, (l->ntls_pairs + 1) * sizeof(*v));
	if (v == NULL)
		return CONFIG_PERR(p, "out of memory");
	l->tls_pairs = v;
	pair = &v[l->ntls_pairs++]; /* counted at once: later names are checked against it */
	memset(pair, 0, sizeof(*pair));
	pair->line = p->lineno;
	for (s = val; *s != '\0';) {
		size_t n = strcspn(s, " \t,");
		const struct config_tls_pair *dup;

		if (n == 0) {
			s++;
			continue;
		}
		if (s[n] != '\0')
			s[n++] = '\0';
		config_lower(s);
		if (!config_is_valid_sni_pattern(s))
			return CONFIG_PERR(p, "tls_cert_for: '%s' is not a host name or *.domain",
			                   s);
		dup = config_sni_find(l, s);
		if (dup != NULL)
			return CONFIG_PERR(p, "tls_cert_for: %s given twice (first on line %u)", s,
			                   dup->line);
		if (len + strlen(s) + 2 > sizeof(pair->names))
			return CONFIG_PERR(p, "tls_cert_for: too many names");
		len += (size_t)snprintf(pair->names + len, sizeof(pair->names) - len, "%s%s",
		                        len ? " " : "", s);
		s += n;
	}
	if (len == 0)
		return CONFIG_PERR(p, "tls_cert_for: no server name before the files");
	rc = config_k_tls_file(p, "tls_cert_for", words[0], pair->cert, sizeof(pair->cert));
	if (rc == 0)
		rc = config_k_tls_file(p, "tls_cert_for", words[1], pair->key, sizeof(pair->key));
	return rc;
}

static int config_k_tls_key(struct config_parse *p, char *val)
{
	return config_k_tls_file(p, "tls_key", val, p->l->tls_key, sizeof(p->l->tls_key));
}

static int config_k_require_tls(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "require_tls", val, &p->l->require_tls);
}

static int config_k_auth(struct config_parse *p, char *val)
{
	p->auth_set = true;
	return config_parse_bool(p, "auth", val, &p->l->auth);
}

static int config_k_allow_plaintext_auth(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "allow_plaintext_auth", val, &p->l->allow_plaintext_auth);
}

static int config_k_submission(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "submission", val, &p->l->submission);
}

static int config_k_trusted_networks(struct config_parse *p, char *val)
{
	char msg[200];
	int rc = config_cidr_list_parse(val, p->c->trusted, CONFIG_CIDR_MAX, &p->c->ntrusted, msg,
	                                sizeof(msg));

	if (rc < 0)
		return CONFIG_PERR(p, "trusted_networks: %s", msg);
	return 0;
}

static int config_k_auth_fail_delay(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "auth_fail_delay", val, 0, 60, &p->c->auth_fail_delay);
}

static int config_k_auth_max_failures(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "auth_max_failures", val, 1, 100, &p->c->auth_max_failures);
}

static int config_k_auth_ip_max_failures(struct config_parse *p, char *val)
{
	return config_parse_uint(p, "auth_ip_max_failures", val, 0, 100000,
	                         &p->c->auth_ip_max_failures);
}

static int config_k_auth_ip_window(struct config_parse *p, char *val)
{
	static const uint64_t mul[] = {1, 60, 3600};
	uint64_t v;
	int rc = config_parse_num(p, "auth_ip_window", val, "smh", mul, 1, 7 * 24 * 3600, &v);

	if (rc == 0)
		p->c->auth_ip_window = (unsigned)v;
	return rc;
}

static int config_k_sender_login_maps(struct config_parse *p, char *val)
{
	char path[1024];
	int rc = config_path(p, "sender_login_maps", val, path, sizeof(path));

	if (rc < 0)
		return rc;
	if (access(path, R_OK) != 0)
		return CONFIG_PERR(p, "sender_login_maps: cannot read '%s': %s", path,
		                   strerror(errno));
	return config_senders_load(path, &p->c->senders, p->err, p->errsz);
}

static int config_k_sender_must_match_login(struct config_parse *p, char *val)
{
	return config_parse_bool(p, "sender_must_match_login", val,
	                         &p->c->sender_must_match_login);
}

static int config_k_user(struct config_parse *p, char *val)
{
	if (!config_is_valid_local(val))
		return CONFIG_PERR(p, "user: '%s' is not a valid user name", val);
	return config_set_str(p, "user", val, p->c->run_user, sizeof(p->c->run_user));
}

/* A listener section is complete: defaults that depend on other keys, then checks. */
static int config_listener_finish(struct config_parse *p)
{
	struct config_listener *l = p->l;

	if (l == NULL)
		return 0;
	if (!p->tls_set && l->tls_cert[0] != '\0')
		l->tls = CONFIG_TLS_STARTTLS;
	if (!p->auth_set && l->submission)
		l->auth = true;
	p->tls_set = p->auth_set = false;
	if (l->tls != CONFIG_TLS_NONE && (l->tls_cert[0] == '\0' || l->tls_key[0] == '\0'))
		return config_err(p->err, p->errsz, p->path, l->line,
		                  "listener %s: tls needs tls_cert and tls_key", l->name);
	if ((l->tls_cert[0] != '\0') != (l->tls_key[0] != '\0'))
		return config_err(p->err, p->errsz, p->path, l->line,
		                  "listener %s: tls_cert and tls_key go together", l->name);
	if (l->ntls_pairs > 0 && l->tls_cert[0] == '\0')
		return config_err(p->err, p->errsz, p->path, l->tls_pairs[0].line,
		                  "listener %s: tls_cert_for needs tls_cert and tls_key (the "
		                  "certificate for clients that send no or an unknown name)",
		                  l->name);
	if (l->require_tls && l->tls != CONFIG_TLS_STARTTLS)
		return config_err(p->err, p->errsz, p->path, l->line,
		                  "listener %s: require_tls needs tls = starttls (implicit TLS is "
		                  "always encrypted)", l->name);
	if (l->submission && !l->auth)
		return config_err(p->err, p->errsz, p->path, l->line,
		                  "listener %s: submission needs auth = yes", l->name);
	if (l->auth && l->tls == CONFIG_TLS_NONE && !l->allow_plaintext_auth)
		return config_err(p->err, p->errsz, p->path, l->line,
		                  "listener %s: auth without TLS needs allow_plaintext_auth = yes "
		                  "(passwords would cross the network in clear)", l->name);
	if (l->auth && p->c->users == NULL)
		return config_err(p->err, p->errsz, p->path, l->line,
		                  "listener %s: auth needs a users file (users = FILE above)",
		                  l->name);
	return 0;
}

static const struct config_key config_keys[] = {
	{"hostname", CONFIG_SC_GLOBAL, false, config_k_hostname},
	{"data_dir", CONFIG_SC_GLOBAL, false, config_k_data_dir},
	{"mailbox_pattern", CONFIG_SC_GLOBAL, false, config_k_mailbox_pattern},
	{"local_domains", CONFIG_SC_GLOBAL, true, config_k_local_domains},
	{"accept_any_domain", CONFIG_SC_GLOBAL, false, config_k_accept_any_domain},
	{"users", CONFIG_SC_GLOBAL, false, config_k_users},
	{"check_users", CONFIG_SC_GLOBAL, false, config_k_check_users},
	{"aliases", CONFIG_SC_GLOBAL, false, config_k_aliases},
	{"max_message_size", CONFIG_SC_GLOBAL, false, config_k_max_message_size},
	{"max_recipients", CONFIG_SC_GLOBAL, false, config_k_max_recipients},
	{"max_errors", CONFIG_SC_GLOBAL, false, config_k_max_errors},
	{"command_timeout", CONFIG_SC_GLOBAL, false, config_k_command_timeout},
	{"max_connections", CONFIG_SC_GLOBAL, false, config_k_max_connections},
	{"max_connections_per_ip", CONFIG_SC_GLOBAL, false, config_k_max_connections_per_ip},
	{"delivery_threads", CONFIG_SC_GLOBAL, false, config_k_delivery_threads},
	{"syslog", CONFIG_SC_GLOBAL, false, config_k_syslog},
	{"durability", CONFIG_SC_GLOBAL, false, config_k_durability},
	{"lenient_lf", CONFIG_SC_LISTENER, false, config_k_lenient_lf},
	{"vrfy", CONFIG_SC_LISTENER, false, config_k_vrfy},
	{"expn", CONFIG_SC_LISTENER, false, config_k_expn},
	{"require_helo", CONFIG_SC_LISTENER, false, config_k_require_helo},
	{"greet_delay", CONFIG_SC_LISTENER, false, config_k_greet_delay},
	{"trusted_networks", CONFIG_SC_GLOBAL, true, config_k_trusted_networks},
	{"auth_fail_delay", CONFIG_SC_GLOBAL, false, config_k_auth_fail_delay},
	{"auth_max_failures", CONFIG_SC_GLOBAL, false, config_k_auth_max_failures},
	{"auth_ip_max_failures", CONFIG_SC_GLOBAL, false, config_k_auth_ip_max_failures},
	{"auth_ip_window", CONFIG_SC_GLOBAL, false, config_k_auth_ip_window},
	{"sender_login_maps", CONFIG_SC_GLOBAL, false, config_k_sender_login_maps},
	{"sender_must_match_login", CONFIG_SC_GLOBAL, false, config_k_sender_must_match_login},
	{"user", CONFIG_SC_GLOBAL, false, config_k_user},
	{"tls", CONFIG_SC_LISTENER, false, config_k_tls},
	{"tls_cert", CONFIG_SC_LISTENER, false, config_k_tls_cert},
	{"tls_key", CONFIG_SC_LISTENER, false, config_k_tls_key},
	{"tls_cert_for", CONFIG_SC_LISTENER, true, config_k_tls_cert_for},
	{"require_tls", CONFIG_SC_LISTENER, false, config_k_require_tls},
	{"auth", CONFIG_SC_LISTENER, false, config_k_auth},
	{"allow_plaintext_auth", CONFIG_SC_LISTENER, false, config_k_allow_plaintext_auth},
	{"submission", CONFIG_SC_LISTENER, false, config_k_submission},
};
#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* "[listener ADDR:PORT]" */
static int config_section(struct config_parse *p, char *s)
{
	struct config_listener l;
	char msg[400];
	size_t n = strlen(s);
	int depth = 0, rc;
	char *inner, *spec;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '[')
			depth++;
		else if (s[i] == ']' && --depth < 0)
			break;
	}
	if (depth != 0 || s[n - 1] != ']')
		return CONFIG_PERR(p, "unbalanced brackets in section header '%s'", s);
	s[n - 1] = '\0';
	inner = config_trim(s + 1);
	spec = inner + strcspn(inner, " \t");
	if (*spec != '\0')
		*spec++ = '\0';
	spec = config_trim(spec);
	if (strcmp(inner, "listener") != 0)
		return CONFIG_PERR(p, "unknown section '[%s]' (only [listener ADDR:PORT] exists)",
		                   inner);
	if (*spec == '\0')
		return CONFIG_PERR(p, "listener section needs an address, e.g. "
		                      "[listener 0.0.0.0:25]");
	if (config_listener_parse(spec, &l, msg, sizeof(msg)) < 0)
		return CONFIG_PERR(p, "bad listener: %s", msg);
	rc = config_listener_finish(p);
	if (rc < 0)
		return rc;
	l.lenient_lf = false;
	l.line = p->lineno;
	rc = config_listener_append(p->c, &l);
	if (rc == -EEXIST)
		return CONFIG_PERR(p, "duplicate listener %s", l.name);
	if (rc == -ENOSPC)
		return CONFIG_PERR(p, "too many listeners (at most %d)", CONFIG_LISTENERS_MAX);
	p->l = &p->c->listeners[p->c->nlisteners - 1];
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].scope == CONFIG_SC_LISTENER)
			p->seen[i] = 0;
	}
	return 0;
}

/* "key = value" */
static int config_assign(struct config_parse *p, char *s)
{
	char *eq = strchr(s, '='), *key, *val;
	const struct config_key *k = NULL;
	size_t i;

	if (eq == NULL)
		return CONFIG_PERR(p, "expected 'key = value' or '[listener ADDR:PORT]'");
	*eq = '\0';
	key = config_trim(s);
	val = config_trim(eq + 1);
	if (*key == '\0')
		return CONFIG_PERR(p, "missing key before '='");
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (strcmp(config_keys[i].name, key) == 0) {
			k = &config_keys[i];
			break;
		}
	}
	if (k == NULL && p->l == NULL && *val != '\0') {
		char msg[400];
		int rc = config_relay_assign(&p->c->relay, key, val, p->dir, msg, sizeof msg);
		if (rc != -ENOENT)
			return rc < 0 ? CONFIG_PERR(p, "%s", msg) : 0;
	}
	if (k == NULL)
		return CONFIG_PERR(p, "unknown key '%s'", key);
	if (k->scope == CONFIG_SC_GLOBAL && p->l != NULL)
		return CONFIG_PERR(p, "'%s' is a global key: put it above the first [listener] "
		                      "section", key);
	if (k->scope == CONFIG_SC_LISTENER && p->l == NULL)
		return CONFIG_PERR(p, "'%s' belongs in a [listener ADDR:PORT] section", key);
	if (!k->repeatable && p->seen[i] != 0)
		return CONFIG_PERR(p, "duplicate key '%s' (first on line %u)", key, p->seen[i]);
	if (*val == '\0')
		return CONFIG_PERR(p, "empty value for '%s'", key);
	p->seen[i] = p->lineno;
	return k->set(p, val);
}

/* Checks that need the whole file, then the defaults that depend on other keys. */
static int config_finish(struct config_parse *p)
{
	struct config *c = p->c;
	struct config_listener l;
	char msg[400];

	if (config_listener_finish(p) < 0)
		return -EINVAL;
	if (c->nlisteners == 0) {
		if (config_listener_parse(CONFIG_DEFAULT_LISTENER, &l, msg, sizeof(msg)) < 0)
			return config_err(p->err, p->errsz, p->path, 0, "%s", msg);
		l.lenient_lf = false; /* a configured server is strict */
		c->listeners[c->nlisteners++] = l;
	}
	if (!p->accept_any_set)
		c->accept_any_domain = c->nlocal_domains == 0;
	else if (!c->accept_any_domain && c->nlocal_domains == 0)
		return config_err(p->err, p->errsz, p->path, p->accept_any_line,
		                  "accept_any_domain = no needs local_domains (no domain would "
		                  "be accepted)");
	if (!p->check_users_set)
		c->check_users = c->users != NULL;
	else if (c->check_users && c->users == NULL && c->aliases == NULL)
		return config_err(p->err, p->errsz, p->path, p->check_users_line,
		                  "check_users = yes needs a users or aliases file (every "
		                  "recipient would be refused)");
	return 0;
}

struct config *config_load(const char *path, char *err, size_t errsz)
{
	struct config_parse p;
	unsigned seen[CONFIG_NKEYS];
	struct config_reader r;
	struct config *c = NULL;
	const char *slash;
	char *s;
	int rc;

	memset(&p, 0, sizeof(p));
	memset(&r, 0, sizeof(r));
	memset(seen, 0, sizeof(seen));
	p.path = path;
	p.err = err;
	p.errsz = errsz;
	p.seen = seen;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	slash = strrchr(path, '/');
	if (slash != NULL &&
	    snprintf(p.dir, sizeof(p.dir), "%.*s", (int)(slash == path ? 1 : slash - path), path) >=
	            (int)sizeof(p.dir)) {
		config_err(err, errsz, path, 0, "path too long");
		goto fail;
	}
	if (config_reader_open(&r, path, NULL, CONFIG_READ_SETTINGS, err, errsz) < 0)
		goto fail;
	c = config_default();
	if (c == NULL) {
		config_err(err, errsz, path, 0, "out of memory");
		goto fail;
	}
	p.c = c;
	if (config_set_str(&p, "path", path, c->source, sizeof(c->source)) < 0)
		goto fail;
	c->nlisteners = 0;
	while ((rc = config_reader_next(&r, &s)) > 0) {
		p.lineno = r.lineno;
		rc = *s == '[' ? config_section(&p, s) : config_assign(&p, s);
		if (rc < 0)
			goto fail;
	}
	if (rc < 0)
		goto fail;
	if (config_finish(&p) < 0)
		goto fail;
	config_reader_close(&r);
	return c;
fail:
	config_reader_close(&r);
	config_free(c);
	return NULL;
}
