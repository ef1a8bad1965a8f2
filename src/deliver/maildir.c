/* maildir.c - deliver one message into one Maildir (Maildir++ as Dovecot reads it):
 * mkdir -p tmp/new/cur (0700), write tmp/<time>.M<usec>P<pid>Q<n>.<host>, convert
 * CRLF to LF, fsync, link into new/<name>,S=<size>, unlink tmp, fsync new/ (and the
 * parents when directories were created).
 *
 * It does not choose the mailbox path (local.c maps addresses to paths safely) and
 * does not know about the queue. On error nothing is left in new/. */
#include "deliver/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/dirsync.h"
#include "util/scan.h"

#define MAILDIR_IO_SIZE (64u * 1024u)

static atomic_ulong maildir_counter;

/* mkdir -p; *created is set when any directory was made. For each one made, its
 * parent is fsynced so the new entry is durable. */
static int maildir_mkdirs(const char *path, bool *created)
{
	char p[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof p)
		return n ? -ENAMETOOLONG : -EINVAL;
	memcpy(p, path, n + 1);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char save = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) == 0) {
			*created = true;
			/* make the new entry durable in its parent */
			char *slash = strrchr(p, '/');
			int r;
			if (slash == NULL) {
				r = dirsync(".");
			} else if (slash == p) {
				r = dirsync("/");
			} else {
				*slash = '\0';
				r = dirsync(p);
				*slash = '/';
			}
			if (r < 0) {
				p[i] = save;
				return r;
			}
		} else if (errno != EEXIST) {
			return -errno;
		} else {
			struct stat st;
			if (stat(p, &st) < 0)
				return -errno;
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
		}
		p[i] = save;
	}
	return 0;
}

static int maildir_create_flag(const char *maildir, bool *created)
{
	char p[PATH_MAX];
	static const char *const sub[] = {"tmp", "new", "cur"};
	int r = maildir_mkdirs(maildir, created);
	if (r < 0)
		return r;
	for (size_t i = 0; i < 3; i++) {
		if (snprintf(p, sizeof p, "%s/%s", maildir, sub[i]) >= (int)sizeof p)
			return -ENAMETOOLONG;
		if ((r = maildir_mkdirs(p, created)) < 0)
			return r;
	}
	return 0;
}

int maildir_create(const char *maildir)
{
	bool created = false;
	return maildir_create_flag(maildir, &created);
}

/* Maildir spec: '/' -> \057 and ':' -> \072 in the host part. */
static void maildir_host(char *out, size_t outsz, const char *host)
{
	size_t o = 0;
	if (host == NULL || host[0] == '\0')
		host = "localhost";
	for (const char *h = host; *h && o + 5 < outsz; h++) {
		if (*h == '/' || *h == ':') {
			snprintf(out + o, outsz - o, "\\%03o", (unsigned char)*h);
			o += 4;
		} else if ((unsigned char)*h < 0x21 || (unsigned char)*h >= 0x7f) {
			continue;
		} else {
			out[o++] = *h;
		}
	}
	out[o] = '\0';
}

struct maildir_out {
	int fd;
	char buf[MAILDIR_IO_SIZE];
	size_t len;
	uint64_t total;
	bool pending_cr; /* a CR ended the last input chunk */
};

static int maildir_out_flush(struct maildir_out *o)
{
	size_t off = 0;
	while (off < o->len) {
		ssize_t w = write(o->fd, o->buf + off, o->len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)w;
	}
	o->len = 0;
	return 0;
}

/* Converted octets into the output buffer (written out each time it fills). */
static int maildir_out_mem(void *ctx, const char *p, size_t n)
{
	struct maildir_out *o = ctx;
	while (n > 0) {
		if (o->len == sizeof o->buf) {
			int r = maildir_out_flush(o);
			if (r < 0)
				return r;
		}
		size_t take = sizeof o->buf - o->len;
		if (take > n)
			take = n;
		memcpy(o->buf + o->len, p, take);
		o->len += take;
		o->total += take;
		p += take;
		n -= take;
	}
	return 0;
}

/* Copy bytes, turning CRLF into LF (a lone CR is kept). */
static int maildir_out_conv(struct maildir_out *o, const char *p, size_t n)
{
	return scan_crlf_to_lf(p, n, &o->pending_cr, maildir_out_mem, o);
}

