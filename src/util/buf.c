/* buf.c - bounded byte buffer. Does not do I/O. */
#include "util/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : SIZE_MAX;
}

void buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_shrink(struct buf *b)
{
	if (b->len == 0 && b->ptr != NULL) {
		free(b->ptr);
		b->ptr = NULL;
		b->cap = 0;
	}
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t max = b->max ? b->max : SIZE_MAX;
	if (extra > max || b->len > max - extra)
		return -ENOSPC;
	size_t need = b->len + extra + 1; /* room for a NUL from buf_cstr */
	if (need <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	char *p = realloc(b->ptr, ncap);
	if (p == NULL)
		return -ENOMEM;
	b->ptr = p;
	b->cap = ncap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int rc = buf_reserve(b, n);
	if (rc < 0)
		return rc;
	memcpy(b->ptr + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_append_str(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof small)
		return buf_append(b, small, (size_t)n);
	int rc = buf_reserve(b, (size_t)n);
	if (rc < 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
}

const char *buf_cstr(struct buf *b)
{
	if (buf_reserve(b, 0) < 0)
		return NULL;
	b->ptr[b->len] = '\0';
	return b->ptr;
}
