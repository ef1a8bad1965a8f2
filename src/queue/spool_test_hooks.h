/* spool_test_hooks.h - TEST-ONLY interface of the spool: fault injection and the
 * choice of sync strategy (for bench/commit_bench.c). Production code never calls
 * these; nothing here changes behaviour unless a test sets it.
 *
 * Fault injection: set spool_fault_hook to a function that returns -errno to make
 * the named operation fail (0 lets it run). The environment variable
 * TERN_FAULT=write|fsync|rename|dirsync (read by spool_open) makes every such
 * operation fail with -EIO, for end-to-end tests against a running ternd. */
#ifndef TERN_SPOOL_TEST_HOOKS_H
#define TERN_SPOOL_TEST_HOOKS_H

#include <stddef.h>

struct spool;

enum spool_fault_op {
	SPOOL_FAULT_WRITE,   /* write(2) of message bytes into incoming/<qid> */
	SPOOL_FAULT_FSYNC,   /* making the file data durable (fdatasync / syncfs) */
	SPOOL_FAULT_RENAME,  /* rename incoming/<qid> -> queue/<qid> */
	SPOOL_FAULT_DIRSYNC, /* fsync of queue/ after the renames */
};

/* Called before each operation; may run on any spool thread. qid may be NULL
 * (DIRSYNC, and FSYNC in syncfs mode, concern a whole batch). */
extern int (*spool_fault_hook)(enum spool_fault_op op, const char *qid);

enum spool_sync_mode {
	SPOOL_SYNC_NOBATCH,  /* baseline: fdatasync + rename + dir fsync per message */
	SPOOL_SYNC_SERIAL,   /* group commit: fdatasync each file in turn, one dir fsync */
	SPOOL_SYNC_PARALLEL, /* group commit: fdatasync spread over up to 4 threads */
	SPOOL_SYNC_SYNCFS,   /* group commit: one syncfs(2) for the batch, one dir fsync */
};
/* Default is the fastest measured on the reference machine (docs/QUEUE.md). */
void spool_set_sync_mode(struct spool *sp, enum spool_sync_mode mode);

/* Counters for tests/bench: batches run by the committer, messages committed. */
void spool_stats(const struct spool *sp, unsigned long *batches, unsigned long *msgs);

/* Big messages' buffers: how many messages got one so far, and the limit on all of
 * them together (default 64 MiB). */
unsigned long spool_big_buffers(const struct spool *sp);
void spool_set_big_mem_max(struct spool *sp, size_t max);

#endif
