/* spool.c - the durable queue (docs/QUEUE.md): queue ids, the envelope record
 * format, buffered message writing, the group-commit thread, per-recipient done
 * records, removal and crash recovery.
 *
 * It does not deliver, schedule or decide anything about a message; it does not
 * parse SMTP. Files: <dir>/incoming/<qid> while being written, <dir>/queue/<qid>
 * once durable, <dir>/queue/<qid>.done for delivered-recipient records. */
#include "queue/spool.h"
#include "queue/spool_test_hooks.h"
#include "util/budget.h"
#include "util/buf.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define SPOOL_BUF_SIZE (64u * 1024u)
/* A message past SPOOL_BIG_AT bytes is buffered in SPOOL_BUF_BIG writes: bigger
 * writes let the page cache use bigger folios, less CPU per byte (the same as the
 * direct delivery's big stage, bench/RESULTS.md runs W and Z); all such buffers
 * together stay under SPOOL_BIG_MEM_MAX. */
#define SPOOL_BUF_BIG (512u * 1024u)
#define SPOOL_BIG_AT (128u * 1024u)
#define SPOOL_BIG_MEM_MAX (64u << 20)
#define SPOOL_MAGIC "tern-queue 1"
#define SPOOL_ENV_END "envelope-end"
#define SPOOL_LINE_MAX (1024u * 1024u)  /* longest envelope record we read back */
#define SPOOL_SYNC_THREADS 4

int (*spool_fault_hook)(enum spool_fault_op op, const char *qid);

struct spool_msg {
	struct spool *sp;
	struct spool_msg *next;
	char qid[SPOOL_QID_MAX];
	int fd;
	char *buf;           /* bcap bytes of pending writes */
	size_t blen, bcap;
	int err;             /* first error; sticky */
	uint64_t file_len;   /* bytes written to the file so far (incl. buffered) */
	uint64_t body_off;
	off_t size_field_off;
	bool renamed;
	void (*done)(void *arg, int err, const char *qid);
	void *arg;
};

struct spool {
	char dir[PATH_MAX];
	int incoming_fd;     /* directory fds */
	int queue_fd;
	int efd;             /* eventfd: completions ready */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct spool_msg *pend_head, *pend_tail;
	struct spool_msg *done_head, *done_tail;
	bool stopping;
	bool thread_started;
	pthread_t committer;
	enum spool_sync_mode mode;
	int env_fault;       /* TERN_FAULT: op + 1, or 0 */
	uint64_t seed;
	atomic_uint_fast64_t counter;
	atomic_ulong nbatches;
	atomic_ulong nmsgs;
	atomic_size_t bigmem; /* bytes of SPOOL_BUF_BIG buffers now */
	size_t bigmem_max;    /* ... at most (SPOOL_BIG_MEM_MAX) */
	atomic_ulong nbig;    /* messages that got one (tests) */
};

/* ---- small helpers ---- */

static int spool_fault(const struct spool *sp, enum spool_fault_op op, const char *qid)
{
	if (sp->env_fault == (int)op + 1)
		return -EIO;
	if (spool_fault_hook != NULL)
		return spool_fault_hook(op, qid);
	return 0;
}

static bool spool_is_valid_qid(const char *qid)
{
	size_t n = 0;
	if (qid == NULL)
		return false;
	for (; qid[n] != '\0'; n++) {
		char c = qid[n];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
		if (n + 1 >= SPOOL_QID_MAX)
			return false;
	}
	return n > 0;
}

static uint64_t spool_mix64(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Sortable id: 11 chars of microseconds since the epoch, 4 chars of a per-process
 * counter, 6 chars of randomness; Crockford base32, whose digits sort in ASCII. */
static void spool_make_qid(struct spool *sp, char out[SPOOL_QID_MAX])
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	uint64_t cnt = atomic_fetch_add(&sp->counter, 1);
	uint64_t rnd = spool_mix64(sp->seed ^ (cnt * 0x2545f4914f6cdd1dull));
	size_t o = 0;
	for (int i = 10; i >= 0; i--)
		out[o++] = b32[(us >> (5 * i)) & 31];
	for (int i = 3; i >= 0; i--)
		out[o++] = b32[(cnt >> (5 * i)) & 31];
	for (int i = 5; i >= 0; i--)
		out[o++] = b32[(rnd >> (5 * i)) & 31];
	out[o] = '\0';
}

void spool_new_qid(struct spool *sp, char out[SPOOL_QID_MAX])
{
	spool_make_qid(sp, out);
}

static int spool_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int spool_fsync_dir(int dfd)
{
	return fsync(dfd) < 0 ? -errno : 0;
}

/* Percent-encode a field value: every byte outside 0x21..0x7e, and '%', becomes
 * %XX, so a record is always one line of printable ASCII with no spaces. */
