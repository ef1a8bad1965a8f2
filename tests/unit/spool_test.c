/* spool_test.c - unit tests of the durable queue: envelope round trip with hostile
 * bytes, group commit from many threads, fault injection (write/fsync/rename/dir
 * fsync leave nothing behind), done records, removal and recovery. Real files in a
 * temporary directory; no mocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "queue/spool.h"
#include "queue/spool_test_hooks.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct spool_t {
	char dir[256];
	struct spool *sp;
	int ndone;
	int nerr;
	int last_err;
	char last_qid[SPOOL_QID_MAX];
	pthread_mutex_t mu;
};

static int spool_t_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int spool_t_setup(void **state)
{
	struct spool_t *t = calloc(1, sizeof *t);
	snprintf(t->dir, sizeof t->dir, "/tmp/spool_test.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	assert_int_equal(spool_open(&t->sp, t->dir), 0);
	pthread_mutex_init(&t->mu, NULL);
	*state = t;
	return 0;
}

static int spool_t_teardown(void **state)
{
	struct spool_t *t = *state;
	spool_fault_hook = NULL;
	spool_close(t->sp);
	nftw(t->dir, spool_t_rm, 16, FTW_DEPTH | FTW_PHYS);
	pthread_mutex_destroy(&t->mu);
	free(t);
	return 0;
}

static void spool_t_done(void *arg, int err, const char *qid)
{
	struct spool_t *t = arg;
	pthread_mutex_lock(&t->mu);
	t->ndone++;
	if (err)
		t->nerr++;
	t->last_err = err;
	snprintf(t->last_qid, sizeof t->last_qid, "%s", qid);
	pthread_mutex_unlock(&t->mu);
}

/* The event loop's part: wait on the eventfd, run completions, until n are done. */
static void spool_t_wait(struct spool_t *t, int n)
{
	for (int i = 0; i < 1000 && t->ndone < n; i++) {
		struct pollfd p = {.fd = spool_event_fd(t->sp), .events = POLLIN};
		poll(&p, 1, 100);
		spool_run_completions(t->sp);
	}
	assert_int_equal(t->ndone, n);
}

