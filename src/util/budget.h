/* budget.h - a byte budget shared by threads: memory that many messages in flight
 * may hold together (journal records, big write buffers), charged and given back
 * without a lock. */
#ifndef TERN_BUDGET_H
#define TERN_BUDGET_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Charge n bytes to *used: false (nothing charged) when that would pass max. */
static inline bool budget_take(atomic_size_t *used, size_t n, size_t max)
{
	if (atomic_fetch_add(used, n) + n > max) {
		atomic_fetch_sub(used, n);
		return false;
	}
	return true;
}

static inline void budget_give(atomic_size_t *used, size_t n)
{
	atomic_fetch_sub(used, n);
}

/* Grow *buf to n bytes (its content kept) if the budget has room for them: true
 * when it did; false (buf, budget unchanged) when over budget or out of memory.
 * Whoever frees the grown buffer gives the n bytes back. */
static inline bool budget_grow(atomic_size_t *used, size_t max, char **buf, size_t n)
{
	if (!budget_take(used, n, max))
		return false;
	char *p = realloc(*buf, n);
	if (p == NULL) {
		budget_give(used, n);
		return false;
	}
	*buf = p;
	return true;
}

#endif
