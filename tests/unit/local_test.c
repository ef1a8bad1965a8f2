/* local_test.c - unit tests of local delivery: the address -> mailbox path mapping
 * cannot escape the data directory, end-to-end delivery from a committed queue
 * entry into Maildirs (queue entry removed afterwards), and the failure path: an
 * unusable mailbox keeps the message queued, it is retried and delivered once the
 * problem is fixed, and recipients already delivered are not delivered again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/local.h"
#include "queue/spool.h"
#include "util/log.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char local_t_dir[256];

static int local_t_setup(void **state)
{
	(void)state;
	tmpdir_make(local_t_dir, sizeof local_t_dir, "local_test");
	return 0;
}

static int local_t_teardown(void **state)
{
	(void)state;
	tmpdir_remove(local_t_dir);
	return 0;
}

static void local_t_map_ok(const char *user, const char *domain, const char *want_tail)
{
	char out[PATH_MAX], want[PATH_MAX];
	assert_int_equal(local_mailbox_path("/data", "mail/%d/%u/Maildir", user, domain, out,
	                                    sizeof out),
	                 0);
	snprintf(want, sizeof want, "/data/mail/%s/Maildir", want_tail);
	assert_string_equal(out, want);
	/* exactly the pattern's slashes: nothing from the address */
	int slashes = 0;
	for (const char *p = out; *p; p++)
		slashes += *p == '/';
	assert_int_equal(slashes, 5);
	assert_null(strstr(out, "/."));
}

static void local_t_mapping(void **state)
{
	(void)state;
	local_t_map_ok("Bob", "Example.COM", "example.com/bob");
	local_t_map_ok("../x", "example.com", "example.com/%2E.%2Fx");
	local_t_map_ok("a/b", "example.com", "example.com/a%2Fb");
	local_t_map_ok("..", "..", "%2E./%2E.");
	local_t_map_ok(".hidden", "d", "d/%2Ehidden");
	local_t_map_ok("a.b", "d", "d/a.b");
	local_t_map_ok("x\r\ny\x01", "d", "d/x%0D%0Ay%01");
	local_t_map_ok("100%", "d", "d/100%25");
	local_t_map_ok("a\\b", "[127.0.0.1]", "%5B127.0.0.1%5D/a%5Cb");
	local_t_map_ok("j\xc3\xbcrgen", "d", "d/j%C3%BCrgen");
	/* distinct addresses stay distinct */
	char a[PATH_MAX], b[PATH_MAX];
	assert_int_equal(local_mailbox_path("/d", "%u", "a/b", "x", a, sizeof a), 0);
	assert_int_equal(local_mailbox_path("/d", "%u", "a%2Fb", "x", b, sizeof b), 0);
	assert_string_not_equal(a, b);

	char out[PATH_MAX];
	assert_int_equal(local_mailbox_path("/d", "%u", "", "x", out, sizeof out), -EINVAL);
	assert_int_equal(local_mailbox_path("/d", "%d/%u", "u", "", out, sizeof out), -EINVAL);
	assert_int_equal(local_mailbox_path("/d", "%u", NULL, "x", out, sizeof out), -EINVAL);
	assert_int_equal(local_mailbox_path("/d", "%x/%u", "u", "x", out, sizeof out), -EINVAL);
	assert_int_equal(local_mailbox_path("/d", "%u", "u", "x", out, 4), -ENAMETOOLONG);
	char longu[400];
	memset(longu, 'a', sizeof longu - 1);
	longu[sizeof longu - 1] = '\0';
	assert_int_equal(local_mailbox_path("/d", "%u", longu, "x", out, sizeof out), -ENAMETOOLONG);
	assert_int_equal(local_mailbox_path("/d", "/var/mail/%u%%", "U", "x", out, sizeof out), 0);
	assert_string_equal(out, "/var/mail/u%");
}

static void local_t_commit_done(void *arg, int err, const char *qid)
{
	int *e = arg;
	*e = err;
	(void)qid;
}