static int spool_t_count(const char *dir, const char *sub, const char *suffix)
{
	char p[512];
	int n = 0;
	snprintf(p, sizeof p, "%s/%s", dir, sub);
	DIR *d = opendir(p);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;
		if (suffix && (l < sl || strcmp(de->d_name + l - sl, suffix) != 0))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static struct spool_rcpt spool_t_rcpts[3] = {
	{.orig = "Bob@Example.COM", .user = "bob", .domain = "example.com"},
	{.orig = "we\r\nird user\x01\"q\"%41@x", .user = "we\r\nird user\x01", .domain = "x"},
	{.orig = "j\xc3\xbcrgen@b\xc3\xbc.de", .user = "j\xc3\xbcrgen", .domain = "b\xc3\xbc.de"},
};

static void spool_t_env(struct spool_envelope *e)
{
	memset(e, 0, sizeof *e);
	e->from = "sender\r\nX-Injected: yes @ %25 \"x\"@a.b";
	e->rcpts = spool_t_rcpts;
	e->nrcpts = 3;
	e->arrival = 1700000000;
	e->helo = "helo name\twith\x7f bytes";
	e->client_addr = "::1";
	e->smtputf8 = true;
	e->body = 1;
}

static const char spool_t_body[] = "Subject: hi\r\n\r\nline one\r\nenvelope-end\r\n.\r\n";

static void spool_t_commit_one(struct spool_t *t, char qid[SPOOL_QID_MAX], const char *body,
                               size_t blen)
{
	struct spool_envelope e;
	struct spool_msg *m;
	spool_t_env(&e);
	assert_int_equal(spool_msg_begin(t->sp, &m, &e), 0);
	assert_string_equal(e.qid, spool_msg_qid(m));
	snprintf(qid, SPOOL_QID_MAX, "%s", e.qid);
	assert_int_equal(spool_msg_write(m, body, blen), 0);
	int before = t->ndone;
	spool_msg_commit(m, spool_t_done, t);
	spool_t_wait(t, before + 1);
}

static void spool_t_roundtrip(void **state)
{
	struct spool_t *t = *state;
	char qid[SPOOL_QID_MAX];
	spool_t_commit_one(t, qid, spool_t_body, sizeof spool_t_body - 1);
	assert_int_equal(t->last_err, 0);
	assert_string_equal(t->last_qid, qid);
	assert_true(strlen(qid) < SPOOL_QID_MAX);
	for (const char *p = qid; *p; p++)
		assert_true((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
		            (*p >= 'a' && *p <= 'z'));

	struct spool_envelope r, e;
	uint64_t off;
	spool_t_env(&e);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), 0);
	assert_string_equal(r.qid, qid);
	assert_string_equal(r.from, e.from);
	assert_string_equal(r.helo, e.helo);
	assert_string_equal(r.client_addr, e.client_addr);
	assert_int_equal(r.arrival, e.arrival);
	assert_true(r.smtputf8);
	assert_int_equal(r.body, 1);
	assert_int_equal(r.nrcpts, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(r.rcpts[i].orig, e.rcpts[i].orig);
		assert_string_equal(r.rcpts[i].user, e.rcpts[i].user);
		assert_string_equal(r.rcpts[i].domain, e.rcpts[i].domain);
		assert_false(r.rcpts[i].done);
	}
	spool_envelope_free(&r);

	char path[512], got[256];
	assert_int_equal(spool_queue_path(t->sp, qid, path, sizeof path), 0);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = pread(fd, got, sizeof got, (off_t)off);
	close(fd);
	assert_int_equal(n, sizeof spool_t_body - 1);
	assert_memory_equal(got, spool_t_body, sizeof spool_t_body - 1);
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 0);
	assert_int_equal(spool_t_count(t->dir, "queue", NULL), 1);
}

static void spool_t_big(void **state)
{
	struct spool_t *t = *state;
	size_t n = 300 * 1024 + 7;
	char *body = malloc(n), *got = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)(i * 7 + 3);
	struct spool_envelope e;
	struct spool_msg *m;
	spool_t_env(&e);
	assert_int_equal(spool_msg_begin(t->sp, &m, &e), 0);
	/* mixed small and large writes */
	assert_int_equal(spool_msg_write(m, body, 10), 0);
	assert_int_equal(spool_msg_write(m, body + 10, 100000), 0);
	assert_int_equal(spool_msg_write(m, body + 100010, n - 100010), 0);
	spool_msg_commit(m, spool_t_done, t);
	spool_t_wait(t, 1);
	assert_int_equal(t->last_err, 0);
	struct spool_envelope r;
	uint64_t off;
	char path[512];
	assert_int_equal(spool_read_envelope(t->sp, e.qid, &r, &off), 0);
	spool_envelope_free(&r);
	assert_int_equal(spool_queue_path(t->sp, e.qid, path, sizeof path), 0);
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, got, n + 1, (off_t)off), (ssize_t)n);
	close(fd);
	assert_memory_equal(got, body, n);
	free(body);
	free(got);
}

/* The message's body in the queue equals want[0..n). */
static void spool_t_check_body(struct spool_t *t, const char *qid, const char *want, size_t n)
{
	struct spool_envelope r;
	uint64_t off;
	char path[512];
	char *got = malloc(n + 1);
	assert_non_null(got);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), 0);
	spool_envelope_free(&r);
	assert_int_equal(spool_queue_path(t->sp, qid, path, sizeof path), 0);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	size_t have = 0;
	ssize_t k;
	while (have < n + 1 && (k = pread(fd, got + have, n + 1 - have, (off_t)(off + have))) > 0)
		have += (size_t)k;
	close(fd);
	assert_int_equal(have, n);
	assert_memory_equal(got, want, n);
	free(got);
}

/* A message past 128 KiB is buffered in 512 KiB writes; smaller ones never are;
 * two big ones at once with room for one buffer: one gets it, both are whole. */
