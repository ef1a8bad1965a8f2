/* buf.h - the one bounded byte buffer: {ptr, len, cap, max}. Appends past max fail
 * with -ENOSPC; nothing is silently truncated. Not NUL-terminated unless asked. */
#ifndef TERN_BUF_H
#define TERN_BUF_H
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *ptr;
	size_t len;
	size_t cap;
	size_t max; /* hard cap on len; 0 means SIZE_MAX */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b); /* releases memory; buf_free of a zeroed buf is fine */
void buf_reset(struct buf *b); /* len = 0, keeps memory */
int buf_reserve(struct buf *b, size_t extra); /* 0 or -ENOMEM/-ENOSPC */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n); /* drop n bytes from the front */
const char *buf_cstr(struct buf *b); /* NUL-terminates (not counted in len); NULL on ENOMEM */
void buf_shrink(struct buf *b); /* give memory back when empty */

#endif
