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

#include <dirent.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "deliver/local.h"
#include "deliver/maildir.h"
#include "queue/journal.h"
#include "util/budget.h"
#include "util/buf.h"
#include "util/dirsync.h"
#include "util/log.h"
#include "util/scan.h"

#define DIRECT_STAGE 16384 /* converted bytes held before writing to the files */
/* ...and for a big message once it is past the journal's limit: bigger writes let
 * the page cache use bigger folios, which costs less per byte to fill and write
 * back (bench/RESULTS.md run W). */
#define DIRECT_STAGE_BIG (512u << 10)
#define DIRECT_STAGE_MEM_MAX (64u << 20)    /* big stages of all messages, at most */
#define DIRECT_DEVS 8                       /* filesystems remembered per batch for syncfs */
#define DIRECT_PREFIX_MAX 2048              /* prefixes up to this go out in the same write */
#define DIRECT_JOURNAL_MSG_MAX (128u << 10) /* bigger messages take the syncfs path */
/* Records are built in memory while their message arrives: all of them together may
 * hold this much; a message that would need more takes the syncfs path. */
#define DIRECT_JOURNAL_MEM_MAX (64u << 20)
#define DIRECT_CKPT_NS 100000000L         /* checkpoint at least this often (100 ms) */
#define DIRECT_REC_MAGIC 0x314d4454u      /* "TDM1": a journal record of direct.c */
#define DIRECT_REPLY_MAX 128              /* an early reply (direct_msg_reply_early) */

enum direct_fault_op {
	DIRECT_FAULT_NONE,
	DIRECT_FAULT_WRITE,
	DIRECT_FAULT_FSYNC,
	DIRECT_FAULT_RENAME,
	DIRECT_FAULT_DIRSYNC,
	DIRECT_FAULT_JOURNAL, /* the journal's fdatasync fails */
	DIRECT_FAULT_PLACE,   /* putting a journaled copy into new/ fails (after its 250) */
	DIRECT_FAULT_PLACE_NOMEM, /* the first journaled message: placing fails, and so does
	                             the memory to keep it for a retry (the journal then
	                             holds it, and everything after, until a restart) */
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
	uint64_t wb;   /* bytes handed to early writeback (direct_wb_kick) */
	bool in_tmp;   /* tmp/<base> exists */
	bool anon;     /* fd is an unnamed O_TMPFILE inode: no name anywhere yet */
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
	size_t slen, scap; /* staged bytes, stage size */
	bool pending_cr;
	int err; /* sticky */
	void (*done)(void *arg, int err, const char *qid, size_t replied);
	void *arg;
	/* early reply: sent by the thread that makes the message durable */
	int reply_fd; /* -1: none */
	char reply[DIRECT_REPLY_MAX];
	size_t reply_len, replied;
	/* journal: the record (metadata, then the body as stored, LF line ends) */
	bool jon;       /* still small enough for the journal */
	struct buf jrec;
	size_t jcharged; /* bytes of jrec charged to d->jmem */
	size_t jmeta;   /* bytes of jrec before the body */
	uint64_t jseq;  /* > 0 once appended */
	bool acked;     /* done() posted right after the journal sync */
	bool fault_nomem; /* DIRECT_FAULT_PLACE_NOMEM picked this one */
	struct direct_msg *ack_next;
	atomic_int refs; /* the loop's ack and the publisher each hold one */
};

/* A journaled message that could not be put into its Maildirs after its 250: its
 * record, retried at every checkpoint; the journal keeps it live meanwhile. */
struct direct_retry {
	struct direct_retry *next;
	uint64_t seq;
	struct buf rec;
	time_t since; /* first failure */
	int err;      /* the last one */
	unsigned attempts;
};

/* Early writeback: a copy on the syncfs path is handed to writeback every
 * DIRECT_WB_STEP bytes while it arrives, so the syncfs after its last byte has
 * little left to write. sync_file_range() waits when the device queue is full,
 * so the direct-wb thread calls it, never the loop (measured: bench/RESULTS.md
 * run V). The thread gets a duplicate of the copy's fd, which may be closed first.
 * The ring is short on purpose: when the thread falls DIRECT_WB_QUEUE ranges
 * behind, the device is saturated and writing early gains nothing, so ranges are
 * skipped (and at most that many extra fds are open). */
#define DIRECT_WB_STEP (256u << 10)
#define DIRECT_WB_QUEUE 8

struct direct_wb {
	int fd;
	off_t off, len;
};

struct direct {
	char *data_dir, *pattern;
	char host[256];
	pid_t pid;
	int efd;
	enum direct_fault_op fault;
	unsigned fault_left; /* DIRECT_FAULT_PLACE_NOMEM: messages still to fail */
	bool per_file_sync; /* fdatasync each file instead of syncfs (TERN_DIRECT_SYNC) */
	/* early writeback (TERN_DIRECT_EARLY_WB=0: none); loop -> direct-wb thread */
	pthread_t wbth;
	bool wbstarted, wbstop;
	pthread_mutex_t wbmu; /* wbq, wbh, wbt, wbstop */
	pthread_cond_t wbcv;
	struct direct_wb wbq[DIRECT_WB_QUEUE];
	unsigned wbh, wbt;
	atomic_ulong wb_kicks;   /* ranges handed over (direct_wb_kicks: tests) */
	atomic_ulong big_stages; /* messages that got the big stage (tests) */

	atomic_bool anon_ok; /* open copies as O_TMPFILE (TERN_DIRECT_TMPFILE=0: never) */
	atomic_bool relaxed; /* durability = relaxed: no journal, no sync */
	size_t jmsg_max;     /* records up to this size; bigger: the syncfs path */
	size_t jmem_max;     /* record bytes of all messages in flight, at most */
	atomic_size_t jmem;  /* record bytes charged now (loop and committer) */
	bool drop;           /* big copies leave the page cache once synced (TERN_DIRECT_DROP) */
	atomic_ulong drops;  /* copies dropped so far (direct_drops: tests) */
	size_t smem_max;     /* big stages of all messages, at most */
	atomic_size_t smem;  /* bytes of big stages now */
	pthread_t th;
	bool started;
	/* three locks, so the loop, the committer and the publisher rarely meet on one;
	 * a condition is signalled after its lock is dropped, so the woken thread does
	 * not block at once on the lock its waker still holds */
	pthread_mutex_t mu; /* pend_*, stopping */
	pthread_cond_t cv;
	struct direct_msg *pend_head, *pend_tail; /* loop -> committer */
	bool pipelined;                           /* stage 2 thread publishes */
	pthread_t th2;
	bool started2;
	pthread_mutex_t smu; /* stage_*, stage_stop */
	pthread_cond_t cv2;
	struct direct_msg *stage_head, *stage_tail; /* synced, to publish */
	bool stage_stop;
	bool stopping;
	pthread_mutex_t amu; /* ack_*, batches, msgs */
	unsigned long batches, msgs;
	/* journal (docs/QUEUE.md "The journal"); NULL: every message takes syncfs */
	struct journal *j;
	dev_t jdev;
	struct direct_msg *ack_head, *ack_tail; /* acknowledged early, under amu */
	atomic_bool ack_ready;                  /* ack_head != NULL, read without amu */
	/* publisher thread only: */
	uint64_t placed_below;     /* every journaled seq below is placed or in retry */
	uint64_t retired;          /* last journal_retire() mark */
	struct timespec last_ckpt, last_retry;
	long long retry_ns; /* placing retries at most this often (1 s; TERN_RETRY_MS) */
	struct {
		dev_t dev;
		char *mbox;
	} ckdev[DIRECT_DEVS]; /* filesystems with copies placed since the checkpoint */
	size_t nckdev;
	bool ck_overflow; /* more filesystems than ckdev holds: sync() instead */
	/* written by the publisher (or before the threads run) under rmu; the publisher
	 * reads it without: `tern queue` (direct_pending_list) reads it under rmu */
	pthread_mutex_t rmu;
	struct direct_retry *retry;
	atomic_bool retry_soon; /* direct_retry_soon(): at the next checkpoint */
	uint64_t stuck; /* > 0: a record not placed and not held for retry (no memory) */
};

