/* ipcount.c - per-IP connection counts: chained hash of 16-byte keys (IPv4 mapped
 * into IPv6 form so 127.0.0.1 and ::ffff:127.0.0.1 count as one client). */
#include "server/ipcount.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IPCOUNT_BUCKETS 4096

struct ipcount_ent {
	unsigned char key[16];
	int count;
	struct ipcount_ent *next;
};

struct ipcount {
	struct ipcount_ent *b[IPCOUNT_BUCKETS];
};

struct ipcount *ipcount_new(void) { return calloc(1, sizeof(struct ipcount)); }

void ipcount_free(struct ipcount *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < IPCOUNT_BUCKETS; i++) {
		struct ipcount_ent *e = t->b[i];
		while (e) {
			struct ipcount_ent *n = e->next;
			free(e);
			e = n;
		}
	}
	free(t);
}

static void ipcount_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static size_t ipcount_hash(const unsigned char key[16])
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (size_t)(h % IPCOUNT_BUCKETS);
}

int ipcount_inc(struct ipcount *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	ipcount_key(sa, key);
	size_t h = ipcount_hash(key);
	for (struct ipcount_ent *e = t->b[h]; e; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return ++e->count;
	struct ipcount_ent *e = calloc(1, sizeof *e);
	if (e == NULL)
		return -1;
	memcpy(e->key, key, 16);
	e->count = 1;
	e->next = t->b[h];
	t->b[h] = e;
	return 1;
}

void ipcount_dec(struct ipcount *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	ipcount_key(sa, key);
	size_t h = ipcount_hash(key);
	for (struct ipcount_ent **pp = &t->b[h]; *pp; pp = &(*pp)->next) {
		struct ipcount_ent *e = *pp;
		if (memcmp(e->key, key, 16) == 0) {
			if (--e->count <= 0) {
				*pp = e->next;
				free(e);
			}
			return;
		}
	}
}