static void local_t_commit(struct spool *sp, struct spool_rcpt *rc, size_t n, char *qid)
{
	struct spool_envelope e;
	struct spool_msg *m;
	int err = 1;
	memset(&e, 0, sizeof e);
	e.from = "sender@example.org";
	e.rcpts = rc;
	e.nrcpts = n;
	e.helo = "h";
	e.client_addr = "127.0.0.1";
	assert_int_equal(spool_msg_begin(sp, &m, &e), 0);
	static const char body[] = "Subject: x\r\n\r\nbody\r\n";
	assert_int_equal(spool_msg_write(m, body, sizeof body - 1), 0);
	spool_msg_commit(m, local_t_commit_done, &err);
	for (int i = 0; i < 100 && err == 1; i++) {
		struct pollfd p = {.fd = spool_event_fd(sp), .events = POLLIN};
		poll(&p, 1, 100);
		spool_run_completions(sp);
	}
	assert_int_equal(err, 0);
	snprintf(qid, SPOOL_QID_MAX, "%s", e.qid);
}

/* Wait up to ms for the queue file of qid to disappear. */
static bool local_t_wait_gone(struct spool *sp, const char *qid, int ms)
{
	char p[PATH_MAX];
	assert_int_equal(spool_queue_path(sp, qid, p, sizeof p), 0);
	for (int i = 0; i < ms / 20; i++) {
		if (access(p, F_OK) < 0)
			return true;
		usleep(20000);
	}
	return access(p, F_OK) < 0;
}

static void local_t_end_to_end(void **state)
{
	(void)state;
	char spdir[300], p[600], qid[SPOOL_QID_MAX];
	struct spool *sp;
	struct local_delivery *ld;
	snprintf(spdir, sizeof spdir, "%s/spool", local_t_dir);
	assert_int_equal(spool_open(&sp, spdir), 0);
	struct local_delivery_opts o = {.data_dir = local_t_dir,
	                                .mailbox_pattern = "mail/%d/%u/Maildir",
	                                .hostname = "mx.test",
	                                .threads = 2,
	                                .retry_first_s = 1,
	                                .retry_max_s = 2};
	assert_int_equal(local_delivery_start(&ld, sp, &o), 0);
	struct spool_rcpt rc[2] = {
		{.orig = "Bob@Example.com", .user = "Bob", .domain = "Example.com"},
		{.orig = "eve@example.com", .user = "eve", .domain = "example.com"},
	};
	local_t_commit(sp, rc, 2, qid);
	local_delivery_enqueue(ld, qid);
	local_delivery_enqueue(ld, qid); /* a duplicate enqueue is harmless */
	assert_true(local_t_wait_gone(sp, qid, 5000));
	usleep(100000);
	local_delivery_stop(ld);

	snprintf(p, sizeof p, "%s/mail/example.com/bob/Maildir/new", local_t_dir);
	assert_int_equal(tmpdir_count(p, NULL, 0), 1);
	char name[300] = "", file[1200];
	assert_int_equal(tmpdir_count(p, name, sizeof name), 1);
	snprintf(file, sizeof file, "%s/%s", p, name);
	size_t n;
	char *got = tmpdir_read(file, &n);
	assert_string_equal(got, "Return-Path: <sender@example.org>\nDelivered-To: Bob@example.com\n"
	                         "Subject: x\n\nbody\n");
	free(got);
	snprintf(p, sizeof p, "%s/mail/example.com/eve/Maildir/new", local_t_dir);
	assert_int_equal(tmpdir_count(p, NULL, 0), 1);
	snprintf(p, sizeof p, "%s/queue", spdir);
	assert_int_equal(tmpdir_count(p, NULL, 0), 0);
	spool_close(sp);
}