static int direct_fault(const struct direct *d, enum direct_fault_op op)
{
	return d->fault == op ? -EIO : 0;
}

/* The filesystem an open file is on (copies and journal alike, so they compare).
 * Only the device is asked for: a stat(2) that asks for the times makes the next
 * change of this file's times a fine-grained one, and that moves the clock every
 * file's times are taken from (multigrain timestamps): the journal's inode would
 * then be dirtied at every commit. 0 or -errno. */
static int direct_fd_dev(int fd, dev_t *out)
{
	struct statx st;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &st) < 0)
		return -errno;
	*out = makedev(st.stx_dev_major, st.stx_dev_minor);
	return 0;
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
	                 (long)tv.tv_usec, (long)d->pid, maildir_next_seq(), d->host);
	if (n < 0 || (size_t)n >= sizeof base)
		return -ENAMETOOLONG;
	char *b = strdup(base);
	if (b == NULL)
		return -ENOMEM;
	free(r->base);
	r->base = b;
	return 0;
}

static int direct_buf_sink(void *ctx, const char *p, size_t n)
{
	return buf_append(ctx, p, n);
}

/* CRLF -> LF for the prefix (it is ours: whole lines). */
static int direct_lf(struct buf *out, const char *p, size_t n)
{
	bool cr = false;
	int r = scan_crlf_to_lf(p, n, &cr, direct_buf_sink, out);
	return r == 0 && cr ? buf_append(out, "\r", 1) : r;
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

/* Charge n more record bytes to the journal's memory budget: false (nothing
 * charged) when all records in flight would then hold more than jmem_max. */
static bool direct_jmem_charge(struct direct_msg *m, size_t n)
{
	if (!budget_take(&m->d->jmem, n, m->d->jmem_max))
		return false;
	m->jcharged += n;
	return true;
}

/* Free the record and give its bytes back to the budget. */
static void direct_jrec_drop(struct direct_msg *m)
{
	buf_free(&m->jrec);
	if (m->jcharged > 0)
		budget_give(&m->d->jmem, m->jcharged);
	m->jcharged = 0;
}

/* Add the staged bytes to the journal record. */
static void direct_flush_jrec(struct direct_msg *m)
{
	if (m->err == 0 && m->jon && m->slen > 0) {
		if (m->jrec.len + m->slen > m->d->jmsg_max || !direct_jmem_charge(m, m->slen) ||
		    buf_append(&m->jrec, m->stage, m->slen) < 0) {
			m->jon = false; /* too big (or no memory): the syncfs path */
			direct_jrec_drop(m);
		}
	}
}

/* Hand what the copy got since the last time to the direct-wb thread, once it is
 * DIRECT_WB_STEP bytes or more. Only a hint: the sync before the 250 is unchanged;
 * when the queue is full (or no fd is left) the range is simply not handed over. */
static void direct_wb_kick(struct direct *d, struct direct_rcpt *rc)
{
	if (!d->wbstarted || rc->size - rc->wb < DIRECT_WB_STEP)
		return;
	off_t off = (off_t)rc->wb, len = (off_t)(rc->size - rc->wb);
	rc->wb = rc->size;
	int fd = -1;
	pthread_mutex_lock(&d->wbmu);
	if (d->wbt - d->wbh < DIRECT_WB_QUEUE &&
	    (fd = fcntl(rc->fd, F_DUPFD_CLOEXEC, 0)) >= 0) /* no fd made for a full ring */
		d->wbq[d->wbt++ % DIRECT_WB_QUEUE] = (struct direct_wb){fd, off, len};
	pthread_mutex_unlock(&d->wbmu);
	if (fd < 0)
		return;
	atomic_fetch_add(&d->wb_kicks, 1);
	pthread_cond_signal(&d->wbcv);
}

static void *direct_wb_main(void *arg)
{
	pthread_setname_np(pthread_self(), "direct-wb"); /* top -H, ps -L */
	struct direct *d = arg;
	pthread_mutex_lock(&d->wbmu);
	for (;;) {
		while (d->wbh == d->wbt && !d->wbstop)
			pthread_cond_wait(&d->wbcv, &d->wbmu);
		if (d->wbh == d->wbt)
			break; /* stopping, and nothing left */
		struct direct_wb w = d->wbq[d->wbh++ % DIRECT_WB_QUEUE];
		pthread_mutex_unlock(&d->wbmu);
		sync_file_range(w.fd, w.off, w.len, SYNC_FILE_RANGE_WRITE);
		close(w.fd);
		pthread_mutex_lock(&d->wbmu);
	}
	pthread_mutex_unlock(&d->wbmu);
	return NULL;
}

/* Write the staged bytes (and any prefix not yet written) to every file. */
static int direct_flush_files(struct direct_msg *m)
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
		} else if (plen <= DIRECT_PREFIX_MAX && m->slen <= DIRECT_STAGE) {
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

/* The staged bytes to the record and to every file. */
static int direct_flush(struct direct_msg *m)
{
	direct_flush_jrec(m);
	int r = direct_flush_files(m);
	/* the syncfs path, while the message arrives (not at its commit: syncfs next) */
	if (r == 0 && !m->jon && !atomic_load(&m->d->relaxed))
		for (size_t i = 0; i < m->nr; i++)
			direct_wb_kick(m->d, &m->r[i]);
	return r;
}

/* A big message gets the big stage, while all of them together stay under
 * DIRECT_STAGE_MEM_MAX; else (or with no memory) the small one does. */
static void direct_stage_grow(struct direct_msg *m)
{
	struct direct *d = m->d;
	if (budget_grow(&d->smem, d->smem_max, &m->stage, DIRECT_STAGE_BIG)) {
		m->scap = DIRECT_STAGE_BIG;
		atomic_fetch_add(&d->big_stages, 1);
	}
}

/* The stage is no longer needed (the last bytes are written, or the end). */
static void direct_stage_release(struct direct_msg *m)
{
	free(m->stage);
	m->stage = NULL;
	if (m->scap == DIRECT_STAGE_BIG)
		budget_give(&m->d->smem, DIRECT_STAGE_BIG);
	m->scap = 0;
}

/* Converted octets into the stage (written out each time it fills). */
static int direct_stage(void *ctx, const char *p, size_t n)
{
	struct direct_msg *m = ctx;
	while (n > 0) {
		if (m->slen == m->scap) {
			int r = direct_flush(m);
			if (r < 0)
				return r;
			if (!m->jon && m->scap < DIRECT_STAGE_BIG && m->nr > 0 &&
			    m->r[0].size >= DIRECT_JOURNAL_MSG_MAX)
				direct_stage_grow(m);
		}
		size_t take = m->scap - m->slen;
		if (take > n)
			take = n;
		memcpy(m->stage + m->slen, p, take);
		m->slen += take;
		p += take;
		n -= take;
	}
	return 0;
}

/* ---- committer ---- */

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

/* Link an O_TMPFILE copy (still open) at path; never replaces. linkat() through
 * /proc needs no privilege (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH). */
static int direct_link_anon(struct direct_rcpt *rc, const char *path)
{
	char self[64];
	snprintf(self, sizeof self, "/proc/self/fd/%d", rc->fd);
	if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	rc->anon = false;
	return 0;
}

static int direct_publish(struct direct *d, struct direct_rcpt *rc)
{
	char from[PATH_MAX], to[PATH_MAX], sz[32];
	int r = direct_fault(d, DIRECT_FAULT_RENAME);
	if (r < 0)
		return r;
	snprintf(sz, sizeof sz, ",S=%llu", (unsigned long long)rc->size);
	/* Names are unique within this process (pid, microseconds, a shared counter):
	 * a clash means something else writes our names; fail rather than overwrite. */
	if ((r = direct_path(to, sizeof to, rc->mbox, "new", rc->base, sz)) < 0)
		return r;
	if (rc->anon) {
		if ((r = direct_link_anon(rc, to)) < 0)
			return r;
	} else {
		if ((r = direct_path(from, sizeof from, rc->mbox, "tmp", rc->base, NULL)) < 0)
			return r;
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
			return -errno;
	}
	rc->in_tmp = false;
	rc->in_new = true;
	return 0;
}

/* Give an O_TMPFILE copy the name tmp/<base>: before a sync that must cover the name
 * too (the syncfs path), it becomes an ordinary tmp/ file. */
static int direct_name_anon(struct direct_rcpt *rc)
{
	char to[PATH_MAX];
	int r = direct_path(to, sizeof to, rc->mbox, "tmp", rc->base, NULL);
	if (r == 0 && (r = direct_link_anon(rc, to)) == 0)
		rc->in_tmp = true;
	return r;
}

/* ---- journal records ----
 * Layout (host byte order; the journal is not moved between machines):
 *   u32 magic "TDM1", u32 nr, u32 meta_len, u16 qid_len, qid NUL,
 *   nr x { u16 mbox_len, mbox NUL, u16 base_len, base NUL, u16 orig_len, orig NUL,
 *          u32 pre_len, pre }
 *   body (everything after meta_len: the message as stored, LF line ends)
 * Each copy is pre + body, in <mbox>/new/<base>,S=<pre_len + body_len>. */

static int direct_rec_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	uint16_t l = (uint16_t)n;
	if (n > UINT16_MAX - 1)
		return -ENAMETOOLONG;
	int r = buf_append(b, &l, sizeof l);
	return r < 0 ? r : buf_append(b, s, n + 1);
}