static int spool_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	if (s == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		int r;
		if (*p > 0x20 && *p < 0x7f && *p != '%') {
			r = buf_append(b, p, 1);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			r = buf_append(b, e, 3);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int spool_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode [p, p+n) into a new NUL-terminated string. %00 and bad escapes fail. */
static int spool_decode(const char *p, size_t n, char **out)
{
	char *s = malloc(n + 1);
	size_t o = 0;
	if (s == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%') {
			if (i + 2 >= n)
				goto fail;
			int h = spool_hexval(p[i + 1]), l = spool_hexval(p[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				goto fail;
			s[o++] = (char)(h * 16 + l);
			i += 2;
		} else if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) {
			goto fail;
		} else {
			s[o++] = p[i];
		}
	}
	s[o] = '\0';
	*out = s;
	return 0;
fail:
	free(s);
	return -EBADMSG;
}

/* ---- open / close ---- */

static void *spool_committer_main(void *arg);

static int spool_mkdir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int spool_open(struct spool **out, const char *dir)
{
	char path[PATH_MAX];
	int r;
	struct spool *sp = calloc(1, sizeof *sp);
	*out = NULL;
	if (sp == NULL)
		return -ENOMEM;
	sp->incoming_fd = sp->queue_fd = sp->efd = -1;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	sp->mode = SPOOL_SYNC_SYNCFS; /* fastest measured here: docs/QUEUE.md */
	sp->bigmem_max = SPOOL_BIG_MEM_MAX;
	if (snprintf(sp->dir, sizeof sp->dir, "%s", dir) >= (int)sizeof sp->dir) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	const char *f = getenv("TERN_FAULT");
	if (f != NULL) {
		if (strcmp(f, "write") == 0)
			sp->env_fault = SPOOL_FAULT_WRITE + 1;
		else if (strcmp(f, "fsync") == 0)
			sp->env_fault = SPOOL_FAULT_FSYNC + 1;
		else if (strcmp(f, "rename") == 0)
			sp->env_fault = SPOOL_FAULT_RENAME + 1;
		else if (strcmp(f, "dirsync") == 0)
			sp->env_fault = SPOOL_FAULT_DIRSYNC + 1;
		if (sp->env_fault)
			log_warn("event=fault-injection TERN_FAULT=%s", f);
	}
	if ((r = spool_mkdir(dir)) < 0)
		goto fail;
	const char *sub[2] = {"incoming", "queue"};
	int *fds[2] = {&sp->incoming_fd, &sp->queue_fd};
	for (int i = 0; i < 2; i++) {
		if (snprintf(path, sizeof path, "%s/%s", dir, sub[i]) >= (int)sizeof path) {
			r = -ENAMETOOLONG;
			goto fail;
		}
		if ((r = spool_mkdir(path)) < 0)
			goto fail;
		*fds[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*fds[i] < 0) {
			r = -errno;
			goto fail;
		}
	}
	sp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sp->efd < 0) {
		r = -errno;
		goto fail;
	}
	if (getrandom(&sp->seed, sizeof sp->seed, 0) != sizeof sp->seed)
		sp->seed = spool_mix64((uint64_t)getpid() ^ (uint64_t)time(NULL));
	atomic_init(&sp->counter, sp->seed & 0xfffff);
	r = -pthread_create(&sp->committer, NULL, spool_committer_main, sp);
	if (r < 0)
		goto fail;
	sp->thread_started = true;
	*out = sp;
	return 0;
fail:
	spool_close(sp);
	return r;
}

void spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->mu);
		sp->stopping = true;
		pthread_cond_signal(&sp->cv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->committer, NULL);
		spool_run_completions(sp);
	}
	if (sp->incoming_fd >= 0)
		close(sp->incoming_fd);
	if (sp->queue_fd >= 0)
		close(sp->queue_fd);
	if (sp->efd >= 0)
		close(sp->efd);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	free(sp);
}

void spool_set_sync_mode(struct spool *sp, enum spool_sync_mode mode)
{
	pthread_mutex_lock(&sp->mu);
	sp->mode = mode;
	pthread_mutex_unlock(&sp->mu);
}

void spool_stats(const struct spool *sp, unsigned long *batches, unsigned long *msgs)
{
	*batches = atomic_load(&((struct spool *)sp)->nbatches);
	*msgs = atomic_load(&((struct spool *)sp)->nmsgs);
}

unsigned long spool_big_buffers(const struct spool *sp)
{
	return atomic_load(&((struct spool *)sp)->nbig);
}

void spool_set_big_mem_max(struct spool *sp, size_t max)
{
	sp->bigmem_max = max;
}

/* ---- writing ---- */

void spool_envelope_free(struct spool_envelope *e)
{
	if (e == NULL)
		return;
	free(e->from);
	free(e->helo);
	free(e->client_addr);
	for (size_t i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].orig);
		free(e->rcpts[i].user);
		free(e->rcpts[i].domain);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].last_error);
	}
	free(e->envid);
	e->envid = NULL;
	free(e->rcpts);
	e->from = e->helo = e->client_addr = NULL;
	e->rcpts = NULL;
	e->nrcpts = 0;
}

