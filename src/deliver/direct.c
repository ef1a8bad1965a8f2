/* direct.c - direct delivery (see direct.h): local-only messages go straight into
 * their recipients' Maildirs, made durable by a group commit before the 250.
 *
 * Per message, on the loop thread: one tmp/<unique> file per recipient, opened at
 * DATA (Maildirs created on first use, parents fsynced); content is converted
 * CRLF -> LF once into a shared staging buffer and written to every file (the first
 * write of each file carries its Return-Path/Delivered-To prefix in the same write).
 * On the committer thread, for every message pending (a batch): flush the staging
 * buffer; syncfs() once per filesystem; then, on the publisher thread (so the next
 * batch syncs meanwhile), rename each tmp/ file to new/<unique>,S=<size>
 * (RENAME_NOREPLACE, never overwrites); fsync each distinct new/ once; then post
 * completions. Any failure unlinks that message's files
 * (tmp/ and new/) and reports the error: nothing un-promised is ever visible.
 *
 * Crash at any point before the 250: at worst tmp/ files are left (Maildir readers
 * ignore tmp/; the spec says to clean them after 36 hours) or, after the renames but
 * before the directory fsync completed, a copy may be visible that the client was
 * not told about (it retries: a duplicate, never a loss).
 *
 * It does not choose recipients, talk to the spool, retry, or bounce.
 */
#include "deliver/direct.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "deliver/local.h"
#include "deliver/maildir.h"
#include "util/buf.h"
#include "util/log.h"

#define DIRECT_STAGE 16384     /* converted bytes held before writing to the files */
#define DIRECT_DEVS 8          /* filesystems remembered per batch for syncfs */
#define DIRECT_PREFIX_MAX 2048 /* prefixes up to this go out in the same write */

enum direct_fault_op {
	DIRECT_FAULT_NONE,
	DIRECT_FAULT_WRITE,
	DIRECT_FAULT_FSYNC,
	DIRECT_FAULT_RENAME,
	DIRECT_FAULT_DIRSYNC,
};

struct direct_rcpt {
	int fd;
	dev_t dev;
	char *mbox;     /* the Maildir */
	char *base;     /* unique name without ",S=" */
	char *orig;     /* for the log */
	struct buf pre; /* prefix, LF line ends; written with the first data */
	bool pre_done;
	uint64_t size; /* bytes in the file */
	bool in_tmp;   /* tmp/<base> exists */
	bool in_new;   /* new/<base>,S=<size> exists */
	int dir_err;   /* result of the new/ fsync */
};

struct direct_msg {
	struct direct *d;
	struct direct_msg *next;
	char qid[SPOOL_QID_MAX];
	struct direct_rcpt *r;
	size_t nr;
	char *stage;
	size_t slen;
	bool pending_cr;
	int err; /* sticky */
	void (*done)(void *arg, int err, const char *qid);
	void *arg;
};

struct direct {
	char *data_dir, *pattern;
	char host[256];
	int efd;
	enum direct_fault_op fault;
	bool per_file_sync; /* fdatasync each file instead of syncfs (TERN_DIRECT_SYNC) */
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct direct_msg *pend_head, *pend_tail; /* loop -> committer */
	struct direct_msg *done_head, *done_tail; /* committer -> loop */
	bool pipelined;                           /* stage 2 thread publishes */
	pthread_t th2;
	bool started2;
	pthread_cond_t cv2;
	struct direct_msg *stage_head, *stage_tail; /* synced, to publish */
	bool stage_stop;
	bool stopping;
	unsigned long batches, msgs;
};

static int direct_fault(const struct direct *d, enum direct_fault_op op)
{
	return d->fault == op ? -EIO : 0;
}

static int direct_path(char *out, size_t outsz, const char *mbox, const char *sub, const char *name,
                       const char *suffix)
{
	int n = snprintf(out, outsz, "%s/%s%s%s%s", mbox, sub, name ? "/" : "", name ? name : "",
	                 suffix ? suffix : "");
	return (n < 0 || (size_t)n >= outsz) ? -ENAMETOOLONG : 0;
}