/* The record's metadata, once every copy has its name (end of direct_msg_begin). */
static int direct_rec_begin(struct direct_msg *m)
{
	uint32_t hdr[3] = {DIRECT_REC_MAGIC, (uint32_t)m->nr, 0};
	struct buf *b = &m->jrec;
	int r = buf_append(b, hdr, sizeof hdr);
	if (r == 0)
		r = direct_rec_str(b, m->qid);
	for (size_t i = 0; r == 0 && i < m->nr; i++) {
		struct direct_rcpt *rc = &m->r[i];
		uint32_t pl = (uint32_t)rc->pre.len;
		/* under data_dir: stored relative to it (marked by a leading \001), so a
		 * data directory that moved (restored elsewhere, a relative data_dir and
		 * another working directory) is still replayed into itself */
		size_t dl = strlen(m->d->data_dir);
		char rel[PATH_MAX];
		const char *mb = rc->mbox;
		if (strncmp(mb, m->d->data_dir, dl) == 0 && mb[dl] == '/' &&
		    snprintf(rel, sizeof rel, "\001%s", mb + dl + 1) < (int)sizeof rel)
			mb = rel;
		if ((r = direct_rec_str(b, mb)) == 0 && (r = direct_rec_str(b, rc->base)) == 0 &&
		    (r = direct_rec_str(b, rc->orig)) == 0 && (r = buf_append(b, &pl, sizeof pl)) == 0)
			r = buf_append(b, rc->pre.ptr, rc->pre.len);
	}
	if (r < 0 || b->len > m->d->jmsg_max || !direct_jmem_charge(m, b->len)) {
		direct_jrec_drop(m);
		m->jon = false;
		return 0; /* not an error: the syncfs path takes it */
	}
	uint32_t meta = (uint32_t)b->len;
	memcpy(b->ptr + 2 * sizeof(uint32_t), &meta, sizeof meta);
	m->jmeta = b->len;
	return 0;
}

struct direct_rec_rcpt {
	const char *mbox, *base, *orig, *pre;
	size_t prelen;
};

struct direct_rec {
	const char *qid;
	size_t nr;
	struct direct_rec_rcpt r[DIRECT_RCPTS_MAX];
	const char *body;
	size_t bodylen;
};

static int direct_rec_get_str(const char **p, const char *end, const char **out)
{
	uint16_t l;
	if ((size_t)(end - *p) < sizeof l)
		return -EINVAL;
	memcpy(&l, *p, sizeof l);
	*p += sizeof l;
	if ((size_t)(end - *p) < (size_t)l + 1 || (*p)[l] != '\0' || strlen(*p) != l)
		return -EINVAL;
	*out = *p;
	*p += l + 1;
	return 0;
}

/* Parse a record (it passed the journal's keyed checksum, but is checked anyway). */
static int direct_rec_parse(const char *p, size_t n, struct direct_rec *rec)
{
	uint32_t hdr[3];
	const char *end = p + n, *q = p;
	if (n < sizeof hdr)
		return -EINVAL;
	memcpy(hdr, p, sizeof hdr);
	if (hdr[0] != DIRECT_REC_MAGIC || hdr[1] == 0 || hdr[1] > DIRECT_RCPTS_MAX || hdr[2] > n)
		return -EINVAL;
	q += sizeof hdr;
	const char *mend = p + hdr[2];
	rec->nr = hdr[1];
	if (direct_rec_get_str(&q, mend, &rec->qid) < 0)
		return -EINVAL;
	for (size_t i = 0; i < rec->nr; i++) {
		struct direct_rec_rcpt *rr = &rec->r[i];
		uint32_t pl;
		if (direct_rec_get_str(&q, mend, &rr->mbox) < 0 ||
		    direct_rec_get_str(&q, mend, &rr->base) < 0 ||
		    direct_rec_get_str(&q, mend, &rr->orig) < 0 || (size_t)(mend - q) < sizeof pl)
			return -EINVAL;
		memcpy(&pl, q, sizeof pl);
		q += sizeof pl;
		if ((size_t)(mend - q) < pl)
			return -EINVAL;
		rr->pre = q;
		rr->prelen = pl;
		q += pl;
		/* a file name of ours: no directory parts */
		if (rr->mbox[0] == '\0' || (rr->mbox[0] == '\001' && rr->mbox[1] == '\0') ||
		    rr->base[0] == '\0' || rr->base[0] == '.' ||
		    strchr(rr->base, '/') != NULL)
			return -EINVAL;
	}
	if (q != mend)
		return -EINVAL;
	rec->body = mend;
	rec->bodylen = (size_t)(end - mend);
	return 0;
}

/* 1: path holds exactly pre + body; 0: it differs; -errno: cannot be read. */
static int direct_same_content(const char *path, const char *pre, size_t prelen, const char *body,
                               size_t bodylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if ((uint64_t)st.st_size == (uint64_t)prelen + bodylen) {
		size_t n = prelen + bodylen, got = 0;
		char *b = malloc(n ? n : 1);
		if (b == NULL) {
			r = -ENOMEM;
		} else {
			while (got < n) {
				ssize_t k = read(fd, b + got, n - got);
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					break;
				got += (size_t)k;
			}
			r = got == n && memcmp(b, pre, prelen) == 0 &&
			    memcmp(b + prelen, body, bodylen) == 0;
			free(b);
		}
	}
	close(fd);
	return r;
}