static void spool_t_big_buffers(void **state)
{
	struct spool_t *t = *state;
	size_t n = 3 * 1024 * 1024 + 11;
	char *body = malloc(n);
	assert_non_null(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)(i * 13 + 5);
	struct spool_envelope e[3];
	struct spool_msg *m[3];
	/* 100 KB in 4000-octet pieces: the 64 KiB buffer */
	spool_t_env(&e[0]);
	assert_int_equal(spool_msg_begin(t->sp, &m[0], &e[0]), 0);
	for (size_t off = 0; off < 100000; off += 4000)
		assert_int_equal(spool_msg_write(m[0], body + off, 4000), 0);
	spool_msg_commit(m[0], spool_t_done, t);
	spool_t_wait(t, 1);
	assert_int_equal(t->last_err, 0);
	assert_int_equal(spool_big_buffers(t->sp), 0);
	spool_t_check_body(t, e[0].qid, body, 100000);
	/* two of 3 MiB side by side, room for one big buffer */
	spool_set_big_mem_max(t->sp, 512 * 1024);
	for (int k = 1; k <= 2; k++) {
		spool_t_env(&e[k]);
		assert_int_equal(spool_msg_begin(t->sp, &m[k], &e[k]), 0);
	}
	for (size_t off = 0; off < n; off += 4000)
		for (int k = 1; k <= 2; k++)
			assert_int_equal(
			    spool_msg_write(m[k], body + off, n - off < 4000 ? n - off : 4000), 0);
	spool_msg_commit(m[1], spool_t_done, t);
	spool_msg_commit(m[2], spool_t_done, t);
	spool_t_wait(t, 3);
	assert_int_equal(t->last_err, 0);
	assert_int_equal(spool_big_buffers(t->sp), 1);
	spool_t_check_body(t, e[1].qid, body, n);
	spool_t_check_body(t, e[2].qid, body, n);
	free(body);
}

struct spool_t_thr {
	struct spool_t *t;
	int n;
};

static void *spool_t_thread(void *arg)
{
	struct spool_t_thr *a = arg;
	char body[4096];
	memset(body, 'x', sizeof body);
	for (int i = 0; i < a->n; i++) {
		struct spool_envelope e;
		struct spool_msg *m;
		spool_t_env(&e);
		if (spool_msg_begin(a->t->sp, &m, &e) != 0)
			abort();
		if (spool_msg_write(m, body, sizeof body) != 0)
			abort();
		spool_msg_commit(m, spool_t_done, a->t);
	}
	return NULL;
}

static void spool_t_concurrent(void **state)
{
	struct spool_t *t = *state;
	enum { NTHR = 8, PER = 50 };
	pthread_t th[NTHR];
	struct spool_t_thr a = {.t = t, .n = PER};
	for (int i = 0; i < NTHR; i++)
		assert_int_equal(pthread_create(&th[i], NULL, spool_t_thread, &a), 0);
	for (int i = 0; i < NTHR; i++)
		pthread_join(th[i], NULL);
	spool_t_wait(t, NTHR * PER);
	assert_int_equal(t->nerr, 0);
	assert_int_equal(spool_t_count(t->dir, "queue", NULL), NTHR * PER);
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 0);
	unsigned long batches, msgs;
	spool_stats(t->sp, &batches, &msgs);
	assert_int_equal(msgs, NTHR * PER);
	assert_true(batches < msgs); /* several commits shared one sync */
}

static enum spool_fault_op spool_t_fault_op;
static int spool_t_fault(enum spool_fault_op op, const char *qid)
{
	(void)qid;
	return op == spool_t_fault_op ? -EIO : 0;
}