static int direct_new_name(struct direct *d, struct direct_rcpt *r)
{
	struct timeval tv;
	char base[512];
	gettimeofday(&tv, NULL);
	int n = snprintf(base, sizeof base, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	                 (long)tv.tv_usec, (long)getpid(), maildir_next_seq(), d->host);
	if (n < 0 || (size_t)n >= sizeof base)
		return -ENAMETOOLONG;
	char *b = strdup(base);
	if (b == NULL)
		return -ENOMEM;
	free(r->base);
	r->base = b;
	return 0;
}

/* CRLF -> LF for the prefix (it is ours, so it has no lone CR). */
static int direct_lf(struct buf *out, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			continue;
		int r = buf_append(out, &p[i], 1);
		if (r < 0)
			return r;
	}
	return 0;
}

static int direct_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write the staged bytes (and any prefix not yet written) to every file. */
static int direct_flush(struct direct_msg *m)
{
	if (m->err)
		return m->err;
	int r = direct_fault(m->d, DIRECT_FAULT_WRITE);
	/* The first write of a copy carries its prefix: one write(2), via a copy. */
	char first[DIRECT_STAGE + DIRECT_PREFIX_MAX];
	for (size_t i = 0; r == 0 && i < m->nr; i++) {
		struct direct_rcpt *rc = &m->r[i];
		size_t plen = rc->pre_done ? 0 : rc->pre.len;
		if (plen + m->slen == 0)
			continue;
		if (plen == 0) {
			r = direct_write_all(rc->fd, m->stage, m->slen);
		} else if (plen <= DIRECT_PREFIX_MAX) {
			memcpy(first, rc->pre.ptr, plen);
			if (m->slen > 0)
				memcpy(first + plen, m->stage, m->slen);
			r = direct_write_all(rc->fd, first, plen + m->slen);
		} else {
			r = direct_write_all(rc->fd, rc->pre.ptr, plen);
			if (r == 0)
				r = direct_write_all(rc->fd, m->stage, m->slen);
		}
		if (r == 0) {
			rc->size += plen + m->slen;
			rc->pre_done = true;
			buf_free(&rc->pre);
		}
	}
	m->slen = 0;
	if (r < 0)
		m->err = r;
	return r;
}

static int direct_stage_byte(struct direct_msg *m, char c)
{
	if (m->slen == DIRECT_STAGE) {
		int r = direct_flush(m);
		if (r < 0)
			return r;
	}
	m->stage[m->slen++] = c;
	return 0;
}

/* ---- committer ---- */

static int direct_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* Remove whatever the message left in tmp/ and new/. */
static void direct_msg_unlink(struct direct_msg *m)
{
	char p[PATH_MAX], sz[32];
	for (size_t i = 0; i < m->nr; i++) {
		struct direct_rcpt *rc = &m->r[i];
		if (rc->in_new) {
			snprintf(sz, sizeof sz, ",S=%llu", (unsigned long long)rc->size);
			if (direct_path(p, sizeof p, rc->mbox, "new", rc->base, sz) == 0)
				unlink(p);
			rc->in_new = false;
		}
		if (rc->in_tmp) {
			if (direct_path(p, sizeof p, rc->mbox, "tmp", rc->base, NULL) == 0)
				unlink(p);
			rc->in_tmp = false;
		}
	}
}

static int direct_publish(struct direct *d, struct direct_rcpt *rc)
{
	char from[PATH_MAX], to[PATH_MAX], sz[32];
	int r = direct_fault(d, DIRECT_FAULT_RENAME);
	if (r < 0)
		return r;
	snprintf(sz, sizeof sz, ",S=%llu", (unsigned long long)rc->size);
	if ((r = direct_path(from, sizeof from, rc->mbox, "tmp", rc->base, NULL)) < 0)
		return r;
	/* Names are unique within this process (pid, microseconds, a shared counter):
	 * a clash means something else writes our names; fail rather than overwrite. */
	if ((r = direct_path(to, sizeof to, rc->mbox, "new", rc->base, sz)) < 0)
		return r;
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
		return -errno;
	rc->in_tmp = false;
	rc->in_new = true;
	return 0;
}