/* Where is this copy already? 1: found complete (nothing to do); 0: not found, or
 * found damaged; `target` is where to put it (new/<name>, or the damaged file's path
 * so a reader's flags in cur/ are kept). */
static int direct_find_copy(const struct direct_rec_rcpt *rr, const char *name, const char *body,
                            size_t bodylen, char *target, size_t tsz)
{
	char path[PATH_MAX];
	int r;
	if ((r = direct_path(target, tsz, rr->mbox, "new", name, NULL)) < 0)
		return r;
	if (direct_same_content(target, rr->pre, rr->prelen, body, bodylen) == 1)
		return 1;
	if (access(target, F_OK) == 0)
		return 0; /* damaged in new/: replace it */
	if ((r = direct_path(path, sizeof path, rr->mbox, "cur", NULL, NULL)) < 0)
		return r;
	DIR *dir = opendir(path);
	if (dir == NULL)
		return 0;
	size_t bl = strlen(rr->base);
	struct dirent *de;
	int found = 0;
	while (found == 0 && (de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, rr->base, bl) != 0 ||
		    (de->d_name[bl] != ',' && de->d_name[bl] != ':'))
			continue;
		if (direct_path(path, sizeof path, rr->mbox, "cur", de->d_name, NULL) < 0)
			continue;
		if (direct_same_content(path, rr->pre, rr->prelen, body, bodylen) == 1) {
			found = 1;
		} else if (strlen(path) < tsz) {
			memcpy(target, path, strlen(path) + 1);
			break;
		}
	}
	closedir(dir);
	return found;
}

/* Put every copy of a record into its Maildir, durably (file and directory fsynced):
 * for recovery and for retries, both rare. Copies already there are left alone. */
static int direct_place_record(struct direct *d, const char *p, size_t n, const char *why)
{
	struct direct_rec rec;
	char name[600], target[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX], e1[300];
	int r = direct_rec_parse(p, n, &rec);
	if (r < 0) {
		log_error("event=journal-record-invalid");
		return 0; /* nothing can ever be done with it: do not keep it live */
	}
	for (size_t i = 0; i < rec.nr; i++) {
		struct direct_rec_rcpt rcopy = rec.r[i];
		const struct direct_rec_rcpt *rr = &rcopy;
		char mb[PATH_MAX];
		if (rcopy.mbox[0] == '\001') { /* relative to data_dir */
			if (snprintf(mb, sizeof mb, "%s/%s", d->data_dir, rcopy.mbox + 1) >=
			    (int)sizeof mb)
				return -ENAMETOOLONG;
			rcopy.mbox = mb;
		}
		unsigned long long size = (unsigned long long)rr->prelen + rec.bodylen;
		if (snprintf(name, sizeof name, "%s,S=%llu", rr->base, size) >= (int)sizeof name)
			return -ENAMETOOLONG;
		int f = direct_find_copy(rr, name, rec.body, rec.bodylen, target, sizeof target);
		if (f < 0)
			return f;
		if (f == 1)
			continue;
		if ((r = direct_fault(d, DIRECT_FAULT_PLACE)) < 0)
			return r;
		if ((r = direct_path(tmp, sizeof tmp, rr->mbox, "tmp", rr->base, NULL)) < 0)
			return r;
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == ENOENT) {
			if ((r = maildir_create(rr->mbox)) < 0)
				return r;
			fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		}
		if (fd < 0)
			return -errno;
		r = direct_write_all(fd, rr->pre, rr->prelen);
		if (r == 0)
			r = direct_write_all(fd, rec.body, rec.bodylen);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r == 0 && rename(tmp, target) < 0)
			r = -errno;
		if (r < 0) {
			unlink(tmp);
			return r;
		}
		snprintf(dir, sizeof dir, "%s", target);
		char *slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		if ((r = dirsync(dir)) < 0)
			return r;
		log_info("qid=%s event=delivered rcpt=<%s> file=%s direct=yes %s=yes", rec.qid,
		         log_escape(e1, sizeof e1, rr->orig, strlen(rr->orig)), name, why);
	}
	return 0;
}

/* Keep a record whose copies are not all placed, to retry. Without memory for the
 * copy, the journal keeps it: nothing at or above seq is retired until a restart
 * replays it. */
static void direct_retry_add(struct direct *d, uint64_t seq, const void *p, size_t n,
                             bool nomem, int err)
{
	struct direct_retry *rt = nomem ? NULL : calloc(1, sizeof *rt);
	if (rt != NULL) {
		buf_init(&rt->rec, 0);
		if (buf_append(&rt->rec, p, n) < 0) {
			free(rt);
			rt = NULL;
		}
	}
	if (rt == NULL) {
		log_error("event=place-failed seq=%llu error=\"out of memory\" "
		          "action=replay-at-restart",
		          (unsigned long long)seq);
		if (d->stuck == 0 || seq < d->stuck)
			d->stuck = seq;
		return;
	}
	rt->seq = seq;
	rt->since = time(NULL);
	rt->err = err;
	rt->attempts = 1;
	struct direct_retry **pp = &d->retry; /* kept in seq order */
	while (*pp && (*pp)->seq < seq)
		pp = &(*pp)->next;
	rt->next = *pp;
	pthread_mutex_lock(&d->rmu);
	*pp = rt;
	pthread_mutex_unlock(&d->rmu);
}

/* How far the journal may be retired: below `upto`, but never past a record whose
 * copies are not all placed. */
static uint64_t direct_retire_limit(const struct direct *d, uint64_t upto)
{
	if (d->retry != NULL && d->retry->seq < upto)
		upto = d->retry->seq;
	if (d->stuck != 0 && d->stuck < upto)
		upto = d->stuck;
	return upto;
}

static void direct_retry_run(struct direct *d)
{
	for (struct direct_retry **pp = &d->retry; *pp;) {
		struct direct_retry *rt = *pp;
		int r = direct_place_record(d, rt->rec.ptr, rt->rec.len, "retried");
		if (r < 0) {
			log_warn("event=place-failed seq=%llu error=\"%s\" action=retry-later",
			         (unsigned long long)rt->seq, strerror(-r));
			pthread_mutex_lock(&d->rmu);
			rt->err = r;
			rt->attempts++;
			pthread_mutex_unlock(&d->rmu);
			pp = &rt->next;
			continue;
		}
		pthread_mutex_lock(&d->rmu);
		*pp = rt->next;
		pthread_mutex_unlock(&d->rmu);
		buf_free(&rt->rec);
		free(rt);
	}
}

/* Recovery: called by journal_open for each live record. */
static int direct_replay(void *arg, uint64_t seq, const void *p, size_t n)
{
	struct direct *d = arg;
	int r = direct_place_record(d, p, n, "replayed");
	if (r < 0)
		direct_retry_add(d, seq, p, n, false, r);
	return r;
}

static void direct_ck_note(struct direct *d, const struct direct_rcpt *rc)
{
	for (size_t k = 0; k < d->nckdev; k++)
		if (d->ckdev[k].dev == rc->dev)
			return;
	if (d->nckdev == DIRECT_DEVS) {
		d->ck_overflow = true;
		return;
	}
	d->ckdev[d->nckdev].dev = rc->dev;
	d->ckdev[d->nckdev].mbox = strdup(rc->mbox);
	if (d->ckdev[d->nckdev].mbox == NULL) {
		d->ck_overflow = true;
		return;
	}
	d->nckdev++;
}