static int spool_msg_flush(struct spool_msg *m)
{
	if (m->blen == 0)
		return 0;
	int r = spool_fault(m->sp, SPOOL_FAULT_WRITE, m->qid);
	if (r == 0)
		r = spool_write_all(m->fd, m->buf, m->blen);
	m->blen = 0;
	return r;
}

/* The buffer of a message that has grown big, if the budget has room. */
static void spool_msg_grow(struct spool_msg *m)
{
	struct spool *sp = m->sp;
	if (budget_grow(&sp->bigmem, sp->bigmem_max, &m->buf, SPOOL_BUF_BIG)) {
		m->bcap = SPOOL_BUF_BIG;
		atomic_fetch_add(&sp->nbig, 1);
	}
}

static void spool_msg_free(struct spool_msg *m)
{
	if (m == NULL)
		return;
	if (m->fd >= 0)
		close(m->fd);
	free(m->buf);
	if (m->bcap == SPOOL_BUF_BIG)
		budget_give(&m->sp->bigmem, SPOOL_BUF_BIG);
	free(m);
}

static int spool_msg_put(struct spool_msg *m, const void *p, size_t n)
{
	int r;
	if (m->err)
		return m->err;
	m->file_len += n;
	if (m->blen + n <= m->bcap) {
		memcpy(m->buf + m->blen, p, n);
		m->blen += n;
		return 0;
	}
	if ((r = spool_msg_flush(m)) < 0)
		goto fail;
	if (m->bcap < SPOOL_BUF_BIG && m->file_len >= SPOOL_BIG_AT)
		spool_msg_grow(m);
	if (n >= m->bcap) {
		if ((r = spool_fault(m->sp, SPOOL_FAULT_WRITE, m->qid)) < 0)
			goto fail;
		if ((r = spool_write_all(m->fd, p, n)) < 0)
			goto fail;
		return 0;
	}
	memcpy(m->buf, p, n);
	m->blen = n;
	return 0;
fail:
	m->err = r;
	return r;
}

/* The envelope records up to and including envelope-end. The size field is fixed
 * width; commit overwrites it with the body length. */
static int spool_format_envelope(struct buf *h, const char *qid, const struct spool_envelope *env,
                                 off_t *size_off, uint64_t size)
{
	int r;
	/* The size field is fixed width; commit overwrites it with the body length. */
	r = buf_printf(h, "%s\nqid %s\narrival %lld\nsize ", SPOOL_MAGIC, qid,
	               (long long)env->arrival);
	if (r < 0)
		return r;
	*size_off = (off_t)h->len;
	if ((r = buf_printf(h, "%016llx\nsmtputf8 %d\nbody %d\nfrom ", (unsigned long long)size,
	                    env->smtputf8 ? 1 : 0, env->body)) < 0)
		return r;
	r = spool_encode(h, env->from);
	r = r ? r : buf_append_str(h, "\nhelo ");
	r = r ? r : spool_encode(h, env->helo);
	r = r ? r : buf_append_str(h, "\nclient ");
	r = r ? r : spool_encode(h, env->client_addr);
	r = r ? r : buf_append_str(h, "\n");
	if (r == 0 && env->envid != NULL) {
		r = buf_append_str(h, "envid ");
		r = r ? r : spool_encode(h, env->envid);
		r = r ? r : buf_append_str(h, "\n");
	}
	if (r == 0 && env->ret != 0)
		r = buf_printf(h, "ret %d\n", env->ret);
	for (size_t i = 0; r == 0 && i < env->nrcpts; i++) {
		r = buf_append_str(h, "rcpt ");
		r = r ? r : spool_encode(h, env->rcpts[i].orig);
		r = r ? r : buf_append_str(h, " ");
		r = r ? r : spool_encode(h, env->rcpts[i].user);
		r = r ? r : buf_append_str(h, " ");
		r = r ? r : spool_encode(h, env->rcpts[i].domain);
		r = r ? r : buf_append_str(h, "\n");
		/* records that qualify the rcpt above; older readers ignore them */
		if (r == 0 && env->rcpts[i].remote)
			r = buf_append_str(h, "route remote\n");
		if (r == 0 && env->rcpts[i].notify != 0)
			r = buf_printf(h, "notify %u\n", env->rcpts[i].notify);
		if (r == 0 && env->rcpts[i].orcpt != NULL) {
			r = buf_append_str(h, "orcpt ");
			r = r ? r : spool_encode(h, env->rcpts[i].orcpt);
			r = r ? r : buf_append_str(h, "\n");
		}
	}
	r = r ? r : buf_append_str(h, SPOOL_ENV_END "\n");
	return r;
}