static void spool_t_fault_run(void **state, enum spool_fault_op op, enum spool_sync_mode mode)
{
	struct spool_t *t = *state;
	char big[100000];
	memset(big, 'b', sizeof big);
	spool_set_sync_mode(t->sp, mode);
	spool_t_fault_op = op;
	spool_fault_hook = spool_t_fault;
	struct spool_msg *m[3];
	for (int i = 0; i < 3; i++) {
		struct spool_envelope e;
		spool_t_env(&e);
		assert_int_equal(spool_msg_begin(t->sp, &m[i], &e), 0);
	}
	/* a large write fails on the spot (write goes straight to the file) */
	int wr = spool_msg_write(m[0], big, sizeof big);
	if (op == SPOOL_FAULT_WRITE)
		assert_int_equal(wr, -EIO);
	else
		assert_int_equal(wr, 0);
	for (int i = 1; i < 3; i++)
		assert_int_equal(spool_msg_write(m[i], "small\r\n", 7), 0);
	for (int i = 0; i < 3; i++)
		spool_msg_commit(m[i], spool_t_done, t);
	spool_t_wait(t, 3);
	spool_fault_hook = NULL;
	assert_int_equal(t->nerr, 3);
	assert_int_equal(t->last_err, -EIO);
	assert_int_equal(spool_t_count(t->dir, "queue", NULL), 0);
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 0);
	/* and the spool still works afterwards */
	char qid[SPOOL_QID_MAX];
	spool_t_commit_one(t, qid, "ok\r\n", 4);
	assert_int_equal(t->last_err, 0);
	assert_int_equal(spool_t_count(t->dir, "queue", NULL), 1);
}

static void spool_t_fault_write(void **s) { spool_t_fault_run(s, SPOOL_FAULT_WRITE, SPOOL_SYNC_SERIAL); }
static void spool_t_fault_fsync(void **s) { spool_t_fault_run(s, SPOOL_FAULT_FSYNC, SPOOL_SYNC_PARALLEL); }
static void spool_t_fault_syncfs(void **s) { spool_t_fault_run(s, SPOOL_FAULT_FSYNC, SPOOL_SYNC_SYNCFS); }
static void spool_t_fault_rename(void **s) { spool_t_fault_run(s, SPOOL_FAULT_RENAME, SPOOL_SYNC_SERIAL); }
static void spool_t_fault_dirsync(void **s) { spool_t_fault_run(s, SPOOL_FAULT_DIRSYNC, SPOOL_SYNC_PARALLEL); }
static void spool_t_fault_nobatch(void **s) { spool_t_fault_run(s, SPOOL_FAULT_FSYNC, SPOOL_SYNC_NOBATCH); }

static void spool_t_abort(void **state)
{
	struct spool_t *t = *state;
	struct spool_envelope e;
	struct spool_msg *m;
	spool_t_env(&e);
	assert_int_equal(spool_msg_begin(t->sp, &m, &e), 0);
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 1);
	spool_msg_abort(m);
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 0);
}

static void spool_t_done_records(void **state)
{
	struct spool_t *t = *state;
	char qid[SPOOL_QID_MAX];
	struct spool_envelope r;
	uint64_t off;
	spool_t_commit_one(t, qid, "x\r\n", 3);
	assert_int_equal(spool_mark_done(t->sp, qid, 2), 0);
	assert_int_equal(spool_mark_done(t->sp, qid, 0), 0);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), 0);
	assert_true(r.rcpts[0].done);
	assert_false(r.rcpts[1].done);
	assert_true(r.rcpts[2].done);
	spool_envelope_free(&r);
	/* a torn (unterminated) record is ignored */
	char p[512];
	snprintf(p, sizeof p, "%s/queue/%s.done", t->dir, qid);
	FILE *f = fopen(p, "a");
	fputs("1", f);
	fclose(f);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), 0);
	assert_false(r.rcpts[1].done);
	spool_envelope_free(&r);
	assert_int_equal(spool_t_count(t->dir, "queue", ".done"), 1);
	assert_int_equal(spool_remove(t->sp, qid), 0);
	assert_int_equal(spool_t_count(t->dir, "queue", NULL), 0);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), -ENOENT);
}

