/* pickup.c - maildrop pickup (see pickup.h). Each file becomes one queue entry:
 * header lines give the envelope, the rest is the message, LF or CRLF line ends
 * (stored CRLF, as SMTP would have). Files that cannot be parsed move to bad/ with a
 * log line; they are never deleted. */
#include "server/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy/config.h"
#include "queue/spool.h"
#include "server/envelope.h"
#include "smtp/smtp_dsn.h"
#include "util/buf.h"
#include "util/limits.h"
#include "util/log.h"

#define PICKUP_INFLIGHT_MAX 64
#define PICKUP_NAME_MAX 256

struct pickup_job {
	struct pickup *p; /* NULL once the pickup was freed */
	char name[PICKUP_NAME_MAX];
};

struct pickup {
	struct spool *sp;
	char dir[512];
	void (*queued)(void *arg, const char *qid);
	void *arg;
	struct pickup_job *jobs[PICKUP_INFLIGHT_MAX];
};

int pickup_new(struct pickup **out, struct spool *sp, const char *dir,
               void (*queued)(void *arg, const char *qid), void *arg)
{
	struct pickup *p = calloc(1, sizeof *p);
	if (p == NULL)
		return -ENOMEM;
	if (snprintf(p->dir, sizeof p->dir, "%s", dir) >= (int)sizeof p->dir) {
		free(p);
		return -ENAMETOOLONG;
	}
	p->sp = sp;
	p->queued = queued;
	p->arg = arg;
	*out = p;
	return 0;
}

void pickup_free(struct pickup *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < PICKUP_INFLIGHT_MAX; i++)
		if (p->jobs[i])
			p->jobs[i]->p = NULL; /* the completion frees the job */
	free(p);
}

static bool pickup_in_flight(const struct pickup *p, const char *name)
{
	for (size_t i = 0; i < PICKUP_INFLIGHT_MAX; i++)
		if (p->jobs[i] && strcmp(p->jobs[i]->name, name) == 0)
			return true;
	return false;
}

static void pickup_quarantine(struct pickup *p, const char *name, const char *why)
{
	char from[1024], bad[600], to[1024];
	snprintf(bad, sizeof bad, "%s/bad", p->dir);
	mkdir(bad, 0700);
	snprintf(from, sizeof from, "%s/new/%s", p->dir, name);
	snprintf(to, sizeof to, "%s/%s", bad, name);
	if (rename(from, to) < 0)
		log_error("event=pickup-failed file=%s error=\"%s; rename to bad/: %s\"", name, why,
		          strerror(errno));
	else
		log_error("event=pickup-quarantined file=%s reason=\"%s\"", name, why);
}

/* Read a whole file, at most max bytes. */
static int pickup_read(const char *path, struct buf *b, uint64_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	int rc = 0;
	for (;;) {
		if ((rc = buf_reserve(b, 65536)) < 0)
			break;
		ssize_t r = read(fd, b->ptr + b->len, 65536);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		if (b->len > max) {
			rc = -EFBIG;
			break;
		}
	}
	close(fd);
	return rc;
}

/* "Name: <addr>[ PARAMS]" -> addr copied into out (without brackets); *params and
 * *plen get what follows it ("" or " KEY=VALUE ..."). */
static int pickup_header_addr(const char *line, size_t n, const char *name, char *out, size_t outsz,
                              const char **params, size_t *plen)
{
	size_t nl = strlen(name);
	if (n < nl || strncasecmp(line, name, nl) != 0)
		return -ENOENT;
	line += nl;
	n -= nl;
	while (n > 0 && *line == ' ') {
		line++;
		n--;
	}
	const char *close = n > 0 ? memchr(line, '>', n) : NULL;
	if (n < 2 || line[0] != '<' || close == NULL)
		return -EINVAL;
	*params = close + 1;
	*plen = n - (size_t)(close + 1 - line);
	if (*plen > 0 && **params != ' ')
		return -EINVAL;
	n = (size_t)(close - line) + 1;
	line++;
	n -= 2;
	if (n >= outsz)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
			return -EINVAL;
	}
	memcpy(out, line, n);
	out[n] = '\0';
	return 0;
}