/* Steps 1-2 of a batch: finish the files, make their data durable. */
static void direct_batch_sync(struct direct *d, struct direct_msg *list)
{
	struct {
		dev_t dev;
		int err;
	} devs[DIRECT_DEVS];
	size_t ndev = 0;

	/* 1. finish the files */
	for (struct direct_msg *m = list; m; m = m->next) {
		if (m->err == 0 && m->pending_cr) {
			m->pending_cr = false;
			direct_stage_byte(m, '\r');
		}
		direct_flush(m);
	}
	/* 2. make the data durable: per file (writeback of all started first, so the
	 * fdatasyncs share one journal commit), or one syncfs per filesystem */
	if (d->per_file_sync) {
		for (struct direct_msg *m = list; m; m = m->next)
			for (size_t i = 0; m->err == 0 && i < m->nr; i++)
				sync_file_range(m->r[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		for (struct direct_msg *m = list; m; m = m->next) {
			for (size_t i = 0; m->err == 0 && i < m->nr; i++) {
				int r = direct_fault(d, DIRECT_FAULT_FSYNC);
				if (r == 0 && fdatasync(m->r[i].fd) < 0)
					r = -errno;
				if (r < 0)
					m->err = r;
			}
		}
	}
	for (struct direct_msg *m = d->per_file_sync ? NULL : list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && i < m->nr; i++) {
			struct direct_rcpt *rc = &m->r[i];
			size_t k = 0;
			while (k < ndev && devs[k].dev != rc->dev)
				k++;
			if (k == ndev) {
				int r = direct_fault(d, DIRECT_FAULT_FSYNC);
				if (r == 0 && syncfs(rc->fd) < 0)
					r = -errno;
				if (ndev < DIRECT_DEVS) {
					devs[ndev].dev = rc->dev;
					devs[ndev].err = r;
					ndev++;
				}
				if (r < 0)
					m->err = r;
			} else if (devs[k].err < 0) {
				m->err = devs[k].err;
			}
		}
	}
}

/* Steps 3-5: rename into new/, fsync each new/ once, report. */
static void direct_batch_publish(struct direct *d, struct direct_msg *list)
{
	/* 3. make them visible */
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && i < m->nr; i++) {
			close(m->r[i].fd);
			m->r[i].fd = -1;
			int r = direct_publish(d, &m->r[i]);
			if (r < 0)
				m->err = r;
		}
	}
	/* 4. one fsync per distinct new/ (recipients of one mailbox share it) */
	char path[PATH_MAX];
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; i < m->nr; i++) {
			struct direct_rcpt *rc = &m->r[i];
			if (!rc->in_new)
				continue;
			rc->dir_err = 1; /* not yet synced */
		}
	}
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; i < m->nr; i++) {
			struct direct_rcpt *rc = &m->r[i];
			if (rc->dir_err != 1)
				continue;
			int r = direct_fault(d, DIRECT_FAULT_DIRSYNC);
			if (r == 0)
				r = direct_path(path, sizeof path, rc->mbox, "new", NULL, NULL);
			if (r == 0)
				r = direct_fsync_dir(path);
			/* every other copy in the same new/ is covered by this fsync */
			for (struct direct_msg *o = m; o; o = o->next)
				for (size_t j = 0; j < o->nr; j++)
					if (o->r[j].dir_err == 1 &&
					    strcmp(o->r[j].mbox, rc->mbox) == 0)
						o->r[j].dir_err = r;
		}
	}
	/* 5. outcome */
	char e1[300], e2[300];
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && i < m->nr; i++)
			if (m->r[i].dir_err < 0)
				m->err = m->r[i].dir_err;
		for (size_t i = 0; i < m->nr; i++) {
			if (m->r[i].fd >= 0)
				close(m->r[i].fd);
			m->r[i].fd = -1;
		}
		if (m->err) {
			direct_msg_unlink(m);
			log_warn("qid=%s event=commit-failed direct=yes error=\"%s\"", m->qid,
			         strerror(-m->err));
			continue;
		}
		for (size_t i = 0; i < m->nr; i++) {
			struct direct_rcpt *rc = &m->r[i];
			log_info("qid=%s event=delivered rcpt=<%s> mailbox=\"%s\" file=%s,S=%llu "
			         "direct=yes",
			         m->qid, log_escape(e1, sizeof e1, rc->orig, strlen(rc->orig)),
			         log_escape(e2, sizeof e2, rc->mbox, strlen(rc->mbox)), rc->base,
			         (unsigned long long)rc->size);
		}
	}
}

