/* direct_test.c - unit tests of direct delivery: one file per recipient in new/
 * with the Return-Path/Delivered-To prefix and LF line ends (CRLF split across
 * writes, lone CR kept, content larger than the staging buffer), ",S=" equal to the
 * size, nothing left in tmp/; many messages share a batch; abort and every injected
 * fault (TERN_FAULT) leave nothing in new/ or tmp/ and report the error; the early
 * reply goes out once durable, on both paths, and never for a failed commit. Real
 * files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deliver/direct.h"
#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char direct_t_dir[256];

static int direct_t_setup(void **state)
{
	(void)state;
	tmpdir_make(direct_t_dir, sizeof direct_t_dir, "direct_test");
	return 0;
}

static int direct_t_teardown(void **state)
{
	(void)state;
	unsetenv("TERN_FAULT");
	unsetenv("TERN_DIRECT_TMPFILE");
	tmpdir_remove(direct_t_dir);
	return 0;
}

/* Entries in <dir>/mail/<domain>/<user>/Maildir/<sub>; the last name into name. */
static int direct_t_count(const char *user, const char *sub, char *name, size_t nsz)
{
	char p[512];
	snprintf(p, sizeof p, "%s/mail/example.org/%s/Maildir/%s", direct_t_dir, user, sub);
	return tmpdir_count(p, name, nsz);
}

static char *direct_t_read(const char *user, const char *name, size_t *len)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/mail/example.org/%s/Maildir/new/%s", direct_t_dir, user, name);
	return tmpdir_read(p, len);
}

struct direct_t_res {
	int calls;
	int err;
	size_t replied;
	char qid[SPOOL_QID_MAX];
};

static void direct_t_done(void *arg, int err, const char *qid, size_t replied)
{
	struct direct_t_res *r = arg;
	r->calls++;
	r->err = err;
	r->replied = replied;
	snprintf(r->qid, sizeof r->qid, "%s", qid);
}

static void direct_t_wait(struct direct *d, struct direct_t_res *res, int want)
{
	for (int i = 0; i < 500; i++) {
		int total = 0;
		for (int k = 0; k < want; k++)
			total += res[k].calls;
		if (total == want)
			return;
		struct pollfd pfd = {.fd = direct_event_fd(d), .events = POLLIN};
		poll(&pfd, 1, 20);
		direct_run_completions(d);
	}
	fail_msg("completions did not arrive");
}

static struct spool_rcpt direct_t_rcpts[2] = {
    {.orig = "Alice@Example.org", .user = "alice", .domain = "example.org"},
    {.orig = "bob@example.org", .user = "bob", .domain = "example.org"},
};

static struct spool_envelope direct_t_env(size_t n)
{
	struct spool_envelope e;
	memset(&e, 0, sizeof e);
	e.from = "sender@example.net";
	e.rcpts = direct_t_rcpts;
	e.nrcpts = n;
	return e;
}

static void direct_t_basic(void **state)
{
	(void)state;
	struct direct *d;
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "host/a:b"), 0);
	struct spool_envelope env = direct_t_env(2);
	struct direct_msg *m;
	assert_int_equal(direct_msg_begin(d, &m, &env, "QID1"), 0);
	/* CRLF split across writes, a lone CR, and more than the 16 KiB staging buffer */
	assert_int_equal(direct_msg_write(m, "Subject: x\r", 11), 0);
	assert_int_equal(direct_msg_write(m, "\n\r\nline a\rb\r\n", 13), 0);
	char big[40000];
	memset(big, 'x', sizeof big);
	for (size_t i = 98; i < sizeof big; i += 100) {
		big[i] = '\r';
		big[i + 1] = '\n';
	}
	assert_int_equal(direct_msg_write(m, big, sizeof big), 0);
	assert_int_equal(direct_msg_write(m, "end\r", 4), 0);
	struct direct_t_res res = {0};
	direct_msg_commit(m, direct_t_done, &res);
	direct_t_wait(d, &res, 1);
	assert_int_equal(res.err, 0);
	assert_string_equal(res.qid, "QID1");
	/* acknowledged once in the journal; in new/ for sure once closed */
	direct_close(d);

	const char *users[2] = {"alice", "bob"};
	for (int u = 0; u < 2; u++) {
		char name[512];
		assert_int_equal(direct_t_count(users[u], "new", name, sizeof name), 1);
		assert_int_equal(direct_t_count(users[u], "tmp", NULL, 0), 0);
		assert_non_null(strstr(name, ".host\\057a\\072b,S="));
		size_t len;
		char *b = direct_t_read(users[u], name, &len);
		char want[128];
		snprintf(want, sizeof want,
		         "Return-Path: <sender@example.net>\nDelivered-To: %s@example.org\n"
		         "Subject: x\n\nline a\rb\nxx",
		         users[u]);
		assert_memory_equal(b, want, strlen(want));
		assert_int_equal(b[len - 1], '\r'); /* the final lone CR is kept */
		assert_memory_equal(b + len - 4, "end\r", 4);
		assert_null(memmem(b, len - 1, "\r\n", 2));
		unsigned long long s = strtoull(strstr(name, ",S=") + 3, NULL, 10);
		assert_int_equal(s, len);
		free(b);
	}
}

