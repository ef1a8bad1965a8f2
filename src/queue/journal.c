/* journal.c - see journal.h. */
#include "queue/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/dirsync.h"
#include "util/log.h"

#define JOURNAL_FILE_MAGIC "TERNJRN1"
#define JOURNAL_REC_MAGIC 0x4a524543u /* "JREC" */
#define JOURNAL_CHUNK (1u << 20)      /* first size of the ring, and growth step */

struct journal_filehdr {
	char magic[8];
	uint32_t version;
	uint32_t crc; /* over this struct with crc = 0 */
	uint64_t id;
};

struct journal_rechdr {
	uint32_t magic;
	uint32_t crc; /* over this struct with crc = 0, then the payload */
	uint64_t id;
	uint64_t seq;
	uint64_t retired_below;
	uint32_t len;
	uint32_t pad;
};

struct journal_live {
	uint64_t seq, off, end;
};

struct journal {
	int fd;
	uint64_t id;
	uint64_t size; /* written under mu (journal_usage reads it elsewhere) */
	uint64_t max;
	uint64_t head; /* where the next record goes (append thread only) */
	uint64_t next_seq;
	pthread_mutex_t mu; /* the fields below */
	uint64_t retired_below;
	struct journal_live *q; /* live records, oldest first, as a ring */
	size_t qcap, qfront, qlen;
	uint64_t live_bytes;
	/* O_DIRECT (append thread only): records are built in stage, aligned, and
	 * written by journal_sync (or when the next record does not follow them) */
	bool dio;
	char *stage; /* JOURNAL_PAGE-aligned */
	size_t stage_cap, stage_len;
	uint64_t stage_off; /* file offset of stage[0] */
	int stage_err;      /* a failed stage write, for the next journal_sync */
	aio_context_t aio;  /* 0: none (journal_submit leaves the work to journal_sync) */
	bool inflight;      /* the stage is being written by the kernel */
	bool aio_off;       /* the device refused it: synchronous from now on */
	bool unflushed;     /* written (O_DIRECT) without a flush since */
	struct iocb cb;
	char *zeros; /* JOURNAL_ZEROS bytes, aligned, for growing the file */
};

#define JOURNAL_PAGE 4096
#define JOURNAL_ZEROS 65536u
#define JOURNAL_STAGE_MAX (1u << 20) /* written out when a batch grows past it */

static const char journal_zeros[JOURNAL_ALIGN];

static int journal_reap(struct journal *j);

static uint64_t journal_round(uint64_t n)
{
	return (n + JOURNAL_ALIGN - 1) / JOURNAL_ALIGN * JOURNAL_ALIGN;
}

