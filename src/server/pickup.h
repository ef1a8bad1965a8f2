/* pickup.h - take messages that `tern sendmail` left in the maildrop directory
 * (while ternd was down or unreachable) into the queue. Format: client_maildrop.h.
 * A maildrop file is removed only after its queue copy is committed, so a crash in
 * between gives a duplicate, never a loss. Runs on the event loop from the tick;
 * maildrop files are local and small, read with plain blocking reads. */
#ifndef TERN_PICKUP_H
#define TERN_PICKUP_H

struct config;
struct spool;
struct pickup;

/* dir: the maildrop (it holds tmp/ new/; bad/ is created for unreadable files).
 * queued(arg, qid) runs on the loop thread for each message committed. */
int pickup_new(struct pickup **out, struct spool *sp, const char *dir,
               void (*queued)(void *arg, const char *qid), void *arg);
/* Look at new/ and start committing every file not already in flight. */
void pickup_scan(struct pickup *p, const struct config *cfg);
/* Frees p; commits still in flight keep running and finish without it. */
void pickup_free(struct pickup *p);

#endif