int spool_msg_begin(struct spool *sp, struct spool_msg **out, struct spool_envelope *env)
{
	struct buf h;
	int r;
	struct spool_msg *m = calloc(1, sizeof *m);
	buf_init(&h, 0);
	*out = NULL;
	if (m == NULL)
		return -ENOMEM;
	m->fd = -1;
	m->sp = sp;
	m->buf = malloc(SPOOL_BUF_SIZE);
	m->bcap = SPOOL_BUF_SIZE;
	if (m->buf == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (int tries = 0;; tries++) {
		spool_make_qid(sp, m->qid);
		m->fd = openat(sp->incoming_fd, m->qid, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		               0600);
		if (m->fd >= 0)
			break;
		if (errno != EEXIST || tries > 8) {
			r = -errno;
			goto fail;
		}
	}
	r = spool_format_envelope(&h, m->qid, env, &m->size_field_off, 0);
	if (r < 0)
		goto fail;
	if ((r = spool_msg_put(m, h.ptr, h.len)) < 0)
		goto fail;
	m->body_off = m->file_len;
	memcpy(env->qid, m->qid, SPOOL_QID_MAX);
	buf_free(&h);
	*out = m;
	return 0;
fail:
	buf_free(&h);
	if (m->fd >= 0)
		unlinkat(sp->incoming_fd, m->qid, 0);
	spool_msg_free(m);
	return r;
}

int spool_msg_write(struct spool_msg *m, const void *p, size_t n)
{
	return spool_msg_put(m, p, n);
}

const char *spool_msg_qid(const struct spool_msg *m)
{
	return m->qid;
}

void spool_msg_abort(struct spool_msg *m)
{
	if (m == NULL)
		return;
	unlinkat(m->sp->incoming_fd, m->qid, 0);
	spool_msg_free(m);
}

void spool_msg_commit(struct spool_msg *m, void (*done)(void *arg, int err, const char *qid),
                      void *arg)
{
	struct spool *sp = m->sp;
	m->done = done;
	m->arg = arg;
	m->next = NULL;
	pthread_mutex_lock(&sp->mu);
	if (sp->pend_tail)
		sp->pend_tail->next = m;
	else
		sp->pend_head = m;
	sp->pend_tail = m;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
}

/* ---- the committer thread ---- */

/* Flush the buffer and fill in the size field (on the committer thread). */
static int spool_msg_finish(struct spool_msg *m)
{
	char sz[17];
	int r;
	if (m->err)
		return m->err;
	if ((r = spool_msg_flush(m)) < 0)
		return r;
	snprintf(sz, sizeof sz, "%016llx", (unsigned long long)(m->file_len - m->body_off));
	if ((r = spool_fault(m->sp, SPOOL_FAULT_WRITE, m->qid)) < 0)
		return r;
	ssize_t w = pwrite(m->fd, sz, 16, m->size_field_off);
	if (w < 0)
		return -errno;
	if (w != 16)
		return -EIO;
	return 0;
}

static int spool_msg_datasync(struct spool_msg *m)
{
	int r = spool_fault(m->sp, SPOOL_FAULT_FSYNC, m->qid);
	if (r < 0)
		return r;
	return fdatasync(m->fd) < 0 ? -errno : 0;
}

struct spool_syncjob {
	struct spool_msg **v;
	size_t n;
	atomic_size_t next;
};

static void *spool_sync_worker(void *arg)
{
	struct spool_syncjob *j = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->n)
			break;
		if (j->v[i]->err == 0)
			j->v[i]->err = spool_msg_datasync(j->v[i]);
	}
	return NULL;
}

