/* direct.h - direct delivery: a message whose recipients are all local mailboxes is
 * written straight into one copy per recipient Maildir while it arrives (an unnamed
 * O_TMPFILE inode, or tmp/<unique>), and made durable before the 250: small
 * messages through the journal (one fdatasync per batch, then the copies are linked
 * into new/ and a periodic checkpoint syncs them), big ones by a group commit (one
 * syncfs for the batch, rename into new/, one fsync per distinct new/). One durable
 * write instead of queue file + fsync + redelivery + a second fsync. docs/QUEUE.md,
 * "Direct delivery" and "The journal", is the contract.
 *
 * It does not decide which messages qualify (the glue does: local recipients only)
 * and does not touch the spool. A failure before the 250 comes back as an error (the
 * client gets a 4xx and nothing is left in any new/); after a journaled 250, placing
 * the copies is retried from the journal, never undone.
 *
 * Threads: direct_msg_begin/_write/_abort run on the loop thread (writes go to the
 * page cache); syncs run on the committer thread, links/renames and checkpoints on
 * the publisher; completions come back to the loop through direct_event_fd() and
 * direct_run_completions() (an early reply goes out from the syncing thread).
 */
#ifndef TERN_DIRECT_H
#define TERN_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue/spool.h"

/* Most final recipients a message may have to take the direct path (each costs an
 * open file while the message arrives). */
#define DIRECT_RCPTS_MAX 16

struct direct;
struct direct_msg;

/* data_dir, pattern: as for local delivery (local_mailbox_path); hostname: for the
 * Maildir file names. Strings are copied. Starts the committer thread. The
 * environment variable TERN_FAULT=write|fsync|rename|dirsync makes that step fail
 * with EIO, as in the spool (tests only). Returns 0 or -errno. */
int direct_open(struct direct **out, const char *data_dir, const char *pattern,
                const char *hostname);
/* durability = relaxed (docs/CONFIG.md): from now on acknowledge after the rename
 * into new/, with no sync at all (the journal is not written). For capture and test
 * servers; a crash can lose what the kernel had not written back yet. */
void direct_set_relaxed(struct direct *d, bool relaxed);
/* Finishes pending commits and runs their completions, then frees. NULL is fine. */
void direct_close(struct direct *d);
int direct_event_fd(const struct direct *d);
void direct_run_completions(struct direct *d);
/* Completions are waiting (a lock-free look), and: run them now, without reading the
 * event fd (it stays readable; the loop's next direct_run_completions finds little).
 * For a loop that learns a commit is done before its event fd is polled: a client
 * that got its early 250 and sent its next command. */
bool direct_completions_ready(const struct direct *d);
void direct_run_completions_now(struct direct *d);

/* Begin a message for env's recipients (user, domain: final local mailboxes; orig for
 * the log); env->from goes into Return-Path. Opens one tmp/ file per recipient and
 * creates missing Maildirs. qid names the message in logs and in done(). env is not
 * kept. Returns 0 or -errno (nothing left behind). */
int direct_msg_begin(struct direct *d, struct direct_msg **out, const struct spool_envelope *env,
                     const char *qid);
/* Append message bytes as received (CRLF); stored with LF line ends. 0 or -errno;
 * an error is also sticky and reported again at commit. */
int direct_msg_write(struct direct_msg *m, const void *p, size_t n);
/* Early reply: once m is durable, the committing thread itself sends text (at most
 * 128 bytes: the 250) on the plain TCP socket fd, without blocking, so the client
 * hears it without waiting for the loop to wake up. Only for a session whose earlier
 * replies have all been sent and that writes nothing more before done(); the caller
 * keeps fd open until done() has run. On failure nothing is sent. 0 or -EINVAL. */
int direct_msg_reply_early(struct direct_msg *m, int fd, const char *text, size_t len);
/* Commit asynchronously; done() runs on the loop thread from direct_run_completions()
 * with err 0 (durable: journaled, or every copy in its new/) or -errno (none is in
 * new/), and replied: how many bytes of the early reply went out (0 when none was
 * set, on error, or when the socket took nothing). m is freed after done returns. */
void direct_msg_commit(struct direct_msg *m,
                       void (*done)(void *arg, int err, const char *qid, size_t replied),
                       void *arg);
/* Drop an uncommitted message: unlink its tmp/ files, free m. NULL is fine. */
void direct_msg_abort(struct direct_msg *m);

/* Local mail acknowledged through the journal whose copies could not all be placed
 * (docs/QUEUE.md "The journal"): retried from its record every second, until then
 * in no Maildir and in no queue file. For `tern queue`. */
struct direct_pending {
	const char *qid, *from;  /* from: the envelope sender, "" for <> */
	const char *const *rcpts; /* the recipients as given in RCPT TO */
	size_t nrcpts;
	size_t size;  /* body bytes as stored */
	time_t since; /* the first failure */
	unsigned attempts; /* placements tried */
	const char *error; /* the last one */
};
typedef void (*direct_pending_fn)(void *arg, const struct direct_pending *p);
/* Calls fn for each, oldest first, from any thread (fn must not call into d).
 * Returns how many. NULL d: none. */
size_t direct_pending_list(struct direct *d, direct_pending_fn fn, void *arg);
/* Retry them at the next checkpoint (within 100 ms) instead of within a second. */
void direct_retry_soon(struct direct *d);

/* Ranges of big copies handed to early writeback so far (tests). */
unsigned long direct_wb_kicks(struct direct *d);
/* Big copies whose pages were dropped from the page cache once synced (tests). */
unsigned long direct_drops(struct direct *d);
/* Messages so far that were staged in big writes (tests). */
unsigned long direct_big_stages(struct direct *d);

/* Counters for tests/bench: batches, messages committed. */
void direct_stats(const struct direct *d, unsigned long *batches, unsigned long *msgs);

#endif