static void direct_t_batch(void **state)
{
	(void)state;
	struct direct *d;
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	struct spool_envelope env = direct_t_env(1);
	enum { N = 50 };
	struct direct_t_res res[N];
	memset(res, 0, sizeof res);
	for (int i = 0; i < N; i++) {
		struct direct_msg *m;
		char qid[16];
		snprintf(qid, sizeof qid, "Q%d", i);
		assert_int_equal(direct_msg_begin(d, &m, &env, qid), 0);
		assert_int_equal(direct_msg_write(m, "a\r\n", 3), 0);
		direct_msg_commit(m, direct_t_done, &res[i]);
	}
	direct_t_wait(d, res, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(res[i].err, 0);
	unsigned long batches, msgs;
	direct_stats(d, &batches, &msgs);
	assert_int_equal(msgs, N);
	assert_true(batches <= N);
	direct_close(d);
	assert_int_equal(direct_t_count("alice", "new", NULL, 0), N);
	assert_int_equal(direct_t_count("alice", "tmp", NULL, 0), 0);
}

static void direct_t_abort(void **state)
{
	(void)state;
	struct direct *d;
	struct spool_envelope env = direct_t_env(2);
	struct direct_msg *m;
	/* named tmp/ files, then O_TMPFILE copies (nothing named until the commit) */
	for (int anon = 0; anon < 2; anon++) {
		setenv("TERN_DIRECT_TMPFILE", anon ? "1" : "0", 1);
		assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
		assert_int_equal(direct_msg_begin(d, &m, &env, "Q"), 0);
		assert_int_equal(direct_msg_write(m, "a\r\n", 3), 0);
		assert_int_equal(direct_t_count("alice", "tmp", NULL, 0), anon ? 0 : 1);
		direct_msg_abort(m);
		assert_int_equal(direct_t_count("alice", "tmp", NULL, 0), 0);
		assert_int_equal(direct_t_count("bob", "tmp", NULL, 0), 0);
		assert_int_equal(direct_t_count("alice", "new", NULL, 0), 0);
		if (!anon)
			direct_close(d);
	}
	unsetenv("TERN_DIRECT_TMPFILE");
	direct_msg_abort(NULL);
	/* too many recipients, or none: refused, nothing created */
	env.nrcpts = 0;
	assert_int_equal(direct_msg_begin(d, &m, &env, "Q"), -EINVAL);
	direct_close(d);
	direct_close(NULL);
}

static void direct_t_faults(void **state)
{
	(void)state;
	/* the syncfs path (no journal), where every step decides the reply */
	const char *ops[] = {"write", "fsync", "rename", "dirsync"};
	setenv("TERN_DIRECT_JOURNAL", "0", 1);
	for (size_t k = 0; k < 8; k++) { /* named tmp/ files, then O_TMPFILE copies */
		setenv("TERN_DIRECT_TMPFILE", k < 4 ? "0" : "1", 1);
		setenv("TERN_FAULT", ops[k % 4], 1);
		struct direct *d;
		assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
		struct spool_envelope env = direct_t_env(2);
		struct direct_msg *m;
		assert_int_equal(direct_msg_begin(d, &m, &env, "Q"), 0);
		/* a write error may show now or at commit; either way the commit fails */
		direct_msg_write(m, "a\r\n", 3);
		struct direct_t_res res = {0};
		direct_msg_commit(m, direct_t_done, &res);
		direct_t_wait(d, &res, 1);
		assert_int_equal(res.err, -EIO);
		assert_int_equal(direct_t_count("alice", "new", NULL, 0), 0);
		assert_int_equal(direct_t_count("bob", "new", NULL, 0), 0);
		assert_int_equal(direct_t_count("alice", "tmp", NULL, 0), 0);
		assert_int_equal(direct_t_count("bob", "tmp", NULL, 0), 0);
		direct_close(d);
	}
	unsetenv("TERN_FAULT");
	unsetenv("TERN_DIRECT_JOURNAL");
}

/* Open with TERN_FAULT=fault, commit one message to alice and bob, wait for it. */
static struct direct *direct_t_one(const char *fault, const char *qid, const char *msg,
                                   struct direct_t_res *res)
{
	setenv("TERN_FAULT", fault, 1);
	struct direct *d;
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	struct spool_envelope env = direct_t_env(2);
	struct direct_msg *m;
	assert_int_equal(direct_msg_begin(d, &m, &env, qid), 0);
	direct_msg_write(m, msg, strlen(msg)); /* a write fault shows now or at commit */
	memset(res, 0, sizeof *res);
	direct_msg_commit(m, direct_t_done, res);
	direct_t_wait(d, res, 1);
	return d;
}

/* Journal path: a message's record is written while its copies are (the device
 * works meanwhile), so a copy that fails leaves a written record behind. The
 * message gets the error, and its record is retired unused: the next start does
 * not deliver it. */
static void direct_t_journal_write_fault(void **state)
{
	(void)state;
	struct direct_t_res res;
	struct direct *d = direct_t_one("write", "QF", "Subject: f\r\n\r\nnot me\r\n", &res);
	assert_int_equal(res.err, -EIO);
	direct_close(d);
	unsetenv("TERN_FAULT");
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	direct_close(d);
	assert_int_equal(direct_t_count("alice", "new", NULL, 0), 0);
	assert_int_equal(direct_t_count("bob", "new", NULL, 0), 0);
	assert_int_equal(direct_t_count("alice", "tmp", NULL, 0), 0);
}

/* A big message (the syncfs path) is handed to early writeback every 256 KiB of
 * each copy, on its own thread (ranges may be skipped when the thread is behind);
 * the copies are byte for byte what they would be without it; TERN_DIRECT_EARLY_WB=0
 * turns it off; a message for the journal never takes it. */
/* lines of 99 octets + CRLF (the letter of each line says which) */
static char *direct_t_lines(size_t lines, size_t *n)
{
	*n = lines * 101;
	char *in = malloc(*n);
	assert_non_null(in);
	for (size_t i = 0; i < lines; i++) {
		memset(in + i * 101, 'a' + (int)(i % 26), 99);
		memcpy(in + i * 101 + 99, "\r\n", 2);
	}
	return in;
}

/* in pieces that split lines */
static void direct_t_write_lines(struct direct_msg *m, const char *in, size_t n)
{
	for (size_t off = 0; off < n; off += 65521)
		assert_int_equal(direct_msg_write(m, in + off, n - off < 65521 ? n - off : 65521),
		                 0);
}

/* Each of alice's and bob's mailboxes holds k copies of those lines, byte-exact
 * (LF line ends, after the prefix); they are removed. */
static void direct_t_check_lines(size_t lines, int k)
{
	const char *users[2] = {"alice", "bob"};
	for (int u = 0; u < 2; u++) {
		for (int c = 0; c < k; c++) {
			char name[512], path[1024];
			assert_int_equal(direct_t_count(users[u], "new", name, sizeof name), k - c);
			size_t len;
			char *b = direct_t_read(users[u], name, &len);
			char pre[128];
			int plen = snprintf(
			    pre, sizeof pre,
			    "Return-Path: <sender@example.net>\nDelivered-To: %s@example.org\n",
			    users[u]);
			assert_int_equal(len, (size_t)plen + lines * 100);
			assert_memory_equal(b, pre, (size_t)plen);
			for (size_t i = 0; i < lines; i++) {
				const char *l = b + plen + i * 100;
				assert_int_equal(l[0], 'a' + (int)(i % 26));
				assert_int_equal(l[98], 'a' + (int)(i % 26));
				assert_int_equal(l[99], '\n');
			}
			free(b);
			snprintf(path, sizeof path, "%s/mail/example.org/%s/Maildir/new/%s",
			         direct_t_dir, users[u], name);
			assert_int_equal(unlink(path), 0);
		}
	}
}

struct direct_t_big {
	bool early_wb, relaxed;
	size_t lines;
	unsigned long kicks_min, kicks_max; /* early writeback ranges */
	unsigned long big;                  /* messages staged in big writes */
	bool drop;                          /* TERN_DIRECT_DROP unset (else =0) */
	unsigned long drops;                /* copies dropped from the page cache */
};

/* Pages of user's one copy in new/ that are in the page cache, and how many it has. */
static void direct_t_resident(const char *user, size_t *in, size_t *all)
{
	char name[512], p[1024];
	assert_int_equal(direct_t_count(user, "new", name, sizeof name), 1);
	snprintf(p, sizeof p, "%s/mail/example.org/%s/Maildir/new/%s", direct_t_dir, user, name);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	*all = ((size_t)st.st_size + pg - 1) / pg;
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	unsigned char *vec = malloc(*all);
	assert_non_null(vec);
	assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
	*in = 0;
	for (size_t i = 0; i < *all; i++)
		*in += vec[i] & 1;
	free(vec);
	munmap(map, (size_t)st.st_size);
	close(fd);
}

/* One message of t->lines lines to alice and bob. */
static void direct_t_big_one(const struct direct_t_big *t)
{
	if (t->early_wb)
		unsetenv("TERN_DIRECT_EARLY_WB");
	else
		setenv("TERN_DIRECT_EARLY_WB", "0", 1);
	if (t->drop)
		unsetenv("TERN_DIRECT_DROP");
	else
		setenv("TERN_DIRECT_DROP", "0", 1);
	struct direct *d;
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	unsetenv("TERN_DIRECT_EARLY_WB");
	unsetenv("TERN_DIRECT_DROP");
	direct_set_relaxed(d, t->relaxed);
	struct spool_envelope env = direct_t_env(2);
	struct direct_msg *m;
	assert_int_equal(direct_msg_begin(d, &m, &env, "QWB"), 0);
	size_t n;
	char *in = direct_t_lines(t->lines, &n);
	direct_t_write_lines(m, in, n);
	struct direct_t_res res = {0};
	direct_msg_commit(m, direct_t_done, &res);
	direct_t_wait(d, &res, 1);
	assert_int_equal(res.err, 0);
	/* a copy on the syncfs path is dropped before its completion is posted */
	unsigned long kicks = direct_wb_kicks(d), big = direct_big_stages(d),
	              drops = direct_drops(d);
	direct_close(d);
	assert_true(kicks >= t->kicks_min);
	assert_true(kicks <= t->kicks_max);
	assert_int_equal(big, t->big);
	assert_int_equal(drops, t->drops);
	const char *users[2] = {"alice", "bob"};
	for (int u = 0; u < 2; u++) {
		size_t cached, all;
		direct_t_resident(users[u], &cached, &all);
		if (t->drops > 0)
			assert_int_equal(cached, 0);
		else if (!t->relaxed)
			assert_int_equal(cached, all); /* written, synced, still there */
	}
	direct_t_check_lines(t->lines, 1);
	free(in);
}

static void direct_t_big_messages(void **state)
{
	(void)state;
	static const struct direct_t_big cases[] = {
	    /* 3.5 MiB: 16 KiB writes up to the journal's 128 KiB, then 512 KiB writes,
	     * each handed to writeback (up to 7 per copy, two copies); once synced, both
	     * copies leave the page cache */
	    {true, false, 36700, 1, 14, 1, true, 2},
	    {false, false, 36700, 0, 0, 1, true, 2},
	    {true, false, 36700, 1, 14, 1, false, 0},
	    /* relaxed: no journal, no early writeback, still big writes; never synced,
	     * so nothing is dropped */
	    {true, true, 36700, 0, 0, 1, true, 0},
	    /* 700 KB: one 512 KiB write while it arrives, one range per copy */
	    {true, false, 7000, 2, 2, 1, true, 2},
	    /* 40 KB: the journal path, small writes, no early writeback, kept */
	    {true, false, 400, 0, 0, 0, true, 0},
	    {true, true, 400, 0, 0, 0, true, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		direct_t_big_one(&cases[i]);
}

/* Big stages are limited in all: two big messages at once with room for one, the
 * other one is written in small pieces; both arrive whole. */
static void direct_t_big_stage_budget(void **state)
{
	(void)state;
	setenv("TERN_DIRECT_STAGE_MEM", "524288", 1);
	struct direct *d;
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	unsetenv("TERN_DIRECT_STAGE_MEM");
	struct spool_envelope env = direct_t_env(2);
	struct direct_msg *m[2];
	assert_int_equal(direct_msg_begin(d, &m[0], &env, "QB1"), 0);
	assert_int_equal(direct_msg_begin(d, &m[1], &env, "QB2"), 0);
	size_t n, lines = 20000;
	char *in = direct_t_lines(lines, &n);
	for (size_t off = 0; off < n; off += 65521) /* side by side */
		for (int k = 0; k < 2; k++)
			assert_int_equal(
			    direct_msg_write(m[k], in + off, n - off < 65521 ? n - off : 65521), 0);
	struct direct_t_res res[2] = {{0}, {0}};
	direct_msg_commit(m[0], direct_t_done, &res[0]);
	direct_msg_commit(m[1], direct_t_done, &res[1]);
	direct_t_wait(d, res, 2);
	assert_int_equal(res[0].err, 0);
	assert_int_equal(res[1].err, 0);
	assert_int_equal(direct_big_stages(d), 1);
	/* the big stage was given back: the next message gets it */
	struct direct_msg *m3;
	assert_int_equal(direct_msg_begin(d, &m3, &env, "QB3"), 0);
	direct_t_write_lines(m3, in, n);
	struct direct_t_res res3 = {0};
	direct_msg_commit(m3, direct_t_done, &res3);
	direct_t_wait(d, &res3, 1);
	assert_int_equal(res3.err, 0);
	assert_int_equal(direct_big_stages(d), 2);
	direct_close(d);
	direct_t_check_lines(lines, 3);
	free(in);
}

static void direct_t_copy(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	assert_non_null(a);
	assert_non_null(b);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		assert_int_equal(fwrite(buf, 1, n, b), n);
	fclose(a);
	fclose(b);
}

struct direct_t_pend {
	int n;
	char qid[SPOOL_QID_MAX], from[64], rcpt0[64], rcpt1[64], error[64];
	size_t nrcpts, size;
	unsigned attempts;
};

static void direct_t_pend_one(void *arg, const struct direct_pending *p)
{
	struct direct_t_pend *t = arg;
	t->n++;
	snprintf(t->qid, sizeof t->qid, "%s", p->qid);
	snprintf(t->from, sizeof t->from, "%s", p->from);
	t->nrcpts = p->nrcpts;
	snprintf(t->rcpt0, sizeof t->rcpt0, "%s", p->nrcpts > 0 ? p->rcpts[0] : "");
	snprintf(t->rcpt1, sizeof t->rcpt1, "%s", p->nrcpts > 1 ? p->rcpts[1] : "");
	snprintf(t->error, sizeof t->error, "%s", p->error);
	t->size = p->size;
	t->attempts = p->attempts;
}

/* Acknowledged through the journal but never placed (TERN_FAULT=place): the next
 * open replays it into both Maildirs; replayed again (the journal as it was), a
 * damaged copy in new/ is rewritten and a copy a reader moved to cur/ is left alone:
 * never a duplicate, never a loss. */
static void direct_t_replay(void **state)
{
	(void)state;
	char jp[512], saved[512], p[1024], q[1024], name[512];
	snprintf(jp, sizeof jp, "%s/spool/direct.journal", direct_t_dir);
	snprintf(saved, sizeof saved, "%s/journal.saved", direct_t_dir);
	struct direct_t_res res;
	struct direct *d = direct_t_one("place", "QR", "Subject: r\r\n\r\nreplay me\r\n", &res);
	assert_int_equal(res.err, 0); /* durable in the journal */
	/* listed for `tern queue` once its placing failed (on the publisher thread) */
	struct direct_t_pend pend = {0};
	for (int i = 0; i < 250 && pend.n == 0; i++) {
		memset(&pend, 0, sizeof pend);
		if (direct_pending_list(d, direct_t_pend_one, &pend) == 0)
			usleep(10000);
	}
	assert_int_equal(pend.n, 1);
	assert_string_equal(pend.qid, "QR");
	assert_string_equal(pend.from, "sender@example.net");
	assert_int_equal(pend.nrcpts, 2);
	assert_string_equal(pend.rcpt0, "Alice@Example.org");
	assert_string_equal(pend.rcpt1, "bob@example.org");
	assert_string_equal(pend.error, strerror(EIO));
	assert_int_equal(pend.size, strlen("Subject: r\n\nreplay me\n"));
	assert_true(pend.attempts >= 1);
	direct_close(d);
	unsetenv("TERN_FAULT");
	assert_int_equal(direct_pending_list(NULL, direct_t_pend_one, &pend), 0);
	assert_int_equal(direct_t_count("alice", "new", NULL, 0), 0);
	assert_int_equal(direct_t_count("alice", "tmp", NULL, 0), 0);
	direct_t_copy(jp, saved);

	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	memset(&pend, 0, sizeof pend);
	assert_int_equal(direct_pending_list(d, direct_t_pend_one, &pend), 0); /* replayed */
	direct_close(d);
	const char *want = "Return-Path: <sender@example.net>\nDelivered-To: alice@example.org\n"
	                   "Subject: r\n\nreplay me\n";
	assert_int_equal(direct_t_count("alice", "new", name, sizeof name), 1);
	assert_int_equal(direct_t_count("bob", "new", NULL, 0), 1);
	size_t len;
	char *b = direct_t_read("alice", name, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(b, want, len);
	free(b);
	assert_non_null(strstr(name, ",S=")); /* the name the record carries */

	/* as if the crash came before the mark: damage alice's copy, let bob's reader
	 * move his to cur/ */
	direct_t_copy(saved, jp);
	snprintf(p, sizeof p, "%s/mail/example.org/alice/Maildir/new/%s", direct_t_dir, name);
	assert_int_equal(truncate(p, 3), 0);
	char bname[512];
	assert_int_equal(direct_t_count("bob", "new", bname, sizeof bname), 1);
	snprintf(p, sizeof p, "%s/mail/example.org/bob/Maildir/new/%s", direct_t_dir, bname);
	snprintf(q, sizeof q, "%s/mail/example.org/bob/Maildir/cur/%s:2,S", direct_t_dir, bname);
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	direct_close(d);
	assert_int_equal(direct_t_count("alice", "new", NULL, 0), 1);
	b = direct_t_read("alice", name, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(b, want, len);
	free(b);
	assert_int_equal(direct_t_count("bob", "new", NULL, 0), 0);
	assert_int_equal(direct_t_count("bob", "cur", NULL, 0), 1);
	/* and once more with the current journal: nothing left to replay */
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	direct_close(d);
	assert_int_equal(direct_t_count("alice", "new", NULL, 0), 1);
	assert_int_equal(direct_t_count("bob", "cur", NULL, 0), 1);
	assert_int_equal(direct_t_count("bob", "new", NULL, 0), 0);
}

/* One message with an early reply on a socketpair; returns the bytes the peer got
 * (-1: none) into got. */
static void direct_t_early_one(struct direct *d, int sv[2], const char *text,
                               struct direct_t_res *res, char *got, size_t gotsz)
{
	struct spool_envelope env = direct_t_env(1);
	struct direct_msg *m;
	assert_int_equal(direct_msg_begin(d, &m, &env, "QE"), 0);
	assert_int_equal(direct_msg_write(m, "a\r\n", 3), 0);
	assert_int_equal(direct_msg_reply_early(m, sv[0], text, strlen(text)), 0);
	direct_msg_commit(m, direct_t_done, res);
	direct_t_wait(d, res, 1);
	ssize_t n = recv(sv[1], got, gotsz - 1, MSG_DONTWAIT);
	got[n > 0 ? n : 0] = '\0';
}

/* Commit m: it succeeds and no early byte went out; then close d. */
static void direct_t_commit_unreplied(struct direct *d, struct direct_msg *m)
{
	struct direct_t_res res = {0};
	direct_msg_commit(m, direct_t_done, &res);
	direct_t_wait(d, &res, 1);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.replied, 0);
	direct_close(d);
}

static void direct_t_early(void **state)
{
	(void)state;
	const char *text = "250 2.0.0 Ok: queued as QE\r\n";
	char got[256];
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* the journal path and the syncfs path: sent by the committing thread, counted */
	for (int journal = 1; journal >= 0; journal--) {
		setenv("TERN_DIRECT_JOURNAL", journal ? "1" : "0", 1);
		struct direct *d;
		assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
		struct direct_t_res res = {0};
		direct_t_early_one(d, sv, text, &res, got, sizeof got);
		assert_int_equal(res.err, 0);
		assert_int_equal(res.replied, strlen(text));
		assert_string_equal(got, text);
		direct_close(d);
	}
	/* a failed commit says nothing early: the loop sends its 4xx */
	setenv("TERN_DIRECT_JOURNAL", "0", 1);
	setenv("TERN_FAULT", "fsync", 1);
	struct direct *d;
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	struct direct_t_res res = {0};
	direct_t_early_one(d, sv, text, &res, got, sizeof got);
	assert_int_equal(res.err, -EIO);
	assert_int_equal(res.replied, 0);
	assert_string_equal(got, "");
	direct_close(d);
	unsetenv("TERN_FAULT");
	unsetenv("TERN_DIRECT_JOURNAL");
	/* a peer that went away: nothing sent, no SIGPIPE, the commit still succeeds */
	close(sv[1]);
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	struct spool_envelope env = direct_t_env(1);
	struct direct_msg *m;
	assert_int_equal(direct_msg_begin(d, &m, &env, "QF"), 0);
	assert_int_equal(direct_msg_reply_early(m, sv[0], text, strlen(text)), 0);
	direct_t_commit_unreplied(d, m);
	close(sv[0]);
	/* bad arguments: refused, the message commits without */
	assert_int_equal(direct_open(&d, direct_t_dir, "mail/%d/%u/Maildir", "h"), 0);
	assert_int_equal(direct_msg_begin(d, &m, &env, "QG"), 0);
	char longer[200];
	memset(longer, 'x', sizeof longer);
	assert_int_equal(direct_msg_reply_early(m, 1, longer, sizeof longer), -EINVAL);
	assert_int_equal(direct_msg_reply_early(m, -1, text, strlen(text)), -EINVAL);
	direct_t_commit_unreplied(d, m);
	assert_int_equal(direct_t_count("alice", "new", NULL, 0), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(direct_t_basic, direct_t_setup, direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_replay, direct_t_setup, direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_batch, direct_t_setup, direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_abort, direct_t_setup, direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_faults, direct_t_setup, direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_journal_write_fault, direct_t_setup,
	                                    direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_early, direct_t_setup, direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_big_messages, direct_t_setup,
	                                    direct_t_teardown),
	    cmocka_unit_test_setup_teardown(direct_t_big_stage_budget, direct_t_setup,
	                                    direct_t_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