static long long direct_ns_since(const struct timespec *a, const struct timespec *b)
{
	return (long long)(b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

enum direct_ck_mode {
	DIRECT_CK_BUSY,  /* after a batch: when 100 ms passed or the ring is filling */
	DIRECT_CK_IDLE,  /* nothing arriving: now */
	DIRECT_CK_FINAL, /* shutting down: now, retries included */
};

/* Make the copies placed since the last checkpoint durable (one syncfs per
 * filesystem) and let the journal reuse their records; retry failed placements at
 * most once a second. Publisher thread (or after it stopped). */
static void direct_checkpoint(struct direct *d, enum direct_ck_mode mode)
{
	if (d->j == NULL)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	bool fresh = direct_retire_limit(d, d->placed_below) > d->retired;
	bool retry = d->retry != NULL && (mode == DIRECT_CK_FINAL ||
	                                  direct_ns_since(&d->last_retry, &now) >= d->retry_ns ||
	                                  atomic_exchange(&d->retry_soon, false));
	if (!fresh && !retry)
		return;
	if (mode == DIRECT_CK_BUSY && !retry) {
		uint64_t live, size;
		journal_usage(d->j, &live, &size);
		/* by time: the ring grows to hold 100 ms of mail (a checkpoint per
		 * quarter of a small ring made one syncfs per few dozen messages) */
		if (direct_ns_since(&d->last_ckpt, &now) < DIRECT_CKPT_NS &&
		    live < journal_max_bytes(d->j) / 2)
			return;
	}
	d->last_ckpt = now;
	if (retry) {
		d->last_retry = now;
		direct_retry_run(d);
	}
	int r = direct_fault(d, DIRECT_FAULT_FSYNC);
	if (r == 0 && d->ck_overflow) {
		sync();
	} else {
		for (size_t k = 0; r == 0 && k < d->nckdev; k++) {
			if (d->ckdev[k].dev == d->jdev) {
				r = syncfs(journal_fd(d->j)) < 0 ? -errno : 0;
				continue;
			}
			int fd = open(d->ckdev[k].mbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0 || syncfs(fd) < 0)
				r = -errno;
			if (fd >= 0)
				close(fd);
		}
	}
	if (r < 0) {
		log_error("event=checkpoint-failed error=\"%s\" action=retry-later", strerror(-r));
		return;
	}
	for (size_t k = 0; k < d->nckdev; k++)
		free(d->ckdev[k].mbox);
	d->nckdev = 0;
	d->ck_overflow = false;
	uint64_t below = direct_retire_limit(d, d->placed_below);
	if (below > d->retired) {
		journal_retire(d->j, below);
		d->retired = below;
	}
}

/* ---- committer ---- */

static void direct_wake(struct direct *d)
{
	uint64_t one = 1;
	ssize_t w = write(d->efd, &one, sizeof one);
	(void)w; /* the counter only overflows after 2^64 writes */
}

/* Hand acknowledgements to the loop (each message's done() runs there); wake: also
 * signal the event fd (else the caller does it later). */
static void direct_post_list(struct direct *d, struct direct_msg *head, struct direct_msg *tail,
                             unsigned long n, bool wake)
{
	if (head == NULL)
		return;
	pthread_mutex_lock(&d->amu);
	d->msgs += n;
	if (d->ack_tail)
		d->ack_tail->ack_next = head;
	else
		d->ack_head = head;
	d->ack_tail = tail;
	atomic_store(&d->ack_ready, true);
	pthread_mutex_unlock(&d->amu);
	if (wake)
		direct_wake(d);
}

static void direct_post(struct direct *d, struct direct_msg *head, struct direct_msg *tail,
                        unsigned long n)
{
	direct_post_list(d, head, tail, n, true);
}

static void direct_msg_free(struct direct_msg *m);

static void direct_ack_push(struct direct_msg **h, struct direct_msg **t, struct direct_msg *m)
{
	m->ack_next = NULL;
	if (*t)
		(*t)->ack_next = m;
	else
		*h = m;
	*t = m;
}

/* The message is durable: send its reply now, from this thread, instead of waiting
 * for the loop to wake up and do it. Whatever could not go out at once (nothing, on
 * a full or broken socket) the loop sends after done(). */
static void direct_reply_early(struct direct_msg *m)
{
	if (m->reply_fd < 0 || m->reply_len == 0)
		return;
	ssize_t w = send(m->reply_fd, m->reply, m->reply_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0)
		m->replied = (size_t)w;
}

static void direct_msg_unref(struct direct_msg *m)
{
	if (atomic_fetch_sub(&m->refs, 1) == 1)
		direct_msg_free(m);
}

/* Step 1 of a batch: complete the records (the last staged bytes, a CR held back). */
static void direct_batch_finish(struct direct_msg *list)
{
	for (struct direct_msg *m = list; m; m = m->next) {
		if (m->err == 0 && m->pending_cr) {
			m->pending_cr = false;
			direct_stage(m, "\r", 1);
		}
		direct_flush_jrec(m);
	}
}

/* Step 3: the files' last bytes (while the journal write is on the device). */
static void direct_batch_write(struct direct_msg *list)
{
	for (struct direct_msg *m = list; m; m = m->next) {
		direct_flush_files(m);
		if (m->scap == DIRECT_STAGE_BIG) /* not held while the sync runs */
			direct_stage_release(m);
	}
}

/* Step 2, journal path: append each record and start writing them (one write and
 * one flush for the batch; with asynchronous I/O the device works while step 3
 * runs). Returns whether any record was appended, or a negative errno from the
 * start (then every appended message fails in step 4). */
static int direct_batch_journal_start(struct direct *d, struct direct_msg *list)
{
	int any = 0;
	for (struct direct_msg *m = list; m && d->j; m = m->next) {
		if (m->err || !m->jon)
			continue;
		int64_t seq = journal_append(d->j, m->jrec.ptr, m->jrec.len);
		if (seq == -ENOSPC || seq == -EMSGSIZE) { /* ring full: the syncfs path */
			m->jon = false;
			direct_jrec_drop(m);
		} else if (seq < 0) {
			m->err = (int)seq;
		} else {
			m->jseq = (uint64_t)seq;
			any = 1;
		}
	}
	if (!any)
		return 0;
	int r = direct_fault(d, DIRECT_FAULT_JOURNAL);
	if (r == 0)
		r = journal_submit(d->j);
	return r < 0 ? r : 1;
}

/* Step 4, journal path: wait until the records are durable, acknowledge (a message
 * whose files failed in step 3 is not: its record is retired unused). */
static void direct_batch_journal_end(struct direct *d, struct direct_msg *list, int started)
{
	if (started == 0)
		return;
	int r = journal_sync(d->j); /* also after a failed start: nothing left in flight */
	if (started < 0)
		r = started;
	struct direct_msg *h = NULL, *t = NULL;
	unsigned long n = 0;
	bool early = false;
	for (struct direct_msg *m = list; m; m = m->next) {
		if (m->jseq == 0 || m->err)
			continue;
		if (r < 0) { /* not durable: handled like any failed commit */
			m->err = r;
			continue;
		}
		m->acked = true;
		if (m->reply_fd >= 0) {
			/* its client may answer the 250 at once: the loop, reading that,
			 * finds this completion already posted (direct_completions_ready) */
			direct_reply_early(m);
			m->ack_next = NULL;
			direct_post_list(d, m, m, 1, false);
			early = true;
			continue;
		}
		direct_ack_push(&h, &t, m);
		n++;
	}
	if (h != NULL)
		direct_post(d, h, t, n);
	else if (early)
		direct_wake(d);
}

/* Step 2, syncfs path (messages not acknowledged through the journal): per file
 * (writeback of all started first, so the fdatasyncs share one journal commit), or
 * one syncfs per filesystem. */
static void direct_batch_sync(struct direct *d, struct direct_msg *list)
{
	struct {
		dev_t dev;
		int err;
	} devs[DIRECT_DEVS];
	size_t ndev = 0;

	if (atomic_load(&d->relaxed))
		return; /* the renames alone; the kernel writes back when it likes */
	/* O_TMPFILE copies get their tmp/ name first, so that the sync below covers
	 * the name and the link count too (then it is the rename path throughout) */
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && !m->acked && i < m->nr; i++) {
			if (m->r[i].anon) {
				int r = direct_name_anon(&m->r[i]);
				if (r < 0)
					m->err = r;
			}
		}
	}
	if (d->per_file_sync) {
		for (struct direct_msg *m = list; m; m = m->next)
			for (size_t i = 0; m->err == 0 && !m->acked && i < m->nr; i++)
				sync_file_range(m->r[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		for (struct direct_msg *m = list; m; m = m->next) {
			for (size_t i = 0; m->err == 0 && !m->acked && i < m->nr; i++) {
				int r = direct_fault(d, DIRECT_FAULT_FSYNC);
				if (r == 0 && fdatasync(m->r[i].fd) < 0)
					r = -errno;
				if (r < 0)
					m->err = r;
			}
		}
	}
	for (struct direct_msg *m = d->per_file_sync ? NULL : list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && !m->acked && i < m->nr; i++) {
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

/* A big copy, synced: its pages leave the page cache (they are clean now). It was
 * written once and is read, if ever, much later; kept, the cache would fill with
 * such copies, and every new big message would need fresh memory, which on this
 * VM cost up to 11 us per 4 KiB page at first write (bench/RESULTS.md run U, W).
 * Freed now, they are what the next messages are written into. */
static bool direct_drop_wanted(struct direct *d, const struct direct_msg *m,
                               const struct direct_rcpt *rc)
{
	return d->drop && !m->jon && !atomic_load(&d->relaxed) &&
	       rc->size >= DIRECT_JOURNAL_MSG_MAX;
}

/* Steps 3-5: rename into new/; for messages not yet acknowledged, fsync each new/
 * once and report; journaled ones only need their checkpoint. */
static void direct_batch_publish(struct direct *d, struct direct_msg *list)
{
	/* 3. make them visible */
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && i < m->nr; i++) {
			int r = m->acked ? direct_fault(d, DIRECT_FAULT_PLACE) : 0;
			if (r == 0 && m->acked && d->fault == DIRECT_FAULT_PLACE_NOMEM &&
			    (d->fault_left > 0 || m->fault_nomem)) {
				if (!m->fault_nomem)
					d->fault_left--; /* publisher thread only */
				m->fault_nomem = true;
				r = -EIO;
			}
			if (r == 0)
				r = direct_publish(d, &m->r[i]); /* needs the fd of an O_TMPFILE copy */
			if (r == 0 && direct_drop_wanted(d, m, &m->r[i]) &&
			    posix_fadvise(m->r[i].fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
				atomic_fetch_add(&d->drops, 1);
			close(m->r[i].fd);
			m->r[i].fd = -1;
			if (r < 0)
				m->err = r;
		}
	}
	/* 4. one fsync per distinct new/ (recipients of one mailbox share it) */
	char path[PATH_MAX];
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; i < m->nr; i++) {
			struct direct_rcpt *rc = &m->r[i];
			if (!rc->in_new || m->acked || atomic_load(&d->relaxed))
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
				r = dirsync(path);
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
	struct direct_msg *h = NULL, *t = NULL;
	unsigned long n = 0;
	for (struct direct_msg *m = list; m; m = m->next) {
		for (size_t i = 0; m->err == 0 && i < m->nr; i++)
			if (m->r[i].dir_err < 0)
				m->err = m->r[i].dir_err;
		for (size_t i = 0; i < m->nr; i++) {
			if (m->r[i].fd >= 0)
				close(m->r[i].fd);
			m->r[i].fd = -1;
		}
		if (m->acked) {
			/* after its 250: never undone; the journal holds it until placed */
			for (size_t i = 0; i < m->nr; i++)
				if (m->r[i].in_new)
					direct_ck_note(d, &m->r[i]);
			if (m->err) {
				log_error("qid=%s event=place-failed direct=yes error=\"%s\" "
				          "action=retry-from-journal",
				          m->qid, strerror(-m->err));
				for (size_t i = 0; i < m->nr; i++) {
					char p[PATH_MAX];
					if (m->r[i].in_tmp && direct_path(p, sizeof p, m->r[i].mbox,
					                                  "tmp", m->r[i].base, NULL) == 0)
						unlink(p);
					m->r[i].in_tmp = false;
				}
				direct_retry_add(d, m->jseq, m->jrec.ptr, m->jrec.len, m->fault_nomem,
				                 m->err);
			}
			if (m->jseq + 1 > d->placed_below)
				d->placed_below = m->jseq + 1;
		} else if (m->err) {
			/* a record written for it (its files or the sync failed) is not
			 * needed: replayed after a crash it is at worst a duplicate */
			if (m->jseq + 1 > d->placed_below)
				d->placed_below = m->jseq + 1;
			direct_msg_unlink(m);
			log_warn("qid=%s event=commit-failed direct=yes error=\"%s\"", m->qid,
			         strerror(-m->err));
		}
		if (m->err == 0) {
			for (size_t i = 0; i < m->nr; i++) {
				struct direct_rcpt *rc = &m->r[i];
				log_info("qid=%s event=delivered rcpt=<%s> mailbox=\"%s\" "
				         "file=%s,S=%llu direct=yes%s",
				         m->qid, log_escape(e1, sizeof e1, rc->orig, strlen(rc->orig)),
				         log_escape(e2, sizeof e2, rc->mbox, strlen(rc->mbox)),
				         rc->base, (unsigned long long)rc->size,
				         m->acked ? " journal=yes" : "");
			}
		}
		if (!m->acked) {
			if (m->err == 0)
				direct_reply_early(m);
			direct_ack_push(&h, &t, m);
			n++;
		}
	}
	pthread_mutex_lock(&d->amu);
	d->batches++;
	pthread_mutex_unlock(&d->amu);
	direct_post(d, h, t, n);
	/* drop the publisher's hold (after the loop: posting keeps the loop's) */
	for (struct direct_msg *m = list, *next; m; m = next) {
		next = m->next;
		direct_msg_unref(m);
	}
	direct_checkpoint(d, DIRECT_CK_BUSY);
}

/* Stage 1 (and, without the pipeline, everything): take every pending message,
 * write and sync them; then publish them here or hand them to stage 2, so the next
 * batch's sync overlaps this batch's renames and directory fsyncs. */
static void *direct_committer_main(void *arg)
{
	pthread_setname_np(pthread_self(), "direct-commit"); /* top -H, ps -L */
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
		direct_batch_finish(list);
		int started = direct_batch_journal_start(d, list);
		direct_batch_write(list);
		direct_batch_journal_end(d, list, started);
		direct_batch_sync(d, list);
		if (!d->pipelined) {
			direct_batch_publish(d, list);
			continue;
		}
		pthread_mutex_lock(&d->smu);
		if (d->stage_tail)
			d->stage_tail->next = list;
		else
			d->stage_head = list;
		d->stage_tail = tail;
		pthread_mutex_unlock(&d->smu);
		pthread_cond_signal(&d->cv2);
	}
	pthread_mutex_lock(&d->smu);
	d->stage_stop = true;
	pthread_mutex_unlock(&d->smu);
	pthread_cond_signal(&d->cv2);
	return NULL;
}

/* Stage 2: publish synced batches (several at once if they queued up); checkpoint
 * the journal when idle too, so placed copies do not wait for the next message. */
static void *direct_publisher_main(void *arg)
{
	pthread_setname_np(pthread_self(), "direct-publish"); /* top -H, ps -L */
	struct direct *d = arg;
	log_hold(true); /* a batch's "delivered" lines in one write */
	for (;;) {
		log_flush();
		pthread_mutex_lock(&d->smu);
		while (d->stage_head == NULL && !d->stage_stop) {
			if (d->j != NULL && (direct_retire_limit(d, d->placed_below) > d->retired ||
			                     d->retry != NULL)) {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				ts.tv_nsec += DIRECT_CKPT_NS;
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				if (pthread_cond_timedwait(&d->cv2, &d->smu, &ts) == ETIMEDOUT &&
				    d->stage_head == NULL && !d->stage_stop) {
					pthread_mutex_unlock(&d->smu);
					direct_checkpoint(d, DIRECT_CK_IDLE);
					pthread_mutex_lock(&d->smu);
				}
			} else {
				pthread_cond_wait(&d->cv2, &d->smu);
			}
		}
		struct direct_msg *list = d->stage_head;
		d->stage_head = d->stage_tail = NULL;
		bool stop = d->stage_stop;
		pthread_mutex_unlock(&d->smu);
		if (list == NULL) {
			if (stop)
				break;
			continue;
		}
		direct_batch_publish(d, list);
	}
	log_hold(false);
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
	pthread_mutex_init(&d->smu, NULL);
	pthread_mutex_init(&d->amu, NULL);
	pthread_mutex_init(&d->rmu, NULL);
	pthread_mutex_init(&d->wbmu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->wbcv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv2, &ca);
	pthread_condattr_destroy(&ca);
	d->data_dir = strdup(data_dir);
	d->pattern = strdup(pattern);
	if (d->data_dir == NULL || d->pattern == NULL)
		goto fail;
	maildir_host_part(d->host, sizeof d->host, hostname);
	d->pid = getpid();
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
		else if (strcmp(f, "journal") == 0)
			d->fault = DIRECT_FAULT_JOURNAL;
		else if (strcmp(f, "place") == 0)
			d->fault = DIRECT_FAULT_PLACE;
		else if (strcmp(f, "place-nomem") == 0) {
			d->fault = DIRECT_FAULT_PLACE_NOMEM;
			d->fault_left = 1;
		}
	}
	f = getenv("TERN_DIRECT_SYNC");
	d->per_file_sync = f != NULL && strcmp(f, "fdatasync") == 0;
	f = getenv("TERN_DIRECT_TMPFILE");
	/* linking an O_TMPFILE copy goes through /proc/self/fd */
	atomic_init(&d->anon_ok, (f == NULL || strcmp(f, "0") != 0) &&
	                             access("/proc/self/fd", X_OK) == 0);
	f = getenv("TERN_DIRECT_PIPELINE");
	d->pipelined = f == NULL || strcmp(f, "0") != 0;
	f = getenv("TERN_DIRECT_JOURNAL");
	if (f == NULL || strcmp(f, "0") != 0) {
		/* the journal lives in the spool directory; replay what a crash left */
		char jpath[PATH_MAX];
		f = getenv("TERN_JOURNAL_MSG_MAX");
		d->jmsg_max = f ? (size_t)strtoull(f, NULL, 10) : DIRECT_JOURNAL_MSG_MAX;
		f = getenv("TERN_JOURNAL_MEM_MAX");
		d->jmem_max = f ? (size_t)strtoull(f, NULL, 10) : DIRECT_JOURNAL_MEM_MAX;
		f = getenv("TERN_RETRY_MS"); /* tests */
		d->retry_ns = (f ? strtoll(f, NULL, 10) : 1000) * 1000000LL;
		f = getenv("TERN_JOURNAL_MAX");
		uint64_t jmax = f ? strtoull(f, NULL, 10) : 0;
		if (snprintf(jpath, sizeof jpath, "%s/spool/direct.journal", data_dir) >=
		    (int)sizeof jpath) {
			r = -ENAMETOOLONG;
			goto fail;
		}
		char *slash = strrchr(jpath, '/');
		*slash = '\0';
		if (mkdir(jpath, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			goto fail;
		}
		*slash = '/';
		if ((r = journal_open(&d->j, jpath, jmax, direct_replay, d)) < 0) {
			log_error("event=journal-open-failed file=\"%s\" error=\"%s\"", jpath,
			          strerror(-r));
			goto fail;
		}
		log_info("event=journal-open file=\"%s\" io=%s", jpath, journal_io_mode(d->j));
		if ((r = direct_fd_dev(journal_fd(d->j), &d->jdev)) < 0)
			goto fail;
		/* replayed copies were fsynced one by one: retire them, and write the mark
		 * down so the next start does not replay them again */
		uint64_t below = direct_retire_limit(d, journal_next_seq(d->j));
		journal_retire(d->j, below);
		d->retired = d->placed_below = below;
		if (journal_append(d->j, NULL, 0) < 0 || journal_sync(d->j) < 0)
			log_warn("event=journal-mark-failed");
		clock_gettime(CLOCK_MONOTONIC, &d->last_ckpt);
		d->last_retry = d->last_ckpt;
	}
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd < 0) {
		r = -errno;
		goto fail;
	}
	f = getenv("TERN_DIRECT_STAGE_MEM"); /* tests */
	d->smem_max = f ? (size_t)strtoull(f, NULL, 10) : DIRECT_STAGE_MEM_MAX;
	f = getenv("TERN_DIRECT_DROP");
	d->drop = f == NULL || strcmp(f, "0") != 0;
	f = getenv("TERN_DIRECT_EARLY_WB");
	if ((f == NULL || strcmp(f, "0") != 0) &&
	    pthread_create(&d->wbth, NULL, direct_wb_main, d) == 0)
		d->wbstarted = true; /* without the thread: no early writeback, all else works */
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
		pthread_mutex_unlock(&d->mu);
		pthread_cond_signal(&d->cv);
		pthread_join(d->th, NULL);
	}
	if (d->started2) {
		if (!d->started) { /* stage 1 never ran: stop stage 2 ourselves */
			pthread_mutex_lock(&d->smu);
			d->stage_stop = true;
			pthread_mutex_unlock(&d->smu);
			pthread_cond_signal(&d->cv2);
		}
		pthread_join(d->th2, NULL);
	}
	if (d->started)
		direct_run_completions(d);
	if (d->wbstarted) {
		pthread_mutex_lock(&d->wbmu);
		d->wbstop = true;
		pthread_mutex_unlock(&d->wbmu);
		pthread_cond_signal(&d->wbcv);
		pthread_join(d->wbth, NULL); /* it closes what is queued first */
	}
	/* every placed copy durable, the journal told so */
	direct_checkpoint(d, DIRECT_CK_FINAL);
	if (d->j != NULL && d->retired > 0 && (journal_append(d->j, NULL, 0) < 0 ||
	                                       journal_sync(d->j) < 0))
		log_warn("event=journal-mark-failed");
	journal_close(d->j);
	for (struct direct_retry *rt = d->retry, *next; rt; rt = next) {
		next = rt->next;
		log_error("event=place-failed seq=%llu action=replay-at-restart",
		          (unsigned long long)rt->seq);
		buf_free(&rt->rec);
		free(rt);
	}
	for (size_t k = 0; k < d->nckdev; k++)
		free(d->ckdev[k].mbox);
	if (d->efd >= 0)
		close(d->efd);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->smu);
	pthread_mutex_destroy(&d->amu);
	pthread_mutex_destroy(&d->rmu);
	pthread_mutex_destroy(&d->wbmu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->wbcv);
	pthread_cond_destroy(&d->cv2);
	free(d->data_dir);
	free(d->pattern);
	free(d);
}