/* Hand a finished batch to the loop. */
static void direct_post(struct direct *d, struct direct_msg *list, struct direct_msg *tail)
{
	unsigned long n = 0;
	for (struct direct_msg *m = list; m; m = m->next)
		n++;
	pthread_mutex_lock(&d->mu);
	d->batches++;
	d->msgs += n;
	if (d->done_tail)
		d->done_tail->next = list;
	else
		d->done_head = list;
	d->done_tail = tail;
	pthread_mutex_unlock(&d->mu);
	uint64_t one = 1;
	ssize_t w = write(d->efd, &one, sizeof one);
	(void)w; /* the counter only overflows after 2^64 writes */
}

/* Stage 1 (and, without the pipeline, everything): take every pending message,
 * write and sync them; then publish them here or hand them to stage 2, so the next
 * batch's sync overlaps this batch's renames and directory fsyncs. */
static void *direct_committer_main(void *arg)
{
	struct direct *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (d->pend_head == NULL && !d->stopping)
			pthread_cond_wait(&d->cv, &d->mu);
		struct direct_msg *list = d->pend_head, *tail = d->pend_tail;
		d->pend_head = d->pend_tail = NULL;
		bool stop = d->stopping;
		pthread_mutex_unlock(&d->mu);
		if (list == NULL) {
			if (stop)
				break;
			continue;
		}
		direct_batch_sync(d, list);
		if (!d->pipelined) {
			direct_batch_publish(d, list);
			direct_post(d, list, tail);
			continue;
		}
		pthread_mutex_lock(&d->mu);
		if (d->stage_tail)
			d->stage_tail->next = list;
		else
			d->stage_head = list;
		d->stage_tail = tail;
		pthread_cond_signal(&d->cv2);
		pthread_mutex_unlock(&d->mu);
	}
	pthread_mutex_lock(&d->mu);
	d->stage_stop = true;
	pthread_cond_signal(&d->cv2);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Stage 2: publish synced batches (several at once if they queued up). */
static void *direct_publisher_main(void *arg)
{
	struct direct *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (d->stage_head == NULL && !d->stage_stop)
			pthread_cond_wait(&d->cv2, &d->mu);
		struct direct_msg *list = d->stage_head, *tail = d->stage_tail;
		d->stage_head = d->stage_tail = NULL;
		bool stop = d->stage_stop;
		pthread_mutex_unlock(&d->mu);
		if (list == NULL) {
			if (stop)
				break;
			continue;
		}
		direct_batch_publish(d, list);
		direct_post(d, list, tail);
	}
	return NULL;
}

/* ---- public ---- */