int maildir_deliver(const char *maildir, const char *hostname, const char *prefix, size_t plen,
                    int fd, off_t off, off_t len, char *name_out, size_t name_sz)
{
	char host[256], base[512], tmp[PATH_MAX], newp[PATH_MAX], newdir[PATH_MAX];
	char *in = NULL;
	struct maildir_out *o = NULL;
	bool created = false, have_tmp = false;
	int r;
	struct timeval tv;

	if ((r = maildir_create_flag(maildir, &created)) < 0)
		return r;
	maildir_host(host, sizeof host, hostname);
	gettimeofday(&tv, NULL);
	unsigned long q = atomic_fetch_add(&maildir_counter, 1);
	if (snprintf(base, sizeof base, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	             (long)tv.tv_usec, (long)getpid(), q, host) >= (int)sizeof base ||
	    snprintf(tmp, sizeof tmp, "%s/tmp/%s", maildir, base) >= (int)sizeof tmp ||
	    snprintf(newdir, sizeof newdir, "%s/new", maildir) >= (int)sizeof newdir)
		return -ENAMETOOLONG;

	o = malloc(sizeof *o);
	if (o != NULL) {
		o->fd = -1;
		o->len = 0;
		o->total = 0;
		o->pending_cr = false;
	}
	in = malloc(MAILDIR_IO_SIZE);
	if (o == NULL || in == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	o->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd < 0) {
		r = -errno;
		goto fail;
	}
	have_tmp = true;
	if ((r = maildir_out_conv(o, prefix, plen)) < 0)
		goto fail;
	off_t pos = off, end = off + len;
	while (pos < end) {
		size_t want = (size_t)(end - pos) < MAILDIR_IO_SIZE ? (size_t)(end - pos)
		                                                    : MAILDIR_IO_SIZE;
		ssize_t n = pread(fd, in, want, pos);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		if (n == 0) {
			r = -EIO; /* queue file shorter than its envelope says */
			goto fail;
		}
		if ((r = maildir_out_conv(o, in, (size_t)n)) < 0)
			goto fail;
		pos += n;
	}
	if (o->pending_cr && (r = maildir_out_mem(o, "\r", 1)) < 0)
		goto fail;
	if ((r = maildir_out_flush(o)) < 0)
		goto fail;
	if (fsync(o->fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (close(o->fd) < 0) {
		o->fd = -1;
		r = -errno;
		goto fail;
	}
	o->fd = -1;

	/* link() never overwrites: a (very unlikely) name clash retries with a new Q. */
	for (int tries = 0;; tries++) {
		char nm[600];
		if (snprintf(nm, sizeof nm, "%s,S=%llu", base, (unsigned long long)o->total) >=
		        (int)sizeof nm ||
		    snprintf(newp, sizeof newp, "%s/%s", newdir, nm) >= (int)sizeof newp) {
			r = -ENAMETOOLONG;
			goto fail;
		}
		if (link(tmp, newp) == 0) {
			/* a too-small name_out gets a truncated name; the mail is delivered */
			if (name_out != NULL && name_sz > 0)
				snprintf(name_out, name_sz, "%s", nm);
			break;
		}
		if (errno != EEXIST || tries > 4) {
			r = -errno;
			goto fail;
		}
		q = atomic_fetch_add(&maildir_counter, 1);
		if (snprintf(base, sizeof base, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
		             (long)tv.tv_usec, (long)getpid(), q, host) >= (int)sizeof base) {
			r = -ENAMETOOLONG;
			goto fail;
		}
	}
	unlink(tmp);
	have_tmp = false;
	if ((r = dirsync(newdir)) < 0) {
		unlink(newp);
		goto fail;
	}
	if (created && (r = dirsync(maildir)) < 0) {
		unlink(newp);
		goto fail;
	}
	free(in);
	free(o);
	return 0;
fail:
	if (o != NULL && o->fd >= 0)
		close(o->fd);
	if (have_tmp)
		unlink(tmp);
	free(in);
	free(o);
	return r;
}

/* For other writers into Maildirs (direct.c): the per-process sequence number in
 * the Q part of unique names (shared, so names never clash within this process),
 * and the host part escaped as the Maildir spec asks. */
unsigned long maildir_next_seq(void)
{
	return atomic_fetch_add(&maildir_counter, 1);
}

void maildir_host_part(char *out, size_t outsz, const char *hostname)
{
	maildir_host(out, outsz, hostname);
}