/* The sender, from the copy's prefix: its first line is "Return-Path: <...>"
 * (local_header_prefix: no control bytes in the address, but a quoted local part
 * may hold a '>'); "" if none. */
static void direct_rec_sender(const struct direct_rec_rcpt *rr, char *out, size_t outsz)
{
	static const char rp[] = "Return-Path: <";
	out[0] = '\0';
	if (rr->prelen < sizeof rp || memcmp(rr->pre, rp, sizeof rp - 1) != 0)
		return;
	const char *a = rr->pre + sizeof rp - 1;
	const char *nl = memchr(a, '\n', rr->prelen - (sizeof rp - 1));
	if (nl != NULL && nl > a && nl[-1] == '>' && (size_t)(nl - 1 - a) < outsz) {
		memcpy(out, a, (size_t)(nl - 1 - a));
		out[nl - 1 - a] = '\0';
	}
}

size_t direct_pending_list(struct direct *d, direct_pending_fn fn, void *arg)
{
	size_t n = 0;
	if (d == NULL)
		return 0;
	pthread_mutex_lock(&d->rmu);
	for (const struct direct_retry *rt = d->retry; rt; rt = rt->next) {
		struct direct_rec rec;
		if (direct_rec_parse(rt->rec.ptr, rt->rec.len, &rec) < 0)
			continue; /* cannot happen: it was parsed to place it */
		char from[600];
		const char *rcpts[DIRECT_RCPTS_MAX];
		for (size_t i = 0; i < rec.nr; i++)
			rcpts[i] = rec.r[i].orig;
		direct_rec_sender(&rec.r[0], from, sizeof from);
		struct direct_pending p = {
			.qid = rec.qid,
			.from = from,
			.rcpts = rcpts,
			.nrcpts = rec.nr,
			.size = rec.bodylen,
			.since = rt->since,
			.attempts = rt->attempts,
			.error = strerror(-rt->err),
		};
		fn(arg, &p);
		n++;
	}
	pthread_mutex_unlock(&d->rmu);
	return n;
}