static void spool_t_bad_input(void **state)
{
	struct spool_t *t = *state;
	struct spool_envelope r;
	uint64_t off;
	char p[512];
	assert_int_equal(spool_read_envelope(t->sp, "../x", &r, &off), -EINVAL);
	assert_int_equal(spool_read_envelope(t->sp, "a/b", &r, &off), -EINVAL);
	assert_int_equal(spool_queue_path(t->sp, "", p, sizeof p), -EINVAL);
	assert_int_equal(spool_mark_done(t->sp, "..", 0), -EINVAL);
	assert_int_equal(spool_remove(t->sp, "../../etc"), -EINVAL);
	/* a damaged (truncated) queue file is refused, not half-read */
	char qid[SPOOL_QID_MAX];
	spool_t_commit_one(t, qid, spool_t_body, sizeof spool_t_body - 1);
	assert_int_equal(spool_queue_path(t->sp, qid, p, sizeof p), 0);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(truncate(p, st.st_size - 3), 0);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), -EBADMSG);
	/* garbage header */
	FILE *f = fopen(p, "w");
	fputs("not a queue file\n", f);
	fclose(f);
	assert_int_equal(spool_read_envelope(t->sp, qid, &r, &off), -EBADMSG);
}

static void spool_t_recover_cb(void *arg, const char *qid)
{
	char (*got)[SPOOL_QID_MAX] = arg;
	for (int i = 0; i < 8; i++) {
		if (got[i][0] == '\0') {
			snprintf(got[i], SPOOL_QID_MAX, "%s", qid);
			return;
		}
	}
	fail();
}

static void spool_t_recover(void **state)
{
	struct spool_t *t = *state;
	char q[3][SPOOL_QID_MAX], p[512];
	for (int i = 0; i < 3; i++)
		spool_t_commit_one(t, q[i], "m\r\n", 2);
	/* an unacknowledged message (crash before commit) and an orphan done record */
	struct spool_envelope e;
	struct spool_msg *m;
	spool_t_env(&e);
	assert_int_equal(spool_msg_begin(t->sp, &m, &e), 0);
	assert_int_equal(spool_msg_write(m, "half", 4), 0);
	snprintf(p, sizeof p, "%s/queue/ZZZZ.done", t->dir);
	FILE *f = fopen(p, "w");
	fputs("0\n", f);
	fclose(f);
	assert_int_equal(spool_mark_done(t->sp, q[1], 0), 0);
	/* "restart": a second spool over the same directory */
	struct spool *sp2;
	char got[8][SPOOL_QID_MAX];
	memset(got, 0, sizeof got);
	assert_int_equal(spool_open(&sp2, t->dir), 0);
	/* listing alone changes nothing */
	assert_int_equal(spool_list(sp2, spool_t_recover_cb, got), 0);
	for (int i = 0; i < 3; i++)
		assert_string_equal(got[i], q[i]);
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 1);
	assert_int_equal(access(p, F_OK), 0);
	memset(got, 0, sizeof got);
	assert_int_equal(spool_recover(sp2, spool_t_recover_cb, got), 0);
	for (int i = 0; i < 3; i++)
		assert_string_equal(got[i], q[i]); /* qid order = commit order */
	assert_int_equal(got[3][0], '\0');
	assert_int_equal(spool_t_count(t->dir, "incoming", NULL), 0);
	assert_int_equal(access(p, F_OK), -1);                          /* orphan gone */
	assert_int_equal(spool_t_count(t->dir, "queue", ".done"), 1);   /* real one kept */
	spool_close(sp2);
	spool_msg_abort(m); /* its file is already gone; abort still frees */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(spool_t_roundtrip, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_big, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_big_buffers, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_concurrent, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_fault_write, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_fault_fsync, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_fault_syncfs, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_fault_rename, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_fault_dirsync, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_fault_nobatch, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_abort, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_done_records, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_bad_input, spool_t_setup, spool_t_teardown),
		cmocka_unit_test_setup_teardown(spool_t_recover, spool_t_setup, spool_t_teardown),
	};
	log_init("spool_test", LOG_LV_ERROR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
