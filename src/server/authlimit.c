/* authlimit.c - failed AUTH attempts per client address with a two-bucket sliding
 * window (see authlimit.h). Chained hash of 16-byte keys like ipcount.c. It does not
 * decide what to answer a throttled client: server.c does (454 4.7.0). */
#include "server/authlimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AUTHLIMIT_BUCKETS 4096

struct authlimit_ent {
	unsigned char key[16];
	time_t start;  /* start of the current window */
	unsigned cur;  /* failures in [start, start + window) */
	unsigned prev; /* failures in the window before */
	struct authlimit_ent *next;
};

struct authlimit {
	struct authlimit_ent *b[AUTHLIMIT_BUCKETS];
	size_t n;
};

struct authlimit *authlimit_new(void) { return calloc(1, sizeof(struct authlimit)); }

void authlimit_free(struct authlimit *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < AUTHLIMIT_BUCKETS; i++) {
		struct authlimit_ent *e = t->b[i];
		while (e) {
			struct authlimit_ent *n = e->next;
			free(e);
			e = n;
		}
	}
	free(t);
}

static const unsigned char authlimit_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void authlimit_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(key, authlimit_v4mapped, 12);
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, authlimit_v4mapped, 12) == 0)
			memcpy(key, a, 16);
		else
			memcpy(key, a, 8); /* per /64 */
	}
}

static size_t authlimit_hash(const unsigned char key[16])
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (size_t)(h % AUTHLIMIT_BUCKETS);
}

static struct authlimit_ent *authlimit_find(const struct authlimit *t, const unsigned char key[16])
{
	for (struct authlimit_ent *e = t->b[authlimit_hash(key)]; e; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return e;
	return NULL;
}

/* Move e's windows forward so that now falls in the current one. */
static void authlimit_roll(struct authlimit_ent *e, time_t now, unsigned window)
{
	time_t w = window ? (time_t)window : 1;

	if (now < e->start) { /* clock stepped back: start over from now */
		e->start = now;
		return;
	}
	if (now - e->start >= 2 * w) {
		e->prev = e->cur = 0;
		e->start = now - (now - e->start) % w;
	} else if (now - e->start >= w) {
		e->prev = e->cur;
		e->cur = 0;
		e->start += w;
	}
}

static unsigned authlimit_estimate(const struct authlimit_ent *e, time_t now, unsigned window)
{
	struct authlimit_ent x = *e;
	uint64_t w = window ? window : 1, left;

	authlimit_roll(&x, now, window);
	left = w - (uint64_t)(now - x.start); /* part of the previous window still inside */
	return (unsigned)((x.prev * left + w - 1) / w) + x.cur;
}

int authlimit_fail(struct authlimit *t, const struct sockaddr *sa, time_t now, unsigned window)
{
	unsigned char key[16];
	struct authlimit_ent *e;
	size_t h;

	authlimit_key(sa, key);
	e = authlimit_find(t, key);
	if (e == NULL) {
		if (t->n >= AUTHLIMIT_ENTRIES_MAX && authlimit_prune(t, now, window) >=
		                                         AUTHLIMIT_ENTRIES_MAX)
			return -ENOSPC;
		e = calloc(1, sizeof *e);
		if (e == NULL)
			return -ENOMEM;
		memcpy(e->key, key, 16);
		e->start = now;
		h = authlimit_hash(key);
		e->next = t->b[h];
		t->b[h] = e;
		t->n++;
	}
	authlimit_roll(e, now, window);
	if (e->cur < UINT32_MAX)
		e->cur++;
	return 0;
}

unsigned authlimit_count(const struct authlimit *t, const struct sockaddr *sa, time_t now,
                         unsigned window)
{
	unsigned char key[16];
	const struct authlimit_ent *e;

	authlimit_key(sa, key);
	e = authlimit_find(t, key);
	return e ? authlimit_estimate(e, now, window) : 0;
}

bool authlimit_is_throttled(const struct authlimit *t, const struct sockaddr *sa, time_t now,
                            unsigned max, unsigned window)
{
	return max > 0 && authlimit_count(t, sa, now, window) >= max;
}

size_t authlimit_prune(struct authlimit *t, time_t now, unsigned window)
{
	for (size_t i = 0; i < AUTHLIMIT_BUCKETS; i++) {
		struct authlimit_ent **pp = &t->b[i];
		while (*pp) {
			struct authlimit_ent *e = *pp;
			if (authlimit_estimate(e, now, window) == 0) {
				*pp = e->next;
				free(e);
				t->n--;
			} else {
				pp = &e->next;
			}
		}
	}
	return t->n;
}