static void local_t_retry(void **state)
{
	(void)state;
	char spdir[300], p[600], blocker[600], qid[SPOOL_QID_MAX];
	struct spool *sp;
	struct local_delivery *ld;
	snprintf(spdir, sizeof spdir, "%s/spool", local_t_dir);
	assert_int_equal(spool_open(&sp, spdir), 0);
	/* good.test works; bad.test's mailbox path is blocked by a regular file
	 * (the tests run as root, so a chmod would not stop the writer) */
	snprintf(p, sizeof p, "%s/mail", local_t_dir);
	mkdir(p, 0700);
	snprintf(blocker, sizeof blocker, "%s/mail/bad.test", local_t_dir);
	int fd = open(blocker, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct local_delivery_opts o = {.data_dir = local_t_dir,
	                                .mailbox_pattern = "mail/%d/%u/Maildir",
	                                .hostname = "mx.test",
	                                .threads = 1,
	                                .retry_first_s = 1,
	                                .retry_max_s = 1};
	assert_int_equal(local_delivery_start(&ld, sp, &o), 0);
	struct spool_rcpt rc[2] = {
		{.orig = "a@good.test", .user = "a", .domain = "good.test"},
		{.orig = "b@bad.test", .user = "b", .domain = "bad.test"},
	};
	local_t_commit(sp, rc, 2, qid);
	local_delivery_enqueue(ld, qid);
	/* not delivered: stays queued through a first attempt and a retry */
	assert_false(local_t_wait_gone(sp, qid, 1600));
	char good[600];
	snprintf(good, sizeof good, "%s/mail/good.test/a/Maildir/new", local_t_dir);
	assert_int_equal(tmpdir_count(good, NULL, 0), 1);
	struct spool_envelope env;
	uint64_t off;
	assert_int_equal(spool_read_envelope(sp, qid, &env, &off), 0);
	assert_true(env.rcpts[0].done);
	assert_false(env.rcpts[1].done);
	spool_envelope_free(&env);

	/* fix it: the next retry delivers */
	assert_int_equal(unlink(blocker), 0);
	assert_true(local_t_wait_gone(sp, qid, 5000));
	local_delivery_stop(ld);
	snprintf(p, sizeof p, "%s/mail/bad.test/b/Maildir/new", local_t_dir);
	assert_int_equal(tmpdir_count(p, NULL, 0), 1);
	assert_int_equal(tmpdir_count(good, NULL, 0), 1); /* not delivered twice */
	spool_close(sp);
}

static void local_t_stop_keeps_queue(void **state)
{
	(void)state;
	char spdir[300], qid[SPOOL_QID_MAX];
	struct spool *sp;
	struct local_delivery *ld;
	snprintf(spdir, sizeof spdir, "%s/spool", local_t_dir);
	assert_int_equal(spool_open(&sp, spdir), 0);
	struct local_delivery_opts o = {.data_dir = local_t_dir, .hostname = "h", .threads = 3};
	/* an unusable absolute pattern: delivery fails; stop leaves the message */
	char blocker[600];
	snprintf(blocker, sizeof blocker, "%s/blk", local_t_dir);
	int fd = open(blocker, O_WRONLY | O_CREAT, 0600);
	close(fd);
	char pat[700];
	snprintf(pat, sizeof pat, "%s/%%u/Maildir", blocker);
	o.mailbox_pattern = pat;
	assert_int_equal(local_delivery_start(&ld, sp, &o), 0);
	struct spool_rcpt rc[1] = {{.orig = "u@d", .user = "u", .domain = "d"}};
	local_t_commit(sp, rc, 1, qid);
	local_delivery_enqueue(ld, qid);
	usleep(200000);
	local_delivery_stop(ld);
	char p[PATH_MAX];
	assert_int_equal(spool_queue_path(sp, qid, p, sizeof p), 0);
	assert_int_equal(access(p, F_OK), 0);
	local_delivery_enqueue(NULL, qid); /* no-op, as during shutdown */
	spool_close(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(local_t_mapping),
		cmocka_unit_test_setup_teardown(local_t_end_to_end, local_t_setup, local_t_teardown),
		cmocka_unit_test_setup_teardown(local_t_retry, local_t_setup, local_t_teardown),
		cmocka_unit_test_setup_teardown(local_t_stop_keeps_queue, local_t_setup,
		                                local_t_teardown),
	};
	log_init("local_test", LOG_LV_ERROR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