static void spool_sync_batch(struct spool *sp, enum spool_sync_mode mode, struct spool_msg **v,
                             size_t n)
{
	if (mode == SPOOL_SYNC_SYNCFS) {
		int r = spool_fault(sp, SPOOL_FAULT_FSYNC, NULL);
		if (r == 0 && syncfs(sp->queue_fd) < 0)
			r = -errno;
		for (size_t i = 0; i < n; i++)
			if (v[i]->err == 0)
				v[i]->err = r;
		return;
	}
	/* Start writeback of every file first, so the per-file syncs mostly wait on
	 * I/O already in flight and share journal commits. */
	if (n > 1)
		for (size_t i = 0; i < n; i++)
			if (v[i]->err == 0)
				sync_file_range(v[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	struct spool_syncjob j = {.v = v, .n = n};
	atomic_init(&j.next, 0);
	pthread_t th[SPOOL_SYNC_THREADS];
	size_t nth = 0;
	if (mode == SPOOL_SYNC_PARALLEL) {
		size_t want = n - 1 < SPOOL_SYNC_THREADS ? n - 1 : SPOOL_SYNC_THREADS;
		for (; nth < want; nth++)
			if (pthread_create(&th[nth], NULL, spool_sync_worker, &j) != 0)
				break;
	}
	spool_sync_worker(&j);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
}

/* One batch: finish, sync, rename, one dir fsync; failures unlinked. */
static void spool_commit_batch(struct spool *sp, enum spool_sync_mode mode, struct spool_msg **v,
                               size_t n)
{
	size_t nrenamed = 0;
	for (size_t i = 0; i < n; i++)
		v[i]->err = spool_msg_finish(v[i]);
	spool_sync_batch(sp, mode, v, n);
	for (size_t i = 0; i < n; i++) {
		struct spool_msg *m = v[i];
		if (m->err)
			continue;
		int r = spool_fault(sp, SPOOL_FAULT_RENAME, m->qid);
		if (r == 0 && renameat(sp->incoming_fd, m->qid, sp->queue_fd, m->qid) < 0)
			r = -errno;
		m->err = r;
		if (r == 0) {
			m->renamed = true;
			nrenamed++;
		}
	}
	if (nrenamed > 0) {
		int r = spool_fault(sp, SPOOL_FAULT_DIRSYNC, NULL);
		if (r == 0)
			r = spool_fsync_dir(sp->queue_fd);
		if (r < 0) {
			/* Not durable: take them back out so that no un-acknowledged message
			 * is delivered (the client gets a 4xx and retries). */
			for (size_t i = 0; i < n; i++) {
				if (v[i]->renamed) {
					unlinkat(sp->queue_fd, v[i]->qid, 0);
					v[i]->renamed = false;
					v[i]->err = r;
				}
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct spool_msg *m = v[i];
		if (m->err) {
			if (!m->renamed)
				unlinkat(sp->incoming_fd, m->qid, 0);
			log_warn("qid=%s event=commit-failed error=\"%s\"", m->qid, strerror(-m->err));
		}
		close(m->fd);
		m->fd = -1;
	}
}

static void *spool_committer_main(void *arg)
{
	pthread_setname_np(pthread_self(), "spool-commit"); /* top -H, ps -L */
	struct spool *sp = arg;
	struct spool_msg **v = NULL;
	size_t vcap = 0;
	for (;;) {
		pthread_mutex_lock(&sp->mu);
		while (sp->pend_head == NULL && !sp->stopping)
			pthread_cond_wait(&sp->cv, &sp->mu);
		struct spool_msg *list = sp->pend_head;
		enum spool_sync_mode mode = sp->mode;
		sp->pend_head = sp->pend_tail = NULL;
		bool stop = sp->stopping;
		pthread_mutex_unlock(&sp->mu);
		if (list == NULL && stop)
			break;
		size_t n = 0;
		for (struct spool_msg *m = list; m; m = m->next)
			n++;
		if (n > vcap) {
			struct spool_msg **nv = realloc(v, n * 2 * sizeof *v);
			if (nv != NULL) {
				v = nv;
				vcap = n * 2;
			}
		}
		struct spool_msg *m = list;
		if (n <= vcap && mode != SPOOL_SYNC_NOBATCH) {
			for (size_t i = 0; i < n; i++, m = m->next)
				v[i] = m;
			spool_commit_batch(sp, mode, v, n);
			atomic_fetch_add(&sp->nbatches, 1);
		} else {
			/* baseline mode, or no memory for the batch array: one at a time */
			for (; m; m = m->next) {
				struct spool_msg *one = m;
				spool_commit_batch(sp, SPOOL_SYNC_SERIAL, &one, 1);
				atomic_fetch_add(&sp->nbatches, 1);
			}
		}
		atomic_fetch_add(&sp->nmsgs, n);
		pthread_mutex_lock(&sp->mu);
		if (sp->done_tail)
			sp->done_tail->next = list;
		else
			sp->done_head = list;
		while (list && list->next)
			list = list->next;
		if (list)
			sp->done_tail = list;
		pthread_mutex_unlock(&sp->mu);
		uint64_t one = 1;
		ssize_t w = write(sp->efd, &one, sizeof one);
		(void)w;
	}
	free(v);
	return NULL;
}

int spool_event_fd(const struct spool *sp)
{
	return sp->efd;
}

void spool_run_completions(struct spool *sp)
{
	uint64_t cnt;
	ssize_t rd = read(sp->efd, &cnt, sizeof cnt);
	(void)rd;
	pthread_mutex_lock(&sp->mu);
	struct spool_msg *list = sp->done_head;
	sp->done_head = sp->done_tail = NULL;
	pthread_mutex_unlock(&sp->mu);
	while (list) {
		struct spool_msg *next = list->next;
		if (list->done)
			list->done(list->arg, list->err, list->qid);
		spool_msg_free(list);
		list = next;
	}
}

/* ---- delivery side ---- */

int spool_queue_path(const struct spool *sp, const char *qid, char *out, size_t outsz)
{
	if (!spool_is_valid_qid(qid))
		return -EINVAL;
	int n = snprintf(out, outsz, "%s/queue/%s", sp->dir, qid);
	if (n < 0 || (size_t)n >= outsz)
		return -ENAMETOOLONG;
	return 0;
}

/* Split "a b c" (single spaces) into exactly want fields. */
static int spool_fields(const char *p, size_t n, size_t want, const char **f, size_t *fl)
{
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == ' ') {
			if (k == want)
				return -EBADMSG;
			f[k] = p + start;
			fl[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	return k == want ? 0 : -EBADMSG;
}

static int spool_parse_u64(const char *p, size_t n, int base, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		int d = spool_hexval(p[i]);
		if (d < 0 || d >= base || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return -EBADMSG;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* Read queue/<qid>.done: lines "<index>\n"; a torn last line is ignored. */
static int spool_read_done(struct spool *sp, const char *qid, struct spool_envelope *env)
{
	char name[SPOOL_QID_MAX + 8];
	char buf[4096];
	char line[32];
	size_t ll = 0;
	int r = 0;
	snprintf(name, sizeof name, "%s.done", qid);
	int fd = openat(sp->queue_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof line)
					line[ll++] = buf[i];
				continue;
			}
			uint64_t idx;
			if (ll < sizeof line && spool_parse_u64(line, ll, 10, &idx) == 0 &&
			    idx < env->nrcpts)
				env->rcpts[idx].done = true;
			ll = 0;
		}
	}
out:
	close(fd);
	return r;
}

int spool_read_envelope(struct spool *sp, const char *qid, struct spool_envelope *env,
                        uint64_t *body_off)
{
	char path[PATH_MAX];
	char *line = NULL;
	size_t lcap = 0;
	FILE *fp = NULL;
	uint64_t size = UINT64_MAX;
	bool have_qid = false, ended = false;
	size_t rcap = 0;
	int r;
	memset(env, 0, sizeof *env);
	if ((r = spool_queue_path(sp, qid, path, sizeof path)) < 0)
		return r;
	fp = fopen(path, "re");
	if (fp == NULL)
		return -errno;
	for (size_t lineno = 0; !ended; lineno++) {
		ssize_t n = getline(&line, &lcap, fp);
		r = -EBADMSG;
		if (n <= 0 || line[n - 1] != '\n' || (size_t)n > SPOOL_LINE_MAX)
			goto fail;
		n--;
		line[n] = '\0';
		if (lineno == 0) {
			if (strcmp(line, SPOOL_MAGIC) != 0)
				goto fail;
			continue;
		}
		if (strcmp(line, SPOOL_ENV_END) == 0) {
			ended = true;
			break;
		}
		const char *sp1 = memchr(line, ' ', (size_t)n);
		if (sp1 == NULL)
			goto fail;
		size_t kl = (size_t)(sp1 - line);
		const char *val = sp1 + 1;
		size_t vl = (size_t)n - kl - 1;
		uint64_t u;
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(line, k, kl) == 0)
		if (KEY("qid")) {
			if (vl >= SPOOL_QID_MAX || vl != strlen(qid) || memcmp(val, qid, vl) != 0)
				goto fail;
			memcpy(env->qid, val, vl);
			env->qid[vl] = '\0';
			have_qid = true;
		} else if (KEY("arrival")) {
			if (spool_parse_u64(val, vl, 10, &u) < 0)
				goto fail;
			env->arrival = (time_t)u;
		} else if (KEY("size")) {
			if (spool_parse_u64(val, vl, 16, &size) < 0)
				goto fail;
		} else if (KEY("smtputf8")) {
			if (spool_parse_u64(val, vl, 10, &u) < 0)
				goto fail;
			env->smtputf8 = u != 0;
		} else if (KEY("body")) {
			if (spool_parse_u64(val, vl, 10, &u) < 0 || u > 2)
				goto fail;
			env->body = (int)u;
		} else if (KEY("from") || KEY("helo") || KEY("client")) {
			char **dst = KEY("from") ? &env->from : KEY("helo") ? &env->helo : &env->client_addr;
			free(*dst);
			*dst = NULL;
			if ((r = spool_decode(val, vl, dst)) < 0)
				goto fail;
		} else if (KEY("rcpt")) {
			const char *f[3];
			size_t fl[3];
			if ((r = spool_fields(val, vl, 3, f, fl)) < 0)
				goto fail;
			if (env->nrcpts == rcap) {
				size_t ncap = rcap ? rcap * 2 : 4;
				struct spool_rcpt *nr = realloc(env->rcpts, ncap * sizeof *nr);
				r = -ENOMEM;
				if (nr == NULL)
					goto fail;
				env->rcpts = nr;
				rcap = ncap;
			}
			struct spool_rcpt *rc = &env->rcpts[env->nrcpts];
			memset(rc, 0, sizeof *rc);
			env->nrcpts++;
			if ((r = spool_decode(f[0], fl[0], &rc->orig)) < 0 ||
			    (r = spool_decode(f[1], fl[1], &rc->user)) < 0 ||
			    (r = spool_decode(f[2], fl[2], &rc->domain)) < 0)
				goto fail;
		} else if (KEY("route") || KEY("notify") || KEY("orcpt")) {
			if (env->nrcpts == 0)
				goto fail;
			struct spool_rcpt *rc = &env->rcpts[env->nrcpts - 1];
			if (KEY("route")) {
				rc->remote = vl == 6 && memcmp(val, "remote", 6) == 0;
			} else if (KEY("notify")) {
				if (spool_parse_u64(val, vl, 10, &u) < 0 || u > 15)
					goto fail;
				rc->notify = (unsigned)u;
			} else {
				free(rc->orcpt);
				rc->orcpt = NULL;
				if ((r = spool_decode(val, vl, &rc->orcpt)) < 0)
					goto fail;
			}
		} else if (KEY("envid")) {
			free(env->envid);
			env->envid = NULL;
			if ((r = spool_decode(val, vl, &env->envid)) < 0)
				goto fail;
		} else if (KEY("ret")) {
			if (spool_parse_u64(val, vl, 10, &u) < 0 || u > 2)
				goto fail;
			env->ret = (int)u;
		}
		/* unknown keys: ignored, so a newer writer's extra records do not break us */
#undef KEY
	}
	r = -EBADMSG;
	if (!have_qid || size == UINT64_MAX)
		goto fail;
	off_t off = ftello(fp);
	struct stat st;
	if (off < 0 || fstat(fileno(fp), &st) < 0) {
		r = -errno;
		goto fail;
	}
	r = -EBADMSG;
	if ((uint64_t)st.st_size != (uint64_t)off + size)
		goto fail; /* torn or damaged file */
	/* absent optional fields read back as "" */
	r = -ENOMEM;
	if ((env->from == NULL && (env->from = strdup("")) == NULL) ||
	    (env->helo == NULL && (env->helo = strdup("")) == NULL) ||
	    (env->client_addr == NULL && (env->client_addr = strdup("")) == NULL))
		goto fail;
	if ((r = spool_read_done(sp, qid, env)) < 0)
		goto fail;
	if ((r = spool_read_state(sp, qid, env)) < 0)
		goto fail;
	*body_off = (uint64_t)off;
	free(line);
	fclose(fp);
	return 0;
fail:
	free(line);
	fclose(fp);
	spool_envelope_free(env);
	return r;
}

int spool_mark_done(struct spool *sp, const char *qid, size_t i)
{
	char name[SPOOL_QID_MAX + 8];
	char rec[32];
	bool created = false;
	int r;
	if (!spool_is_valid_qid(qid))
		return -EINVAL;
	snprintf(name, sizeof name, "%s.done", qid);
	int fd = openat(sp->queue_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
	                0600);
	if (fd >= 0)
		created = true;
	else if (errno == EEXIST)
		fd = openat(sp->queue_fd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int n = snprintf(rec, sizeof rec, "%zu\n", i);
	if ((r = spool_write_all(fd, rec, (size_t)n)) < 0)
		goto fail;
	if (fdatasync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (created && (r = spool_fsync_dir(sp->queue_fd)) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	close(fd);
	return r;
}

int spool_remove(struct spool *sp, const char *qid)
{
	char name[SPOOL_QID_MAX + 8];
	if (!spool_is_valid_qid(qid))
		return -EINVAL;
	/* Queue file first: a crash in between leaves an orphan .done that recovery
	 * removes, never a queue file that lost its done records. */
	if (unlinkat(sp->queue_fd, qid, 0) < 0)
		return -errno;
	snprintf(name, sizeof name, "%s.done", qid);
	if (unlinkat(sp->queue_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	snprintf(name, sizeof name, "%s.state", qid);
	if (unlinkat(sp->queue_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	snprintf(name, sizeof name, "%s.hold", qid);
	if (unlinkat(sp->queue_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int spool_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List queue/<qid> names sorted; with clean, also delete orphan .done files. */
static int spool_scan_queue(struct spool *sp, bool clean, void (*cb)(void *arg, const char *qid),
                            void *arg)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	int dfd = -1;
	DIR *d = NULL;
	struct dirent *de;

	if ((dfd = dup(sp->queue_fd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		r = -errno;
		goto fail;
	}
	dfd = -1;
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (!spool_is_valid_qid(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(names, ncap * sizeof *nn);
			if (nn == NULL) {
				r = -ENOMEM;
				goto fail;
			}
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		n++;
	}
	/* orphan done records (crash inside spool_remove) */
	rewinddir(d);
	while (clean && (de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		char q[SPOOL_QID_MAX];
		/* sidecars: .done, .state, .hold (and a .state-tmp left by a crash) */
		const char *dot = strchr(de->d_name, '.');
		if (dot == NULL || (strcmp(dot, ".done") != 0 && strcmp(dot, ".state") != 0 &&
		                    strcmp(dot, ".hold") != 0 && strcmp(dot, ".state-tmp") != 0))
			continue;
		size_t sl = strlen(dot);
		if (l <= sl || l - sl >= SPOOL_QID_MAX)
			continue;
		memcpy(q, de->d_name, l - sl);
		q[l - sl] = '\0';
		if (faccessat(sp->queue_fd, q, F_OK, 0) < 0 && errno == ENOENT)
			unlinkat(sp->queue_fd, de->d_name, 0);
	}
	closedir(d);
	d = NULL;
	if (n > 0) /* names is NULL for an empty queue */
		qsort(names, n, sizeof *names, spool_cmp_str);
	for (size_t i = 0; i < n; i++)
		cb(arg, names[i]);
fail:
	if (d)
		closedir(d);
	if (dfd >= 0)
		close(dfd);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int spool_list(struct spool *sp, void (*cb)(void *arg, const char *qid), void *arg)
{
	return spool_scan_queue(sp, false, cb, arg);
}

/* Move a queue file that cannot be read back (bad magic, bad record, torn: size
 * record and length disagree) and its .done record to <spool>/corrupt/, where it is
 * kept for a human and never delivered. */
static void spool_quarantine(struct spool *sp, const char *qid, int err)
{
	char path[PATH_MAX], done[SPOOL_QID_MAX + 8];
	int cfd = -1, r = 0;
	if (snprintf(path, sizeof path, "%s/corrupt", sp->dir) >= (int)sizeof path) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	if ((r = spool_mkdir(path)) < 0)
		goto fail;
	if ((cfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		goto fail;
	}
	snprintf(done, sizeof done, "%s.done", qid);
	if (renameat(sp->queue_fd, qid, cfd, qid) < 0) {
		r = -errno;
		goto fail;
	}
	if (renameat(sp->queue_fd, done, cfd, done) < 0 && errno != ENOENT)
		r = -errno;
	fsync(cfd);
	fsync(sp->queue_fd);
	log_error("qid=%s event=quarantined reason=\"%s\" moved-to=%s/%s", qid, strerror(-err),
	          path, qid);
fail:
	if (r < 0)
		log_error("qid=%s event=quarantine-failed reason=\"%s\" error=\"%s\"", qid,
		          strerror(-err), strerror(-r));
	if (cfd >= 0)
		close(cfd);
}

struct spool_recover_ctx {
	struct spool *sp;
	void (*cb)(void *arg, const char *qid);
	void *arg;
};

/* A queue file found at start-up: hand it on if it reads back, else quarantine it.
 * I/O errors other than a damaged file leave it to delivery (which retries). */
static void spool_recover_one(void *arg, const char *qid)
{
	struct spool_recover_ctx *rc = arg;
	struct spool_envelope env;
	uint64_t off;
	int r = spool_read_envelope(rc->sp, qid, &env, &off);
	if (r == 0 && env.nrcpts == 0)
		r = -EBADMSG;
	spool_envelope_free(&env); /* zeroed by a failed read, so always safe */
	if (r == -EBADMSG || r == -EINVAL || r == -ERANGE) {
		spool_quarantine(rc->sp, qid, r);
		return;
	}
	rc->cb(rc->arg, qid);
}

int spool_recover(struct spool *sp, void (*cb)(void *arg, const char *qid), void *arg)
{
	int dfd = -1;
	DIR *d = NULL;
	struct dirent *de;

	/* incoming/: never acknowledged, so removed. */
	if ((dfd = dup(sp->incoming_fd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		int r = -errno;
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(sp->incoming_fd, de->d_name, 0) == 0)
			log_info("qid=%s event=recover-discard-incoming", de->d_name);
	}
	closedir(d);
	struct spool_recover_ctx rc = {.sp = sp, .cb = cb, .arg = arg};
	return spool_scan_queue(sp, true, spool_recover_one, &rc);
}

/* ---- injecting a generated message (bounces) ---- */

int spool_inject(struct spool *sp, const char *qid, const struct spool_envelope *env,
                 const void *body, size_t n)
{
	struct buf h;
	off_t size_off;
	int fd = -1, r;
	if (!spool_is_valid_qid(qid))
		return -EINVAL;
	if (faccessat(sp->queue_fd, qid, F_OK, 0) == 0)
		return -EEXIST;
	buf_init(&h, 0);
	struct spool_envelope e = *env;
	snprintf(e.qid, sizeof e.qid, "%s", qid);
	/* state first: a queue file never exists without the hold it was made with */
	if ((r = spool_write_state(sp, &e)) < 0 || (e.held && (r = spool_set_hold(sp, qid, true)) < 0))
		goto fail;
	if ((r = spool_format_envelope(&h, qid, &e, &size_off, n)) < 0 ||
	    (r = buf_append(&h, body, n)) < 0)
		goto fail;
	unlinkat(sp->incoming_fd, qid, 0);
	fd = openat(sp->incoming_fd, qid, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = spool_write_all(fd, h.ptr, h.len)) < 0)
		goto fail;
	if (fdatasync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	/* link, not rename: never replaces a message of the same id */
	char src[PATH_MAX + 64], dst[PATH_MAX + 64];
	snprintf(src, sizeof src, "%s/incoming/%s", sp->dir, qid);
	snprintf(dst, sizeof dst, "%s/queue/%s", sp->dir, qid);
	if (link(src, dst) < 0) {
		r = -errno;
		goto fail;
	}
	unlinkat(sp->incoming_fd, qid, 0);
	r = spool_fsync_dir(sp->queue_fd);
fail:
	if (fd >= 0)
		close(fd);
	if (r < 0 && r != -EEXIST)
		unlinkat(sp->incoming_fd, qid, 0);
	buf_free(&h);
	return r;
}

int spool_encode_value(struct buf *b, const char *s)
{
	return spool_encode(b, s);
}

int spool_decode_value(const char *p, size_t n, char **out)
{
	return spool_decode(p, n, out);
}