void direct_retry_soon(struct direct *d)
{
	if (d != NULL)
		atomic_store(&d->retry_soon, true);
}

void direct_set_relaxed(struct direct *d, bool relaxed)
{
	atomic_store(&d->relaxed, relaxed);
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
	direct_stage_release(m);
	direct_jrec_drop(m);
	free(m);
}

bool direct_completions_ready(const struct direct *d)
{
	return atomic_load(&d->ack_ready);
}

void direct_run_completions(struct direct *d)
{
	uint64_t v;
	ssize_t rd = read(d->efd, &v, sizeof v);
	(void)rd; /* EAGAIN: nothing new, the list below is still checked */
	direct_run_completions_now(d);
}

void direct_run_completions_now(struct direct *d)
{
	pthread_mutex_lock(&d->amu);
	struct direct_msg *list = d->ack_head;
	d->ack_head = d->ack_tail = NULL;
	atomic_store(&d->ack_ready, false);
	pthread_mutex_unlock(&d->amu);
	while (list) {
		struct direct_msg *next = list->ack_next;
		/* acknowledged through the journal: durable, whatever placing it meets
		 * later (m->err may change on the publisher meanwhile) */
		if (list->done)
			list->done(list->arg, list->acked ? 0 : list->err, list->qid, list->replied);
		direct_msg_unref(list);
		list = next;
	}
}