static int journal_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = pwrite(fd, c, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Real zeros from `from` to `to`, so later records overwrite allocated blocks.
 * zeros: JOURNAL_ZEROS bytes (aligned when fd is O_DIRECT), or NULL for our own. */
static int journal_zero_fill(int fd, uint64_t from, uint64_t to, const char *zeros)
{
	static const char our_zeros[JOURNAL_ZEROS];
	if (zeros == NULL)
		zeros = our_zeros;
	while (from < to) {
		size_t n = to - from > JOURNAL_ZEROS ? JOURNAL_ZEROS : (size_t)(to - from);
		int r = journal_pwrite_all(fd, zeros, n, from);
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

static uint32_t journal_filehdr_crc(struct journal_filehdr h)
{
	h.crc = 0;
	return crc32c(0, &h, sizeof h);
}

/* A scratch directory, next to path, for creating the file in. On ext4 its parent
 * is marked FS_TOPDIR_FL, so the Orlov allocator puts it (and the file's inode)
 * in another block group than its siblings. Why: ext4 without a journal writes
 * the whole inode-table block holding the file's inode at every fdatasync when
 * anything in that block changed, and by default the journal's inode shares a
 * block with the first mailboxes' directories, whose times change at every
 * delivery: one more device write in each commit. Elsewhere the flag is refused
 * or ignored and the file is made where it would have been. */
static int journal_scratch_dir(const char *path, char *out, size_t outsz)
{
	const char *slash = strrchr(path, '/');
	int n = slash ? snprintf(out, outsz, "%.*s/.journal-new", (int)(slash - path), path)
	              : snprintf(out, outsz, ".journal-new");
	if (n < 0 || (size_t)n >= outsz)
		return -ENAMETOOLONG;
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - path) : 1,
	         slash ? path : ".");
	int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		int fl = 0;
		if (ioctl(dfd, FS_IOC_GETFLAGS, &fl) == 0 && !(fl & FS_TOPDIR_FL)) {
			fl |= FS_TOPDIR_FL;
			(void)ioctl(dfd, FS_IOC_SETFLAGS, &fl); /* a placement hint only */
		}
		close(dfd);
	}
	if (mkdir(out, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A new file under a temporary name, then renamed into place: a journal at its
 * final name always has a whole header. */
static int journal_create(const char *path)
{
	char tmp[PATH_MAX], scratch[PATH_MAX];
	int r = journal_scratch_dir(path, scratch, sizeof scratch);
	if (r < 0)
		return r;
	if (snprintf(tmp, sizeof tmp, "%s/journal.new", scratch) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	struct journal_filehdr h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, JOURNAL_FILE_MAGIC, sizeof h.magic);
	h.version = 1;
	if (getrandom(&h.id, sizeof h.id, 0) != (ssize_t)sizeof h.id)
		return errno ? -errno : -EIO;
	h.crc = journal_filehdr_crc(h);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		rmdir(scratch);
		return r;
	}
	r = journal_zero_fill(fd, 0, JOURNAL_HEADER + JOURNAL_CHUNK, NULL);
	if (r == 0)
		r = journal_pwrite_all(fd, &h, sizeof h, 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = dirsync_parent(path);
	if (r < 0)
		unlink(tmp);
	rmdir(scratch);
	return r;
}

static int journal_live_push(struct journal *j, uint64_t seq, uint64_t off, uint64_t end)
{
	if (j->qlen == j->qcap) {
		size_t ncap = j->qcap ? j->qcap * 2 : 256;
		struct journal_live *nq = malloc(ncap * sizeof *nq);
		if (nq == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < j->qlen; i++)
			nq[i] = j->q[(j->qfront + i) % j->qcap];
		free(j->q);
		j->q = nq;
		j->qcap = ncap;
		j->qfront = 0;
	}
	j->q[(j->qfront + j->qlen) % j->qcap] = (struct journal_live){seq, off, end};
	j->qlen++;
	j->live_bytes += end - off;
	return 0;
}

static void journal_live_prune(struct journal *j)
{
	while (j->qlen > 0 && j->q[j->qfront].seq < j->retired_below) {
		j->live_bytes -= j->q[j->qfront].end - j->q[j->qfront].off;
		j->qfront = (j->qfront + 1) % j->qcap;
		j->qlen--;
	}
}

struct journal_found {
	uint64_t seq, rb, off, end;
	uint32_t len;
};

static int journal_found_cmp(const void *a, const void *b)
{
	const struct journal_found *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Read the whole file, find every valid record, replay the live ones. */
static int journal_recover(struct journal *j, const char *path, journal_replay_fn fn, void *arg)
{
	char *img = malloc(j->size);
	struct journal_found *f = NULL;
	size_t nf = 0, capf = 0;
	int r = 0;
	if (img == NULL)
		return -ENOMEM;
	for (uint64_t got = 0; got < j->size;) {
		ssize_t n = pread(j->fd, img + got, j->size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out;
		}
		got += (uint64_t)n;
	}
	uint64_t rb = 0, maxseq = 0, maxend = JOURNAL_HEADER;
	for (uint64_t off = JOURNAL_HEADER; off + sizeof(struct journal_rechdr) <= j->size;) {
		struct journal_rechdr h;
		memcpy(&h, img + off, sizeof h);
		uint64_t room = j->size - off - sizeof h;
		if (h.magic != JOURNAL_REC_MAGIC || h.id != j->id || h.len > room || h.seq == 0) {
			off += JOURNAL_ALIGN;
			continue;
		}
		uint32_t want = h.crc;
		h.crc = 0;
		uint32_t c = crc32c(crc32c(0, &h, sizeof h), img + off + sizeof h, h.len);
		if (c != want) {
			off += JOURNAL_ALIGN;
			continue;
		}
		if (nf == capf) {
			size_t nc = capf ? capf * 2 : 256;
			struct journal_found *nfp = realloc(f, nc * sizeof *f);
			if (nfp == NULL) {
				r = -ENOMEM;
				goto out;
			}
			f = nfp;
			capf = nc;
		}
		uint64_t end = off + journal_round(sizeof h + h.len);
		f[nf++] = (struct journal_found){h.seq, h.retired_below, off, end, h.len};
		if (h.retired_below > rb)
			rb = h.retired_below;
		if (h.seq > maxseq) {
			maxseq = h.seq;
			maxend = end;
		}
		off = end;
	}
	if (nf > 1)
		qsort(f, nf, sizeof *f, journal_found_cmp);
	j->retired_below = rb;
	j->next_seq = maxseq + 1;
	if (j->next_seq < rb)
		j->next_seq = rb;
	j->head = maxend >= j->size ? JOURNAL_HEADER : maxend;
	size_t nlive = 0;
	for (size_t i = 0; i < nf; i++) {
		if (f[i].seq < rb || (i > 0 && f[i].seq == f[i - 1].seq))
			continue;
		if ((r = journal_live_push(j, f[i].seq, f[i].off, f[i].end)) < 0)
			goto out;
		nlive++;
	}
	if (nlive > 0)
		log_info("event=journal-recover file=\"%s\" live=%zu next_seq=%llu", path, nlive,
		         (unsigned long long)j->next_seq);
	for (size_t i = 0; i < nf; i++) {
		if (f[i].seq < rb || (i > 0 && f[i].seq == f[i - 1].seq) || f[i].len == 0)
			continue;
		int fr = fn ? fn(arg, f[i].seq,
		                 img + f[i].off + sizeof(struct journal_rechdr), f[i].len)
		            : 0;
		if (fr < 0)
			log_warn("event=journal-replay-failed seq=%llu error=\"%s\"",
			         (unsigned long long)f[i].seq, strerror(-fr));
	}
out:
	free(f);
	free(img);
	return r;
}

static int journal_check_header(int fd, uint64_t size, uint64_t *id)
{
	struct journal_filehdr h;
	if (size < JOURNAL_HEADER + JOURNAL_ALIGN)
		return -EINVAL;
	if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
		return -EINVAL;
	if (memcmp(h.magic, JOURNAL_FILE_MAGIC, sizeof h.magic) != 0 || h.version != 1 ||
	    h.crc != journal_filehdr_crc(h))
		return -EINVAL;
	*id = h.id;
	return 0;
}

/* Writes bypass the page cache (O_DIRECT) unless TERN_JOURNAL_DIRECT=0: a batch is
 * one device write from our own buffer, with no page-cache copy and no writeback
 * for fdatasync to start and wait for (measured in bench/RESULTS.md). Where the
 * filesystem refuses O_DIRECT, or (at the first write) the device needs more than
 * 512-byte alignment, the journal stays buffered. */
static void journal_direct_io(struct journal *j)
{
	const char *e = getenv("TERN_JOURNAL_DIRECT");
	if (e != NULL && strcmp(e, "0") == 0)
		return;
	if (posix_memalign((void **)&j->zeros, JOURNAL_PAGE, JOURNAL_ZEROS) != 0) {
		j->zeros = NULL;
		return;
	}
	memset(j->zeros, 0, JOURNAL_ZEROS);
	int fl = fcntl(j->fd, F_GETFL);
	if (fl < 0 || fcntl(j->fd, F_SETFL, fl | O_DIRECT) < 0)
		return; /* zeros stay: aligned zeros serve buffered writes as well */
	/* recovery read the file through the page cache: drop those pages */
	(void)posix_fadvise(j->fd, 0, 0, POSIX_FADV_DONTNEED);
	j->dio = true;
	e = getenv("TERN_JOURNAL_AIO");
	if ((e == NULL || strcmp(e, "0") != 0) && syscall(SYS_io_setup, 1L, &j->aio) < 0)
		j->aio = 0; /* none: journal_sync writes and flushes itself */
}

int journal_open(struct journal **out, const char *path, uint64_t max_bytes,
                 journal_replay_fn fn, void *arg)
{
	int r;
	*out = NULL;
	struct journal *j = calloc(1, sizeof *j);
	if (j == NULL)
		return -ENOMEM;
	j->fd = -1;
	pthread_mutex_init(&j->mu, NULL);
	j->max = max_bytes ? max_bytes : JOURNAL_DEFAULT_MAX;
	if (j->max < JOURNAL_HEADER + JOURNAL_CHUNK)
		j->max = JOURNAL_HEADER + JOURNAL_CHUNK;
	for (int attempt = 0; attempt < 2; attempt++) {
		j->fd = open(path, O_RDWR | O_CLOEXEC);
		if (j->fd < 0 && errno == ENOENT) {
			if ((r = journal_create(path)) < 0)
				goto fail;
			j->fd = open(path, O_RDWR | O_CLOEXEC);
		}
		if (j->fd < 0) {
			r = -errno;
			goto fail;
		}
		struct stat st;
		if (fstat(j->fd, &st) < 0) {
			r = -errno;
			goto fail;
		}
		j->size = (uint64_t)st.st_size;
		if (journal_check_header(j->fd, j->size, &j->id) == 0)
			break;
		/* not ours, or damaged: keep it for a person to look at, start afresh */
		close(j->fd);
		j->fd = -1;
		char aside[PATH_MAX];
		snprintf(aside, sizeof aside, "%s.corrupt-%lld", path, (long long)time(NULL));
		log_error("event=journal-corrupt file=\"%s\" moved_to=\"%s\"", path, aside);
		if (attempt == 1 || rename(path, aside) < 0) {
			r = attempt == 1 ? -EINVAL : -errno;
			goto fail;
		}
	}
	if (j->size > j->max)
		j->max = j->size;
	if ((r = journal_recover(j, path, fn, arg)) < 0)
		goto fail;
	journal_direct_io(j);
	*out = j;
	return 0;
fail:
	journal_close(j);
	return r;
}

void journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->inflight)
		(void)journal_reap(j);
	if (j->aio != 0)
		syscall(SYS_io_destroy, j->aio);
	if (j->fd >= 0)
		close(j->fd);
	pthread_mutex_destroy(&j->mu);
	free(j->stage);
	free(j->zeros);
	free(j->q);
	free(j);
}

int journal_fd(const struct journal *j)
{
	return j->fd;
}

/* Grow the ring so that [head, head + need) fits at its end. */
static int journal_grow(struct journal *j, uint64_t need_end)
{
	uint64_t nsize = j->size * 2;
	if (nsize < need_end)
		nsize = (need_end + JOURNAL_CHUNK - 1) / JOURNAL_CHUNK * JOURNAL_CHUNK;
	if (nsize > j->max)
		nsize = j->max;
	if (nsize < need_end)
		return -ENOSPC;
	int r = journal_zero_fill(j->fd, j->size, nsize, j->zeros);
	if (r == 0 && fdatasync(j->fd) < 0)
		r = -errno;
	if (r < 0)
		return r;
	pthread_mutex_lock(&j->mu); /* journal_usage reads it from other threads */
	j->size = nsize;
	pthread_mutex_unlock(&j->mu);
	return 0;
}

/* Buffered: the record goes to the page cache now. */
static int journal_write(struct journal *j, const struct journal_rechdr *h, const void *p,
                         size_t n, uint64_t off, uint64_t total)
{
	size_t padn = (size_t)(total - sizeof *h - n);
	struct iovec iov[3] = {
		{(void *)h, sizeof *h},
		{(void *)p, n},
		{(void *)journal_zeros, padn},
	};
	uint64_t at = off;
	int iovcnt = padn ? 3 : 2, k = 0;
	while (k < iovcnt) {
		ssize_t w = pwritev(j->fd, iov + k, iovcnt - k, (off_t)at);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		at += (uint64_t)w;
		while (k < iovcnt && (size_t)w >= iov[k].iov_len) {
			w -= (ssize_t)iov[k].iov_len;
			k++;
		}
		if (k < iovcnt) {
			iov[k].iov_base = (char *)iov[k].iov_base + w;
			iov[k].iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Write stage[from, stage_len) synchronously, without a flush. */
static int journal_stage_write(struct journal *j, size_t from)
{
	const char *p = j->stage + from;
	size_t n = j->stage_len - from;
	uint64_t off = j->stage_off + from;
	int r = journal_pwrite_all(j->fd, p, n, off);
	if (r == -EINVAL && j->dio &&
	    fcntl(j->fd, F_SETFL, fcntl(j->fd, F_GETFL) & ~O_DIRECT) == 0) {
		/* the device wants more alignment than 512 bytes: buffered from now on */
		log_warn("event=journal-direct-io-unsupported action=buffered");
		j->dio = false;
		r = journal_pwrite_all(j->fd, p, n, off);
	}
	return r;
}

/* O_DIRECT: write what is staged (one device write for the batch). */
static int journal_stage_flush(struct journal *j)
{
	if (j->stage_len == 0)
		return 0;
	int r = journal_stage_write(j, 0);
	j->stage_len = 0;
	if (r == 0)
		j->unflushed = true;
	else if (j->stage_err == 0)
		j->stage_err = r; /* records appended before this one were in it */
	return r;
}

/* O_DIRECT: add the record to the stage, after what is there when it follows it. */
static int journal_stage(struct journal *j, const struct journal_rechdr *h, const void *p,
                         size_t n, uint64_t off, uint64_t total)
{
	if (j->stage_len > 0 && (off != j->stage_off + j->stage_len ||
	                         j->stage_len + total > JOURNAL_STAGE_MAX)) {
		int r = journal_stage_flush(j);
		if (r < 0)
			return r;
	}
	if (j->stage_len + total > j->stage_cap) {
		size_t ncap = j->stage_cap ? j->stage_cap : JOURNAL_STAGE_MAX;
		while (ncap < j->stage_len + total)
			ncap *= 2;
		char *ns;
		if (posix_memalign((void **)&ns, JOURNAL_PAGE, ncap) != 0)
			return -ENOMEM;
		if (j->stage_len > 0)
			memcpy(ns, j->stage, j->stage_len);
		free(j->stage);
		j->stage = ns;
		j->stage_cap = ncap;
	}
	if (j->stage_len == 0)
		j->stage_off = off;
	char *at = j->stage + j->stage_len;
	memcpy(at, h, sizeof *h);
	if (n > 0)
		memcpy(at + sizeof *h, p, n);
	memset(at + sizeof *h + n, 0, (size_t)(total - sizeof *h - n));
	j->stage_len += (size_t)total;
	return 0;
}

int64_t journal_append(struct journal *j, const void *p, size_t n)
{
	uint64_t total = journal_round(sizeof(struct journal_rechdr) + n);
	if (n > UINT32_MAX || total > j->max - JOURNAL_HEADER)
		return -EMSGSIZE;
	if (j->inflight) { /* the stage is the kernel's until then */
		int r = journal_reap(j);
		if (r < 0 && j->stage_err == 0)
			j->stage_err = r;
	}
	pthread_mutex_lock(&j->mu);
	journal_live_prune(j);
	bool empty = j->qlen == 0;
	uint64_t tail = empty ? 0 : j->q[j->qfront].off;
	uint64_t rb = j->retired_below;
	pthread_mutex_unlock(&j->mu);

	uint64_t off = j->head;
	if (empty) {
		if (off + total > j->size) {
			off = JOURNAL_HEADER;
			if (off + total > j->size) {
				int r = journal_grow(j, off + total);
				if (r < 0)
					return r;
			}
		}
	} else if (off >= tail) { /* live part is [tail, head) */
		if (off + total > j->size) {
			/* Wrap, unless the ring is small for what stays live: more than half
			 * of it live means the start is freed barely in time, and once
			 * wrapped it cannot grow (a full ring sends messages the slow way). */
			bool tight = j->size < j->max && (off - tail) * 2 > j->size;
			if (JOURNAL_HEADER + total < tail && !tight) { /* strict: head never meets tail */
				off = JOURNAL_HEADER;
			} else {
				int r = journal_grow(j, off + total);
				if (r < 0)
					return r;
			}
		}
	} else if (off + total >= tail) { /* wrapped: live is [tail, size) + [start, head) */
		return -ENOSPC;
	}

	struct journal_rechdr h = {
		.magic = JOURNAL_REC_MAGIC,
		.id = j->id,
		.seq = j->next_seq,
		.retired_below = rb,
		.len = (uint32_t)n,
	};
	h.crc = crc32c(crc32c(0, &h, sizeof h), p, n);
	int r = j->dio ? journal_stage(j, &h, p, n, off, total)
	               : journal_write(j, &h, p, n, off, total);
	if (r < 0)
		return r;
	pthread_mutex_lock(&j->mu);
	r = journal_live_push(j, h.seq, off, off + total);
	pthread_mutex_unlock(&j->mu);
	if (r < 0)
		return r;
	j->head = off + total;
	j->next_seq++;
	return (int64_t)h.seq;
}

int journal_submit(struct journal *j)
{
	if (j->aio == 0 || j->aio_off || !j->dio || j->inflight || j->stage_len == 0 ||
	    j->stage_err)
		return 0;
	memset(&j->cb, 0, sizeof j->cb);
	j->cb.aio_fildes = (uint32_t)j->fd;
	j->cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	j->cb.aio_buf = (uint64_t)(uintptr_t)j->stage;
	j->cb.aio_nbytes = j->stage_len;
	j->cb.aio_offset = (int64_t)j->stage_off;
	j->cb.aio_rw_flags = RWF_DSYNC; /* done = on the device, its cache flushed */
	struct iocb *cbs[1] = {&j->cb};
	long n;
	do
		n = syscall(SYS_io_submit, j->aio, 1L, cbs);
	while (n < 0 && errno == EINTR);
	if (n == 1) {
		j->inflight = true;
		j->unflushed = false; /* its flush covers what was written before it */
		return 0;
	}
	/* not taken: journal_sync writes it itself. Refused for good (a kernel whose
	 * AIO does not know RWF_DSYNC, a filesystem without it): said once, and the
	 * synchronous O_DIRECT write from now on rather than a refusal per batch. */
	if (n < 0 && errno != EAGAIN) {
		log_warn("event=journal-aio-unsupported error=\"%s\" action=direct",
		         strerror(errno));
		j->aio_off = true;
	}
	return 0;
}

/* Wait for the submitted write; the stage is free again. 0: it is durable, or it
 * was refused for its alignment (then the stage is kept for journal_stage_flush,
 * which goes buffered); else -errno. */
static int journal_reap(struct journal *j)
{
	struct io_event ev;
	long n;
	do
		n = syscall(SYS_io_getevents, j->aio, 1L, 1L, &ev, NULL);
	while (n < 0 && errno == EINTR);
	j->inflight = false;
	int64_t res = n == 1 ? (int64_t)ev.res : n < 0 ? -errno : -EIO;
	if (res == -EINVAL) {
		j->aio_off = true;
		return 0;
	}
	if (res < 0 || (uint64_t)res >= j->stage_len) {
		j->stage_len = 0;
		return res < 0 ? (int)res : 0;
	}
	/* short: the rest the synchronous way */
	int r = journal_stage_write(j, (size_t)res);
	j->stage_len = 0;
	if (r == 0 && fdatasync(j->fd) < 0)
		r = -errno;
	return r;
}

int journal_sync(struct journal *j)
{
	int r = j->inflight ? journal_reap(j) : 0;
	if (j->stage_len > 0)
		journal_stage_flush(j); /* sets unflushed, or stage_err */
	if (r == 0)
		r = j->stage_err;
	j->stage_err = 0;
	if (r == 0 && (!j->dio || j->unflushed)) {
		if (fdatasync(j->fd) < 0)
			r = -errno;
		else
			j->unflushed = false;
	}
	return r;
}

void journal_retire(struct journal *j, uint64_t below)
{
	pthread_mutex_lock(&j->mu);
	if (below > j->retired_below) {
		j->retired_below = below;
		journal_live_prune(j);
	}
	pthread_mutex_unlock(&j->mu);
}

const char *journal_io_mode(const struct journal *j)
{
	if (!j->dio)
		return "buffered";
	return j->aio != 0 && !j->aio_off ? "direct-aio" : "direct";
}

uint64_t journal_max_bytes(const struct journal *j)
{
	return j->max;
}

uint64_t journal_next_seq(struct journal *j)
{
	return j->next_seq;
}

void journal_usage(struct journal *j, uint64_t *live, uint64_t *size)
{
	pthread_mutex_lock(&j->mu);
	*live = j->live_bytes;
	*size = j->size;
	pthread_mutex_unlock(&j->mu);
}
