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
 * Lifecycle of a record: journal_append (in the page cache) -> journal_sync (durable)
 * -> the caller puts the payload where it belongs and makes that durable -> it calls
 * journal_retire(seq + 1): the space may be reused. Every record written after that
 * carries the retire mark, so recovery replays only records at or above the highest
 * mark found. Replay must be idempotent: a record may be replayed although it was
 * already placed (the mark had not reached the disk yet).
 *
 * Threads: append and sync from one thread; retire and the counters from any thread.
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
/* fdatasync: every record appended so far is durable. 0 or -errno. */
int journal_sync(struct journal *j);
/* Records with seq < below may be overwritten (below only moves forward). */
void journal_retire(struct journal *j, uint64_t below);
/* The seq the next append gets. */
uint64_t journal_next_seq(struct journal *j);
/* Bytes held by live (unretired) records, and the file's size now. */
void journal_usage(struct journal *j, uint64_t *live, uint64_t *size);
/* The most the file may grow to. */
uint64_t journal_max_bytes(const struct journal *j);

#endif