int direct_open(struct direct **out, const char *data_dir, const char *pattern,
                const char *hostname)
{
	int r = -ENOMEM;
	struct direct *d = calloc(1, sizeof *d);
	*out = NULL;
	if (d == NULL)
		return -ENOMEM;
	d->efd = -1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->cv2, NULL);
	d->data_dir = strdup(data_dir);
	d->pattern = strdup(pattern);
	if (d->data_dir == NULL || d->pattern == NULL)
		goto fail;
	maildir_host_part(d->host, sizeof d->host, hostname);
	const char *f = getenv("TERN_FAULT");
	if (f != NULL) {
		if (strcmp(f, "write") == 0)
			d->fault = DIRECT_FAULT_WRITE;
		else if (strcmp(f, "fsync") == 0)
			d->fault = DIRECT_FAULT_FSYNC;
		else if (strcmp(f, "rename") == 0)
			d->fault = DIRECT_FAULT_RENAME;
		else if (strcmp(f, "dirsync") == 0)
			d->fault = DIRECT_FAULT_DIRSYNC;
	}
	f = getenv("TERN_DIRECT_SYNC");
	d->per_file_sync = f != NULL && strcmp(f, "fdatasync") == 0;
	f = getenv("TERN_DIRECT_PIPELINE");
	d->pipelined = f == NULL || strcmp(f, "0") != 0;
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd < 0) {
		r = -errno;
		goto fail;
	}
	if (d->pipelined) {
		if (pthread_create(&d->th2, NULL, direct_publisher_main, d) != 0) {
			r = -EAGAIN;
			goto fail;
		}
		d->started2 = true;
	}
	if (pthread_create(&d->th, NULL, direct_committer_main, d) != 0) {
		r = -EAGAIN;
		goto fail;
	}
	d->started = true;
	*out = d;
	return 0;
fail:
	direct_close(d);
	return r;
}

void direct_close(struct direct *d)
{
	if (d == NULL)
		return;
	if (d->started) {
		pthread_mutex_lock(&d->mu);
		d->stopping = true;
		pthread_cond_signal(&d->cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->th, NULL);
	}
	if (d->started2) {
		if (!d->started) { /* stage 1 never ran: stop stage 2 ourselves */
			pthread_mutex_lock(&d->mu);
			d->stage_stop = true;
			pthread_cond_signal(&d->cv2);
			pthread_mutex_unlock(&d->mu);
		}
		pthread_join(d->th2, NULL);
	}
	if (d->started)
		direct_run_completions(d);
	if (d->efd >= 0)
		close(d->efd);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->cv2);
	free(d->data_dir);
	free(d->pattern);
	free(d);
}

int direct_event_fd(const struct direct *d)
{
	return d->efd;
}

static void direct_msg_free(struct direct_msg *m)
{
	for (size_t i = 0; i < m->nr; i++) {
		struct direct_rcpt *rc = &m->r[i];
		if (rc->fd >= 0)
			close(rc->fd);
		free(rc->mbox);
		free(rc->base);
		free(rc->orig);
		buf_free(&rc->pre);
	}
	free(m->r);
	free(m->stage);
	free(m);
}

void direct_run_completions(struct direct *d)
{
	uint64_t v;
	ssize_t rd = read(d->efd, &v, sizeof v);
	(void)rd; /* EAGAIN: nothing new, the list below is still checked */
	pthread_mutex_lock(&d->mu);
	struct direct_msg *list = d->done_head;
	d->done_head = d->done_tail = NULL;
	pthread_mutex_unlock(&d->mu);
	while (list) {
		struct direct_msg *next = list->next;
		if (list->done)
			list->done(list->arg, list->err, list->qid);
		direct_msg_free(list);
		list = next;
	}
}

