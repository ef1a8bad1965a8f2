/* local.c - local delivery workers: take committed queue ids, deliver each
 * not-yet-delivered recipient into its Maildir, record it done in the spool,
 * remove the queue entry when every recipient is delivered. A failure is logged
 * and the message retried with exponential backoff; nothing is ever dropped.
 *
 * It does not resolve aliases or check users (the envelope already holds the final
 * mailbox), does not relay, and never runs on the event loop thread. The address
 * to path mapping lives here (local_mailbox_path) and is the only place a mail
 * address becomes part of a file name. */
#include "deliver/local.h"
#include "deliver/maildir.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_NAME_MAX 255 /* one path component (NAME_MAX) */

struct local_item {
	char qid[SPOOL_QID_MAX];
	uint64_t due_ms;    /* CLOCK_MONOTONIC milliseconds; 0 = now */
	uint64_t seq;       /* FIFO order among equal due times */
	unsigned attempts;  /* failed attempts so far */
};

struct local_delivery {
	struct spool *sp;
	bool (*is_local)(void *arg, const char *domain);
	void *is_local_arg;
	char data_dir[PATH_MAX];
	char pattern[PATH_MAX];
	char hostname[256];
	unsigned retry_first_s, retry_max_s;
	unsigned give_up_s;
	void (*remote)(void *arg, const char *qid);
	void *remote_arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct local_item *heap;   /* min-heap on (due_ms, seq) */
	size_t n, cap;
	uint64_t seq;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
	char (*active)[SPOOL_QID_MAX]; /* qid each worker is on, "" when idle */
};

/* ---- address -> path ---- */

static int local_component(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start = b->len;
	int r = 0;
	if (s == NULL || s[0] == '\0')
		return -EINVAL;
	for (const unsigned char *p = (const unsigned char *)s; *p && r == 0; p++) {
		unsigned char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		          c == '-' || c == '+' || c == '=' || (c == '.' && p != (const unsigned char *)s);
		if (ok) {
			r = buf_append(b, &c, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			r = buf_append(b, e, 3);
		}
	}
	if (r == 0 && b->len - start > LOCAL_NAME_MAX)
		r = -ENAMETOOLONG;
	return r;
}

int local_mailbox_path(const char *data_dir, const char *pattern, const char *user,
                       const char *domain, char *out, size_t outsz)
{
	struct buf b;
	int r = 0;
	buf_init(&b, PATH_MAX);
	if (pattern == NULL || pattern[0] == '\0') {
		r = -EINVAL;
		goto fail;
	}
	if (pattern[0] != '/') {
		if (data_dir == NULL || data_dir[0] == '\0')
			data_dir = ".";
		if ((r = buf_append_str(&b, data_dir)) < 0 || (r = buf_append_str(&b, "/")) < 0)
			goto fail;
	}
	for (const char *p = pattern; *p && r == 0; p++) {
		if (*p != '%') {
			r = buf_append(&b, p, 1);
			continue;
		}
		p++;
		if (*p == 'u')
			r = local_component(&b, user);
		else if (*p == 'd')
			r = local_component(&b, domain);
		else if (*p == '%')
			r = buf_append(&b, "%", 1);
		else
			r = -EINVAL;
		if (*p == '\0')
			break;
	}
	if (r < 0)
		goto fail;
	if (b.len + 1 > outsz) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	memcpy(out, b.ptr, b.len);
	out[b.len] = '\0';
fail:
	buf_free(&b);
	if (r == -ENOSPC)
		r = -ENAMETOOLONG;
	return r;
}

/* ---- scheduling ---- */

static uint64_t local_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool local_item_less(const struct local_item *a, const struct local_item *b)
{
	return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void local_heap_swap(struct local_item *a, struct local_item *b)
{
	struct local_item t = *a;
	*a = *b;
	*b = t;
}

/* Called with mu held. */
static int local_heap_push(struct local_delivery *ld, const char *qid, uint64_t due_ms,
                           unsigned attempts)
{
	if (ld->n == ld->cap) {
		size_t ncap = ld->cap ? ld->cap * 2 : 64;
		struct local_item *nh = realloc(ld->heap, ncap * sizeof *nh);
		if (nh == NULL)
			return -ENOMEM;
		ld->heap = nh;
		ld->cap = ncap;
	}
	struct local_item *it = &ld->heap[ld->n];
	snprintf(it->qid, sizeof it->qid, "%s", qid);
	it->due_ms = due_ms;
	it->seq = ld->seq++;
	it->attempts = attempts;
	size_t i = ld->n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!local_item_less(&ld->heap[i], &ld->heap[parent]))
			break;
		local_heap_swap(&ld->heap[i], &ld->heap[parent]);
		i = parent;
	}
	return 0;
}