/* Open the copy for mbox, creating the Maildir on first use: an unnamed O_TMPFILE
 * inode on new/'s filesystem where it can be, else tmp/<unique>. */
static int direct_open_tmp(struct direct *d, struct direct_rcpt *rc)
{
	char p[PATH_MAX];
	int r;
	for (int tries = 0; tries < 5; tries++) {
		if ((r = direct_new_name(d, rc)) < 0)
			return r;
		rc->anon = false;
		if (atomic_load(&d->anon_ok)) {
			/* no tmp/ entry to create now and remove at the rename (and no lock on
			 * tmp/, which the publisher's renames hold) */
			if ((r = direct_path(p, sizeof p, rc->mbox, "new", NULL, NULL)) < 0)
				return r;
			rc->fd = open(p, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600);
			if (rc->fd >= 0) {
				rc->anon = true;
			} else if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
				/* the filesystem cannot: named tmp/ files from now on */
				log_info("event=direct-tmpfile-unsupported mailbox=\"%s\" error=\"%s\"",
				         rc->mbox, strerror(errno));
				atomic_store(&d->anon_ok, false);
				tries--;
				continue;
			}
		}
		if (!rc->anon) {
			if ((r = direct_path(p, sizeof p, rc->mbox, "tmp", rc->base, NULL)) < 0)
				return r;
			rc->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		}
		if (rc->fd >= 0) {
			if ((r = direct_fd_dev(rc->fd, &rc->dev)) < 0) {
				close(rc->fd);
				rc->fd = -1;
				if (!rc->anon)
					unlink(p);
				return r;
			}
			rc->in_tmp = !rc->anon;
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
	m->reply_fd = -1;
	snprintf(m->qid, sizeof m->qid, "%s", qid);
	m->r = calloc(env->nrcpts, sizeof *m->r);
	m->stage = malloc(DIRECT_STAGE);
	m->scap = DIRECT_STAGE;
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
	buf_init(&m->jrec, 0);
	m->jon = d->j != NULL && !atomic_load(&d->relaxed);
	if (m->jon)
		direct_rec_begin(m);
	*out = m;
	return 0;
fail:
	direct_msg_unlink(m);
	direct_msg_free(m);
	return r;
}

int direct_msg_write(struct direct_msg *m, const void *p, size_t n)
{
	if (m->err)
		return m->err;
	return scan_crlf_to_lf(p, n, &m->pending_cr, direct_stage, m);
}

int direct_msg_reply_early(struct direct_msg *m, int fd, const char *text, size_t len)
{
	if (fd < 0 || len == 0 || len > sizeof m->reply)
		return -EINVAL;
	memcpy(m->reply, text, len);
	m->reply_len = len;
	m->reply_fd = fd;
	return 0;
}

void direct_msg_commit(struct direct_msg *m,
                       void (*done)(void *arg, int err, const char *qid, size_t replied),
                       void *arg)
{
	struct direct *d = m->d;
	m->done = done;
	m->arg = arg;
	m->next = NULL;
	atomic_init(&m->refs, 2); /* the loop's acknowledgement, the publisher */
	pthread_mutex_lock(&d->mu);
	if (d->pend_tail)
		d->pend_tail->next = m;
	else
		d->pend_head = m;
	d->pend_tail = m;
	pthread_mutex_unlock(&d->mu);
	pthread_cond_signal(&d->cv);
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

unsigned long direct_drops(struct direct *d)
{
	return atomic_load(&d->drops);
}

unsigned long direct_big_stages(struct direct *d)
{
	return atomic_load(&d->big_stages);
}

unsigned long direct_wb_kicks(struct direct *d)
{
	return atomic_load(&d->wb_kicks);
}

void direct_stats(const struct direct *d, unsigned long *batches, unsigned long *msgs)
{
	pthread_mutex_lock((pthread_mutex_t *)&d->amu);
	*batches = d->batches;
	*msgs = d->msgs;
	pthread_mutex_unlock((pthread_mutex_t *)&d->amu);
}