/* " RET=HDRS ENVID=xyz" after the sender (RFC 3461 MAIL parameters, nothing else). */
static int pickup_mail_params(const char *p, size_t n, struct spool_envelope *env)
{
	char envid[SMTP_DSN_ENVID_MAX + 1] = "";
	if (smtp_dsn_mail_params(p, n, &env->ret, envid) < 0)
		return -EINVAL;
	if (envid[0] != '\0') {
		free(env->envid);
		if ((env->envid = strdup(envid)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

static void pickup_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Parse the envelope lines into env; *body gets the offset of the message. */
static int pickup_parse(const struct config *cfg, const struct buf *b, struct spool_envelope *env,
                        size_t *body, const char **why)
{
	size_t off = 0, plen;
	bool have_from = false;
	char addr[TERN_PATH_MAX + 1];
	const char *params;
	for (;;) {
		const char *nlp = memchr(b->ptr + off, '\n', b->len - off);
		if (nlp == NULL) {
			*why = "no end of envelope";
			return -EINVAL;
		}
		size_t n = (size_t)(nlp - (b->ptr + off));
		const char *line = b->ptr + off;
		off += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (pickup_header_addr(line, n, "X-Tern-Sender:", addr, sizeof addr, &params, &plen) ==
		    0) {
			if (have_from) {
				*why = "two senders";
				return -EINVAL;
			}
			have_from = true;
			free(env->from);
			if ((env->from = strdup(addr)) == NULL)
				return -ENOMEM;
			int rc = pickup_mail_params(params, plen, env);
			if (rc < 0) {
				*why = "bad sender parameters";
				return rc;
			}
		} else if (pickup_header_addr(line, n, "X-Tern-Rcpt:", addr, sizeof addr, &params,
		                              &plen) == 0) {
			struct smtp_rcpt_dsn d;
			if (smtp_dsn_rcpt_params(params, plen, &d) < 0) {
				*why = "bad recipient parameters";
				return -EINVAL;
			}
			char *at = strrchr(addr, '@');
			if (at == NULL || at == addr || at[1] == '\0') {
				*why = "recipient without a domain";
				return -EINVAL;
			}
			char orig[TERN_PATH_MAX + 1];
			snprintf(orig, sizeof orig, "%s", addr);
			*at = '\0';
			pickup_lower(addr);
			pickup_lower(at + 1);
			if (strlen(addr) > TERN_LOCAL_PART_MAX || strlen(at + 1) > TERN_DOMAIN_MAX) {
				*why = "recipient too long";
				return -EINVAL;
			}
			int rc = envelope_add_rcpt(cfg, env, addr, at + 1, orig, &d);
			if (rc < 0)
				return rc;
		} else {
			*why = "unknown envelope line";
			return -EINVAL;
		}
	}
	if (!have_from || env->nrcpts == 0) {
		*why = "sender or recipients missing";
		return -EINVAL;
	}
	*body = off;
	return 0;
}

/* Write the message with CRLF line ends whatever the file had. */
static int pickup_write_body(struct spool_msg *m, const char *p, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		size_t end = i;
		if (end > start && p[end - 1] == '\r')
			end--;
		int rc = spool_msg_write(m, p + start, end - start);
		if (rc == 0)
			rc = spool_msg_write(m, "\r\n", 2);
		if (rc < 0)
			return rc;
		start = i + 1;
	}
	if (start < n) {
		int rc = spool_msg_write(m, p + start, n - start);
		if (rc == 0)
			rc = spool_msg_write(m, "\r\n", 2);
		return rc;
	}
	return 0;
}

static void pickup_done(void *arg, int err, const char *qid)
{
	struct pickup_job *job = arg;
	struct pickup *p = job->p;
	if (p != NULL) {
		for (size_t i = 0; i < PICKUP_INFLIGHT_MAX; i++)
			if (p->jobs[i] == job)
				p->jobs[i] = NULL;
		char path[1024];
		snprintf(path, sizeof path, "%s/new/%s", p->dir, job->name);
		if (err == 0) {
			if (unlink(path) < 0)
				log_warn("event=pickup-unlink-failed file=%s error=\"%s\"", job->name,
				         strerror(errno));
			log_info("qid=%s event=accepted source=maildrop file=%s", qid, job->name);
			p->queued(p->arg, qid);
		} else {
			log_error("event=pickup-commit-failed file=%s error=\"%s\" (retried)",
			          job->name, strerror(-err));
		}
	}
	free(job);
}

static void pickup_one(struct pickup *p, const struct config *cfg, const char *name, size_t slot)
{
	char path[1024];
	struct buf b;
	struct spool_envelope env;
	struct spool_msg *m = NULL;
	const char *why = "unreadable";
	size_t body = 0;
	buf_init(&b, 0);
	memset(&env, 0, sizeof env);
	snprintf(path, sizeof path, "%s/new/%s", p->dir, name);
	int rc = pickup_read(path, &b, cfg->max_msg_size + 65536);
	if (rc == -EFBIG) {
		why = "message exceeds max_message_size";
		goto bad;
	}
	if (rc < 0)
		goto fail;
	rc = pickup_parse(cfg, &b, &env, &body, &why);
	if (rc == -EINVAL)
		goto bad;
	if (rc < 0)
		goto fail;
	env.arrival = time(NULL);
	env.helo = strdup("");
	env.client_addr = strdup("maildrop");
	env.body = 1; /* treat as 8BITMIME: local submission may carry 8-bit text */
	if (env.helo == NULL || env.client_addr == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = spool_msg_begin(p->sp, &m, &env)) < 0)
		goto fail;
	char hdr[512], date[64];
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	int hn = snprintf(hdr, sizeof hdr, "Received: by %s (tern sendmail) id %s;\r\n\t%s\r\n",
	                  cfg->hostname, spool_msg_qid(m), date);
	if (hn < 0 || hn >= (int)sizeof hdr)
		hn = 0;
	if ((rc = spool_msg_write(m, hdr, (size_t)hn)) < 0 ||
	    (rc = pickup_write_body(m, b.ptr + body, b.len - body)) < 0) {
		spool_msg_abort(m);
		goto fail;
	}
	struct pickup_job *job = calloc(1, sizeof *job);
	if (job == NULL) {
		spool_msg_abort(m);
		rc = -ENOMEM;
		goto fail;
	}
	job->p = p;
	snprintf(job->name, sizeof job->name, "%s", name);
	p->jobs[slot] = job;
	spool_msg_commit(m, pickup_done, job);
	spool_envelope_free(&env);
	buf_free(&b);
	return;
bad:
	pickup_quarantine(p, name, why);
	spool_envelope_free(&env);
	buf_free(&b);
	return;
fail:
	log_error("event=pickup-failed file=%s error=\"%s\" (retried)", name, strerror(-rc));
	spool_envelope_free(&env);
	buf_free(&b);
}

void pickup_scan(struct pickup *p, const struct config *cfg)
{
	char path[600];
	snprintf(path, sizeof path, "%s/new", p->dir);
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= PICKUP_NAME_MAX)
			continue;
		if (pickup_in_flight(p, de->d_name))
			continue;
		size_t slot = PICKUP_INFLIGHT_MAX;
		for (size_t i = 0; i < PICKUP_INFLIGHT_MAX; i++)
			if (p->jobs[i] == NULL) {
				slot = i;
				break;
			}
		if (slot == PICKUP_INFLIGHT_MAX)
			break; /* next tick */
		pickup_one(p, cfg, de->d_name, slot);
	}
	closedir(d);
}