static struct local_item local_heap_pop(struct local_delivery *ld)
{
	struct local_item top = ld->heap[0];
	ld->heap[0] = ld->heap[--ld->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < ld->n && local_item_less(&ld->heap[l], &ld->heap[m]))
			m = l;
		if (r < ld->n && local_item_less(&ld->heap[r], &ld->heap[m]))
			m = r;
		if (m == i)
			break;
		local_heap_swap(&ld->heap[i], &ld->heap[m]);
		i = m;
	}
	return top;
}

void local_delivery_enqueue(struct local_delivery *ld, const char *qid)
{
	if (ld == NULL || qid == NULL || strlen(qid) >= SPOOL_QID_MAX)
		return;
	pthread_mutex_lock(&ld->mu);
	if (local_heap_push(ld, qid, 0, 0) < 0)
		log_error("qid=%s event=enqueue-failed error=\"out of memory\" note=\"stays queued "
		          "on disk until restart\"",
		          qid);
	pthread_cond_signal(&ld->cv);
	pthread_mutex_unlock(&ld->mu);
}

/* ---- delivering one message ---- */

/* Copy s into b with CR, LF and other control bytes replaced by '?', so a header
 * line built from an address stays one line; lower: ASCII lowercase (domains). */
static int local_header_value(struct buf *b, const char *s, bool lower)
{
	int r = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && r == 0; p++) {
		char c = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
		if (lower && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		r = buf_append(b, &c, 1);
	}
	return r;
}

static int local_prefix(struct buf *b, const char *from, const char *user, const char *domain)
{
	int r;
	buf_reset(b);
	r = buf_append_str(b, "Return-Path: <");
	r = r ? r : local_header_value(b, from, false);
	r = r ? r : buf_append_str(b, ">\r\nDelivered-To: ");
	r = r ? r : local_header_value(b, user, false);
	r = r ? r : buf_append_str(b, "@");
	r = r ? r : local_header_value(b, domain, true);
	r = r ? r : buf_append_str(b, "\r\n");
	return r;
}

int local_header_prefix(struct buf *b, const char *from, const char *user, const char *domain)
{
	return local_prefix(b, from, user, domain);
}

/* Returns 0 when the message is finished (delivered and removed, or already gone),
 * or a negative error when it must be retried. */
