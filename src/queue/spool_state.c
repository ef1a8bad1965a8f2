/* spool_state.c - the per-message state file queue/<qid>.state: hold flag, delay
 * warning sent, bounce sequence, and per-recipient relay state (failed for good,
 * attempts, next try, last error). docs/QUEUE.md "State records".
 *
 * It does not decide anything (relay.c does) and does not touch the queue file or
 * the .done records. A missing state file reads as all zero, so messages written
 * before it existed, and local-only messages, need none. */
#include "queue/spool.h"
#include "util/buf.h"
#include "util/dirsync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SPOOL_STATE_MAGIC "tern-state 1"
#define SPOOL_STATE_MAX (4u * 1024u * 1024u)

static int spool_state_path(struct spool *sp, const char *qid, const char *sfx, char *out,
                            size_t outsz)
{
	char q[PATH_MAX];
	int r = spool_queue_path(sp, qid, q, sizeof q);
	if (r < 0)
		return r;
	if (snprintf(out, outsz, "%s%s", q, sfx) >= (int)outsz)
		return -ENAMETOOLONG;
	return 0;
}

static int spool_state_u64(const char *p, size_t n, unsigned long long *out)
{
	unsigned long long v = 0;
	if (n == 0 || n > 19)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EBADMSG;
		v = v * 10 + (unsigned long long)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* Lines: "warned 0|1", "dsn-seq N",
 * "r INDEX FAILED ATTEMPTS NEXT_TRY LAST_ERROR" (LAST_ERROR encoded, "-" for none). */
int spool_read_state(struct spool *sp, const char *qid, struct spool_envelope *env)
{
	char path[PATH_MAX];
	char *line = NULL;
	size_t cap = 0;
	int r = spool_state_path(sp, qid, ".hold", path, sizeof path);
	if (r < 0)
		return r;
	env->held = access(path, F_OK) == 0;
	if ((r = spool_state_path(sp, qid, ".state", path, sizeof path)) < 0)
		return r;
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return errno == ENOENT ? 0 : -errno;
	ssize_t n;
	size_t lineno = 0;
	r = 0;
	while ((n = getline(&line, &cap, fp)) > 0) {
		if (line[n - 1] != '\n')
			break; /* torn: cannot happen with rename, ignore */
		line[--n] = '\0';
		if (lineno++ == 0) {
			if (strcmp(line, SPOOL_STATE_MAGIC) != 0) {
				r = -EBADMSG;
				goto out;
			}
			continue;
		}
		const char *f[6];
		size_t fl[6], k = 0, start = 0;
		for (size_t i = 0; i <= (size_t)n && k < 6; i++) {
			if (i == (size_t)n || line[i] == ' ') {
				f[k] = line + start;
				fl[k++] = i - start;
				start = i + 1;
			}
		}
		unsigned long long v[4];
		if (k == 2 && spool_state_u64(f[1], fl[1], &v[0]) == 0) {
			if (fl[0] == 6 && memcmp(f[0], "warned", 6) == 0)
				env->warned = v[0] != 0;
			else if (fl[0] == 7 && memcmp(f[0], "dsn-seq", 7) == 0)
				env->dsn_seq = (unsigned)v[0];
		} else if (k == 6 && fl[0] == 1 && f[0][0] == 'r') {
			if (spool_state_u64(f[1], fl[1], &v[0]) < 0 ||
			    spool_state_u64(f[2], fl[2], &v[1]) < 0 ||
			    spool_state_u64(f[3], fl[3], &v[2]) < 0 ||
			    spool_state_u64(f[4], fl[4], &v[3]) < 0 || v[0] >= env->nrcpts)
				continue;
			struct spool_rcpt *rc = &env->rcpts[v[0]];
			rc->failed = v[1] != 0;
			rc->attempts = (unsigned)v[2];
			rc->next_try = (time_t)v[3];
			free(rc->last_error);
			rc->last_error = NULL;
			if (!(fl[5] == 1 && f[5][0] == '-') &&
			    (r = spool_decode_value(f[5], fl[5], &rc->last_error)) < 0)
				goto out;
		}
	}
out:
	free(line);
	fclose(fp);
	return r;
}

int spool_write_state(struct spool *sp, const struct spool_envelope *env)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct buf b;
	int fd = -1, r;
	buf_init(&b, SPOOL_STATE_MAX);
	if ((r = spool_state_path(sp, env->qid, ".state", path, sizeof path)) < 0 ||
	    (r = spool_state_path(sp, env->qid, ".state-tmp", tmp, sizeof tmp)) < 0)
		goto fail;
	r = buf_printf(&b, "%s\nwarned %d\ndsn-seq %u\n", SPOOL_STATE_MAGIC,
	               env->warned ? 1 : 0, env->dsn_seq);
	for (size_t i = 0; r == 0 && i < env->nrcpts; i++) {
		const struct spool_rcpt *rc = &env->rcpts[i];
		if (!rc->failed && rc->attempts == 0 && rc->last_error == NULL)
			continue;
		r = buf_printf(&b, "r %zu %d %u %lld ", i, rc->failed ? 1 : 0, rc->attempts,
		               (long long)rc->next_try);
		if (r == 0 && rc->last_error != NULL && rc->last_error[0] != '\0')
			r = spool_encode_value(&b, rc->last_error);
		else if (r == 0)
			r = buf_append_str(&b, "-");
		r = r ? r : buf_append_str(&b, "\n");
	}
	if (r < 0)
		goto fail;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(fd, b.ptr + off, b.len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		off += (size_t)w;
	}
	if (fdatasync(fd) < 0 || rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	close(fd);
	fd = -1;
	r = dirsync_parent(path);
fail:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	buf_free(&b);
	return r;
}

void spool_rcpt_address(const struct spool_rcpt *rc, char *out, size_t outsz)
{
	const char *at = rc->orig ? strrchr(rc->orig, '@') : NULL;
	if (at != NULL && strcasecmp(at + 1, rc->domain) == 0)
		snprintf(out, outsz, "%s", rc->orig);
	else
		snprintf(out, outsz, "%s@%s", rc->user, rc->domain);
}

int spool_set_hold(struct spool *sp, const char *qid, bool hold)
{
	char path[PATH_MAX];
	int r = spool_state_path(sp, qid, ".hold", path, sizeof path);
	if (r < 0)
		return r;
	if (hold) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		close(fd);
	} else if (unlink(path) < 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	return dirsync_parent(path);
}
