/* spool.h - the durable queue: write a message, commit it (group commit), recover
 * after a crash, hand committed messages to delivery. docs/QUEUE.md is the contract.
 *
 * Threads: spool_msg_* writes happen on the caller's (event loop) thread into the
 * page cache; fsync/rename/dir-fsync happen on the spool's committer thread, which
 * takes every pending commit at once (group commit). Completions come back to the
 * loop thread: the loop watches spool_event_fd() and calls spool_run_completions().
 */
#ifndef TERN_SPOOL_H
#define TERN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SPOOL_QID_MAX 32

struct spool;
struct spool_msg;

/* One envelope recipient: the address as given at RCPT (orig) and the final local
 * mailbox it resolved to (user, domain), so delivery needs no policy lookup. */
struct spool_rcpt {
	char *orig;    /* "user@domain" as the client gave it */
	char *user;    /* final mailbox user (after aliases) */
	char *domain;  /* final mailbox domain */
	bool done;     /* final: delivered or bounced (persisted in <qid>.done) */
	bool remote;   /* route: relay to another server (record "route remote") */
	unsigned notify; /* RFC 3461 NOTIFY bits (SPOOL_NOTIFY_*); 0 = not given */
	char *orcpt;   /* RFC 3461 ORCPT as given ("rfc822;a@b"), NULL if none */
	/* Relay state, persisted in <qid>.state (spool_state.c), not in the queue file: */
	bool failed;        /* failed for good; a DSN is owed or sent (see QUEUE.md) */
	unsigned attempts;  /* delivery attempts that failed temporarily */
	time_t next_try;    /* wall clock; 0 = now */
	char *last_error;   /* escaped text of the last failure, NULL if none */
};

#define SPOOL_NOTIFY_NEVER 1u
#define SPOOL_NOTIFY_SUCCESS 2u
#define SPOOL_NOTIFY_FAILURE 4u
#define SPOOL_NOTIFY_DELAY 8u

struct spool_envelope {
	char qid[SPOOL_QID_MAX];
	char *from;        /* "" for the null sender */
	struct spool_rcpt *rcpts;
	size_t nrcpts;
	time_t arrival;
	char *helo;        /* client HELO name (for logging) */
	char *client_addr; /* client IP (for logging) */
	bool smtputf8;
	int body;          /* 0 7bit, 1 8bitmime, 2 binarymime */
	char *envid;       /* RFC 3461 ENVID, NULL if none */
	int ret;           /* RFC 3461 RET: 0 not given, 1 FULL, 2 HDRS */
	/* Message state, persisted in <qid>.state: */
	bool held;         /* <qid>.hold exists: no delivery attempts (`tern queue hold`,
	                      and a bounce until its original records it) */
	bool warned;       /* a delay warning was sent */
	unsigned dsn_seq;  /* bounces generated so far (DSN qid is <qid>D<seq>) */
};
void spool_envelope_free(struct spool_envelope *e); /* frees members, not e */

/* Open (and create) the spool under dir: dir/incoming, dir/queue. Starts the
 * committer thread. Returns 0 or -errno. */
int spool_open(struct spool **out, const char *dir);
void spool_close(struct spool *sp); /* finishes pending commits first */

/* Begin a message: creates incoming/<qid> and writes the envelope. env is copied;
 * env->qid is filled in. Returns 0 or -errno. */
int spool_msg_begin(struct spool *sp, struct spool_msg **out, struct spool_envelope *env);
/* Append message bytes (buffered; large writes go straight to the file). */
int spool_msg_write(struct spool_msg *m, const void *p, size_t n);
/* Commit asynchronously: flush, fsync, rename into queue/, fsync queue/. done() runs
 * on the loop thread from spool_run_completions(); err is 0 or -errno; m is freed by
 * the spool after done returns. On error nothing is left in queue/. */
void spool_msg_commit(struct spool_msg *m, void (*done)(void *arg, int err, const char *qid),
                      void *arg);
/* Discard an uncommitted message (unlinks the incoming file, frees m). */
void spool_msg_abort(struct spool_msg *m);
const char *spool_msg_qid(const struct spool_msg *m);
/* A fresh queue id for a message that does not go through the queue (direct
 * delivery, src/deliver/direct.h), so every accepted message has one. */
void spool_new_qid(struct spool *sp, char out[SPOOL_QID_MAX]);

/* Completion plumbing for the event loop. */
int spool_event_fd(const struct spool *sp);
void spool_run_completions(struct spool *sp);

/* Delivery side. Read a committed message's envelope; *body_off is where the message
 * (RFC 5322 bytes, CRLF) starts in the file queue/<qid>. */
int spool_read_envelope(struct spool *sp, const char *qid, struct spool_envelope *env,
                        uint64_t *body_off);
/* Path of the queue file for qid (for delivery to open). */
int spool_queue_path(const struct spool *sp, const char *qid, char *out, size_t outsz);
/* Mark recipient i of qid delivered, durably (so a crash does not redeliver it). */
int spool_mark_done(struct spool *sp, const char *qid, size_t i);
/* Remove a message whose recipients are all final. */
int spool_remove(struct spool *sp, const char *qid);
/* Recovery at start-up: clean incoming/, and call cb for every message in queue/. */
int spool_recover(struct spool *sp, void (*cb)(void *arg, const char *qid), void *arg);
/* List queue/ in qid order without touching anything (safe while ternd runs, e.g.
 * for `tern queue`); spool_recover is for start-up only, it deletes incoming/. */
int spool_list(struct spool *sp, void (*cb)(void *arg, const char *qid), void *arg);


/* The address to deliver rcpt to: orig when it names the same domain (keeps the
 * local part's case and quoting), else user@domain (an alias target). */
void spool_rcpt_address(const struct spool_rcpt *rc, char *out, size_t outsz);

/* Write a generated message (a bounce) under the given qid, synchronously and
 * durably: state and hold file first (env->held), then queue/<qid> by link() so an
 * existing message is never replaced (-EEXIST then). Caller's thread. */
int spool_inject(struct spool *sp, const char *qid, const struct spool_envelope *env,
                 const void *body, size_t n);

/* Hold (true) or release a message: creates/removes queue/<qid>.hold, durably. */
int spool_set_hold(struct spool *sp, const char *qid, bool hold);

/* Per-message state in queue/<qid>.state (spool_state.c): warned, dsn_seq and
 * per-recipient failed/attempts/next_try/last_error. Read by spool_read_envelope;
 * a missing file means "all zero". Written atomically (tmp, fdatasync, rename,
 * directory fsync). */
int spool_read_state(struct spool *sp, const char *qid, struct spool_envelope *env);
int spool_write_state(struct spool *sp, const struct spool_envelope *env);

/* The record value encoding (percent-encoding, docs/QUEUE.md), for spool_state.c. */
struct buf;
int spool_encode_value(struct buf *b, const char *s);
int spool_decode_value(const char *p, size_t n, char **out);

#endif
