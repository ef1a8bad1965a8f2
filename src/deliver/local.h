/* local.h - local delivery: worker threads that take committed queue entries and
 * deliver each recipient into its Maildir, then remove the queue entry. Failures are
 * retried with backoff, never dropped. Runs entirely off the event loop. */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

struct spool;
struct local_delivery;

struct local_delivery_opts {
	const char *data_dir;        /* base for a relative mailbox_pattern */
	const char *mailbox_pattern; /* "%d" domain, "%u" user; e.g. "mail/%d/%u/Maildir" */
	const char *hostname;        /* for Maildir file names */
	unsigned threads;            /* worker threads, >= 1 */
	unsigned retry_first_s;      /* first retry after a failure (default 60) */
	unsigned retry_max_s;        /* backoff cap (default 3600) */
	unsigned give_up_s;          /* a local recipient still failing this long after
	                                arrival is marked failed and handed to `remote`,
	                                which bounces it (relay.c); 0: retry forever */
	/* Is this recipient domain delivered here? NULL: every domain is. Called on the
	 * worker threads, so it must be thread-safe. Recipients in other domains (mail
	 * accepted for relaying) are left in the queue, not done, for outbound delivery. */
	bool (*is_local)(void *arg, const char *domain);
	void *is_local_arg;
	/* Called (from a worker) with a qid that has remote recipients still to do,
	 * after its local ones were attempted; NULL: remote recipients wait. */
	void (*remote)(void *arg, const char *qid);
	void *remote_arg;
};

int local_delivery_start(struct local_delivery **out, struct spool *sp,
                         const struct local_delivery_opts *o);
/* Queue qid for delivery (thread-safe, non-blocking). ld NULL: does nothing. */
void local_delivery_enqueue(struct local_delivery *ld, const char *qid);
/* Stop workers after their current message; pending qids stay in the queue on disk. */
void local_delivery_stop(struct local_delivery *ld);

/* Map (user, domain) through pattern to a mailbox path (pattern relative to
 * data_dir unless it starts with '/'). user and domain are lowercased, and every
 * byte that could change the path ('/', '%', control bytes, NUL-free but anything
 * outside [a-z0-9._+=-] and non-ASCII UTF-8 bytes) is percent-encoded, as is a
 * leading '.', so no address can name a path outside the pattern's directory.
 * Returns 0, -EINVAL (empty user/domain, unknown %-escape in the pattern) or
 * -ENAMETOOLONG. Used by the workers; public for tests and `tern queue`. */
int local_mailbox_path(const char *data_dir, const char *pattern, const char *user,
                       const char *domain, char *out, size_t outsz);

/* The header lines delivery puts in front of a message (CRLF line ends):
 * "Return-Path: <from>" and "Delivered-To: user@domain", control bytes replaced so
 * no header can be injected. b is reset first. 0 or -errno. */
struct buf;
int local_header_prefix(struct buf *b, const char *from, const char *user, const char *domain);

#endif
