/* journal.h - a write-ahead ring of records in one file, for acknowledging a message
 * with one fdatasync of blocks that already exist (no metadata to journal), before
 * the message is put where it belongs. docs/QUEUE.md, "The journal", is the contract.
 *
 * File: a 4 KiB header block (magic, version, a random 64-bit id) and then records,
 * each aligned to 512 bytes: {magic, crc32c, id, seq, retired_below, len} + payload.
 * The crc covers header and payload; the id is secret to the file, so bytes a client
 * sent (a message body is a payload) can never pass for a record. Records are written
 * at the head of the ring; the file is zero-filled ahead of the head, in chunks, up to
 * a maximum size, so appends are overwrites and fdatasync flushes data only.
 *
 * Lifecycle of a record: journal_append (staged in memory, or in the page cache when
 * the file cannot take O_DIRECT) -> journal_submit + journal_sync (durable)
 * -> the caller puts the payload where it belongs and makes that durable -> it calls
 * journal_retire(seq + 1): the space may be reused. Every record written after that
 * carries the retire mark, so recovery replays only records at or above the highest
 * mark found. Replay must be idempotent: a record may be replayed although it was
 * already placed (the mark had not reached the disk yet).
 *
 * Threads: append, submit and sync from one thread; retire and the counters from
 * any thread.
 */
#ifndef TERN_JOURNAL_H
#define TERN_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_ALIGN 512
#define JOURNAL_HEADER 4096
#define JOURNAL_DEFAULT_MAX (64u << 20) /* bytes, header included */

struct journal;

/* Called by journal_open for each live record, in seq order. Returns 0, or -errno:
 * the record stays live (the caller keeps its own copy to retry). */
typedef int (*journal_replay_fn)(void *arg, uint64_t seq, const void *p, size_t n);

/* Open path (created, zero-filled and fsynced with its directory if missing; a file
 * with a bad header is renamed to path.corrupt-<time> and a new one made), replay
 * live records through fn. max_bytes bounds the file (0: JOURNAL_DEFAULT_MAX). The
 * caller retires replayed records itself once their placement is durable. */
int journal_open(struct journal **out, const char *path, uint64_t max_bytes,
                 journal_replay_fn fn, void *arg);
void journal_close(struct journal *j);
int journal_fd(const struct journal *j);

/* Write a record at the head (page cache only). Returns its seq (> 0), or -ENOSPC
 * when it does not fit in the free part of the ring (the caller takes another path),
 * -EMSGSIZE when it could never fit, or another -errno. */
int64_t journal_append(struct journal *j, const void *p, size_t n);
/* Start making the appended records durable (with O_DIRECT and Linux AIO: one
 * write with RWF_DSYNC, in flight while the caller goes on; otherwise nothing, and
 * journal_sync does it all). No append until journal_sync. 0 or -errno. */
int journal_submit(struct journal *j);
/* Every record appended so far is durable (waits for what journal_submit started,
 * writes and flushes the rest). 0 or -errno: then some of them may not be. */
int journal_sync(struct journal *j);
/* Records with seq < below may be overwritten (below only moves forward). */
void journal_retire(struct journal *j, uint64_t below);
/* The seq the next append gets. */
uint64_t journal_next_seq(struct journal *j);
/* Bytes held by live (unretired) records, and the file's size now. */
void journal_usage(struct journal *j, uint64_t *live, uint64_t *size);
/* How records reach the disk: "direct-aio" (O_DIRECT, written while the caller
 * goes on), "direct" (O_DIRECT, written by journal_sync) or "buffered" (page cache;
 * TERN_JOURNAL_DIRECT=0, or the filesystem refused O_DIRECT). TERN_JOURNAL_AIO=0
 * turns the asynchronous write off. */
const char *journal_io_mode(const struct journal *j);
/* The most the file may grow to. */
uint64_t journal_max_bytes(const struct journal *j);

#endif