/* Open tmp/<unique> in mbox, creating the Maildir on first use. */
static int direct_open_tmp(struct direct *d, struct direct_rcpt *rc)
{
	char p[PATH_MAX];
	int r;
	for (int tries = 0; tries < 5; tries++) {
		if ((r = direct_new_name(d, rc)) < 0 ||
		    (r = direct_path(p, sizeof p, rc->mbox, "tmp", rc->base, NULL)) < 0)
			return r;
		rc->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (rc->fd >= 0) {
			struct stat st;
			if (fstat(rc->fd, &st) < 0) {
				r = -errno;
				close(rc->fd);
				rc->fd = -1;
				unlink(p);
				return r;
			}
			rc->dev = st.st_dev;
			rc->in_tmp = true;
			return 0;
		}
		if (errno == ENOENT) {
			if ((r = maildir_create(rc->mbox)) < 0)
				return r;
			continue;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int direct_msg_begin(struct direct *d, struct direct_msg **out, const struct spool_envelope *env,
                     const char *qid)
{
	char mbox[PATH_MAX];
	int r = -ENOMEM;
	*out = NULL;
	if (env->nrcpts == 0 || env->nrcpts > DIRECT_RCPTS_MAX)
		return -EINVAL;
	struct direct_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		return -ENOMEM;
	m->d = d;
	snprintf(m->qid, sizeof m->qid, "%s", qid);
	m->r = calloc(env->nrcpts, sizeof *m->r);
	m->stage = malloc(DIRECT_STAGE);
	if (m->r == NULL || m->stage == NULL)
		goto fail;
	struct buf pre;
	buf_init(&pre, 0);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *sr = &env->rcpts[i];
		struct direct_rcpt *rc = &m->r[i];
		rc->fd = -1;
		buf_init(&rc->pre, 0);
		m->nr = i + 1;
		if ((r = local_mailbox_path(d->data_dir, d->pattern, sr->user, sr->domain, mbox,
		                            sizeof mbox)) < 0)
			break;
		rc->mbox = strdup(mbox);
		rc->orig = strdup(sr->orig ? sr->orig : "");
		if (rc->mbox == NULL || rc->orig == NULL) {
			r = -ENOMEM;
			break;
		}
		if ((r = local_header_prefix(&pre, env->from ? env->from : "", sr->user,
		                             sr->domain)) < 0 ||
		    (r = direct_lf(&rc->pre, pre.ptr, pre.len)) < 0)
			break;
		if ((r = direct_open_tmp(d, rc)) < 0)
			break;
	}
	buf_free(&pre);
	if (r < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	direct_msg_unlink(m);
	direct_msg_free(m);
	return r;
}

int direct_msg_write(struct direct_msg *m, const void *p, size_t n)
{
	const char *c = p;
	if (m->err)
		return m->err;
	for (size_t i = 0; i < n; i++) {
		int r;
		if (m->pending_cr) {
			m->pending_cr = false;
			if (c[i] != '\n' && (r = direct_stage_byte(m, '\r')) < 0)
				return r;
		}
		if (c[i] == '\r') {
			m->pending_cr = true;
			continue;
		}
		/* copy the run up to the next CR in one go */
		size_t j = i;
		while (j < n && c[j] != '\r')
			j++;
		while (i < j) {
			if (m->slen == DIRECT_STAGE && (r = direct_flush(m)) < 0)
				return r;
			size_t take = j - i;
			if (take > DIRECT_STAGE - m->slen)
				take = DIRECT_STAGE - m->slen;
			memcpy(m->stage + m->slen, c + i, take);
			m->slen += take;
			i += take;
		}
		i--; /* the for loop's i++ lands on the CR (or n) */
	}
	return 0;
}

void direct_msg_commit(struct direct_msg *m, void (*done)(void *arg, int err, const char *qid),
                       void *arg)
{
	struct direct *d = m->d;
	m->done = done;
	m->arg = arg;
	m->next = NULL;
	pthread_mutex_lock(&d->mu);
	if (d->pend_tail)
		d->pend_tail->next = m;
	else
		d->pend_head = m;
	d->pend_tail = m;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

void direct_msg_abort(struct direct_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nr; i++) {
		if (m->r[i].fd >= 0)
			close(m->r[i].fd);
		m->r[i].fd = -1;
	}
	direct_msg_unlink(m);
	direct_msg_free(m);
}

void direct_stats(const struct direct *d, unsigned long *batches, unsigned long *msgs)
{
	pthread_mutex_lock((pthread_mutex_t *)&d->mu);
	*batches = d->batches;
	*msgs = d->msgs;
	pthread_mutex_unlock((pthread_mutex_t *)&d->mu);
}