static int local_deliver_one(struct local_delivery *ld, const char *qid)
{
	struct spool_envelope env;
	struct buf pre;
	char path[PATH_MAX], mbox[PATH_MAX], name[600], e1[300], e2[300];
	uint64_t body_off = 0;
	int fd = -1, r, result = 0;
	size_t ndone = 0, nremote = 0, ngaveup = 0;
	bool owed = false; /* a recipient failed before this pass: a bounce is owed */
	time_t now = time(NULL);

	buf_init(&pre, 0);
	r = spool_read_envelope(ld->sp, qid, &env, &body_off);
	if (r == -ENOENT)
		return 0; /* already delivered and removed (a duplicate enqueue) */
	if (r < 0) {
		log_error("qid=%s event=deferred error=\"read envelope: %s\"", qid, strerror(-r));
		return r;
	}
	if ((r = spool_queue_path(ld->sp, qid, path, sizeof path)) < 0)
		goto fail;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		if (r == -ENOENT) {
			r = 0;
			goto out;
		}
		goto fail;
	}
	if ((uint64_t)st.st_size < body_off) {
		r = -EBADMSG;
		goto fail;
	}
	if (env.held) /* `tern queue hold`; release enqueues it again */
		goto out;
	nremote = 0;
	for (size_t i = 0; i < env.nrcpts; i++) {
		if (env.rcpts[i].done)
			ndone++;
		else if (env.rcpts[i].remote || env.rcpts[i].failed)
			nremote++; /* failed: relay.c owes its bounce (QUEUE.md "Relay" step 1) */
		owed = owed || (env.rcpts[i].failed && !env.rcpts[i].done);
	}
	for (size_t i = 0; i < env.nrcpts; i++) {
		struct spool_rcpt *rc = &env.rcpts[i];
		if (rc->done || rc->remote || rc->failed) /* remote and failed ones: relay.c */
			continue;
		log_escape(e1, sizeof e1, rc->orig, strlen(rc->orig));
		if (ld->is_local != NULL && !ld->is_local(ld->is_local_arg, rc->domain)) {
			/* accepted for relaying: stays in the queue for outbound delivery */
			nremote++;
			continue;
		}
		r = local_mailbox_path(ld->data_dir, ld->pattern, rc->user, rc->domain, mbox,
		                       sizeof mbox);
		if (r == 0)
			r = local_prefix(&pre, env.from, rc->user, rc->domain);
		if (r == 0)
			r = maildir_deliver(mbox, ld->hostname, pre.ptr, pre.len, fd, (off_t)body_off,
			                    st.st_size - (off_t)body_off, name, sizeof name);
		if (r < 0 && ld->give_up_s > 0 && now - env.arrival >= (time_t)ld->give_up_s &&
		    !owed) {
			/* past give_up: failed for good; relay.c bounces it (QUEUE.md). Not
			 * while an earlier bounce is owed (left by a crash): that one's DSN id
			 * would be skipped and its DSN, if made, sent as well as the new one;
			 * this recipient is given up on the next pass instead */
			char t[200];
			snprintf(t, sizeof t, "550 5.2.0 local delivery failed until give_up: %s",
			         strerror(-r));
			free(rc->last_error);
			rc->last_error = strdup(t);
			rc->failed = true;
			rc->attempts++;
			ngaveup++;
			log_warn("qid=%s event=failed rcpt=<%s> error=\"gave up: %s\"", qid, e1,
			         strerror(-r));
			continue;
		}
		if (r < 0) {
			log_warn("qid=%s event=deferred rcpt=<%s> error=\"%s\"", qid, e1, strerror(-r));
			result = r;
			continue;
		}
		log_escape(e2, sizeof e2, mbox, strlen(mbox));
		log_info("qid=%s event=delivered rcpt=<%s> mailbox=\"%s\" file=%s", qid, e1, e2, name);
		ndone++;
		/* The last recipient needs no done record: the queue file goes next. */
		if (ndone < env.nrcpts && (r = spool_mark_done(ld->sp, qid, i)) < 0)
			log_warn("qid=%s event=mark-done-failed rcpt=<%s> error=\"%s\" "
			         "note=\"may be delivered twice\"",
			         qid, e1, strerror(-r));
	}
	if (ngaveup > 0) {
		/* dsn-seq is durable before the DSN exists (as in relay.c); if this write
		 * fails the recipients are simply tried again later */
		env.dsn_seq++;
		if ((r = spool_write_state(ld->sp, &env)) < 0) {
			log_error("qid=%s event=state-write-failed error=\"%s\"", qid, strerror(-r));
			result = r;
		} else {
			nremote++; /* relay.c finishes the bounce and removes the entry */
		}
	}
	if (nremote > 0 && ndone + nremote == env.nrcpts)
		log_info("qid=%s event=waiting-for-relay rcpts=%zu", qid, nremote);
	if (ndone == env.nrcpts && env.dsn_seq > 0 && ld->remote != NULL) {
		/* all final, but it made bounces: relay.c removes it, after releasing any
		 * bounce a crash left held (docs/QUEUE.md "Relay" step 5) */
		ld->remote(ld->remote_arg, qid);
		r = result;
		goto out;
	}
	if (nremote > 0 && ld->remote != NULL)
		ld->remote(ld->remote_arg, qid); /* it removes the entry when all are final */
	if (ndone == env.nrcpts) {
		if ((r = spool_remove(ld->sp, qid)) < 0 && r != -ENOENT)
			log_warn("qid=%s event=remove-failed error=\"%s\"", qid, strerror(-r));
		else
			log_info("qid=%s event=removed", qid);
	}
	r = result;
	goto out;
fail:
	log_error("qid=%s event=deferred error=\"%s\"", qid, strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	buf_free(&pre);
	spool_envelope_free(&env);
	return r;
}

static uint64_t local_backoff_ms(const struct local_delivery *ld, unsigned attempts)
{
	uint64_t d = ld->retry_first_s;
	for (unsigned i = 1; i < attempts && d < ld->retry_max_s; i++)
		d *= 2;
	if (d > ld->retry_max_s)
		d = ld->retry_max_s;
	return d * 1000u;
}

struct local_worker_arg {
	struct local_delivery *ld;
	unsigned idx;
};

static void *local_worker_main(void *arg)
{
	pthread_setname_np(pthread_self(), "local"); /* top -H, ps -L */
	struct local_worker_arg *wa = arg;
	struct local_delivery *ld = wa->ld;
	unsigned self = wa->idx;
	free(wa);
	pthread_mutex_lock(&ld->mu);
	while (!ld->stopping) {
		if (ld->n == 0) {
			pthread_cond_wait(&ld->cv, &ld->mu);
			continue;
		}
		uint64_t now = local_now_ms();
		if (ld->heap[0].due_ms > now) {
			struct timespec ts;
			uint64_t due = ld->heap[0].due_ms;
			ts.tv_sec = (time_t)(due / 1000u);
			ts.tv_nsec = (long)(due % 1000u) * 1000000L;
			pthread_cond_timedwait(&ld->cv, &ld->mu, &ts);
			continue;
		}
		struct local_item it = local_heap_pop(ld);
		bool busy = false;
		for (unsigned i = 0; i < ld->nthreads; i++)
			if (i != self && strcmp(ld->active[i], it.qid) == 0)
				busy = true;
		if (busy)
			continue; /* another worker has it; it reschedules on failure */
		snprintf(ld->active[self], SPOOL_QID_MAX, "%s", it.qid);
		pthread_mutex_unlock(&ld->mu);

		int r = local_deliver_one(ld, it.qid);

		pthread_mutex_lock(&ld->mu);
		ld->active[self][0] = '\0';
		if (r < 0) {
			uint64_t delay = local_backoff_ms(ld, it.attempts + 1);
			log_info("qid=%s event=retry-scheduled attempt=%u in_s=%llu", it.qid,
			         it.attempts + 1, (unsigned long long)(delay / 1000u));
			if (local_heap_push(ld, it.qid, local_now_ms() + delay, it.attempts + 1) < 0)
				log_error("qid=%s event=retry-lost error=\"out of memory\" "
				          "note=\"stays queued on disk until restart\"",
				          it.qid);
		}
	}
	pthread_mutex_unlock(&ld->mu);
	return NULL;
}

int local_delivery_start(struct local_delivery **out, struct spool *sp,
                         const struct local_delivery_opts *o)
{
	int r;
	unsigned started = 0;
	pthread_condattr_t ca;
	struct local_delivery *ld = calloc(1, sizeof *ld);
	*out = NULL;
	if (ld == NULL)
		return -ENOMEM;
	ld->sp = sp;
	ld->is_local = o->is_local;
	ld->is_local_arg = o->is_local_arg;
	ld->remote = o->remote;
	ld->remote_arg = o->remote_arg;
	ld->nthreads = o->threads ? o->threads : 1;
	ld->retry_first_s = o->retry_first_s ? o->retry_first_s : 60;
	ld->retry_max_s = o->retry_max_s ? o->retry_max_s : 3600;
	ld->give_up_s = o->remote != NULL ? o->give_up_s : 0; /* bounces are made by remote */
	if (ld->retry_max_s < ld->retry_first_s)
		ld->retry_max_s = ld->retry_first_s;
	if (snprintf(ld->data_dir, sizeof ld->data_dir, "%s", o->data_dir ? o->data_dir : ".") >=
	        (int)sizeof ld->data_dir ||
	    snprintf(ld->pattern, sizeof ld->pattern, "%s",
	             o->mailbox_pattern ? o->mailbox_pattern : "mail/%d/%u/Maildir") >=
	        (int)sizeof ld->pattern ||
	    snprintf(ld->hostname, sizeof ld->hostname, "%s",
	             o->hostname ? o->hostname : "localhost") >= (int)sizeof ld->hostname) {
		free(ld);
		return -ENAMETOOLONG;
	}
	pthread_mutex_init(&ld->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ld->cv, &ca);
	pthread_condattr_destroy(&ca);
	ld->threads = calloc(ld->nthreads, sizeof *ld->threads);
	ld->active = calloc(ld->nthreads, sizeof *ld->active);
	if (ld->threads == NULL || ld->active == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (; started < ld->nthreads; started++) {
		struct local_worker_arg *wa = malloc(sizeof *wa);
		if (wa == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		wa->ld = ld;
		wa->idx = started;
		r = -pthread_create(&ld->threads[started], NULL, local_worker_main, wa);
		if (r < 0) {
			free(wa);
			goto fail;
		}
	}
	*out = ld;
	return 0;
fail:
	ld->nthreads = started; /* stop joins only the threads that run */
	local_delivery_stop(ld);
	return r;
}

void local_delivery_stop(struct local_delivery *ld)
{
	if (ld == NULL)
		return;
	pthread_mutex_lock(&ld->mu);
	ld->stopping = true;
	pthread_cond_broadcast(&ld->cv);
	pthread_mutex_unlock(&ld->mu);
	for (unsigned i = 0; i < ld->nthreads; i++)
		pthread_join(ld->threads[i], NULL);
	free(ld->threads);
	free(ld->active);
	free(ld->heap);
	pthread_mutex_destroy(&ld->mu);
	pthread_cond_destroy(&ld->cv);
	free(ld);
}
