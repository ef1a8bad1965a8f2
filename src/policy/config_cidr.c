/* config_cidr.c - trusted_networks: parse a list of CIDR blocks and match a client
 * address against it (IPv4-mapped IPv6 clients match IPv4 blocks).
 * It does not decide what trust allows; server_rcpt_policy in src/server/server.c
 * does (relaying without AUTH). */
#include "policy/config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int config_cidr_parse_one(const char *s, size_t n, struct config_cidr *out, char *msg,
                                 size_t msgsz)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	char *slash;
	unsigned long pfx;
	unsigned max;

	if (n >= sizeof tmp) {
		snprintf(msg, msgsz, "'%.*s' is too long", (int)n, s);
		return -EINVAL;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(out, 0, sizeof *out);
	slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		snprintf(msg, msgsz, "'%s' is not a numeric IPv4 or IPv6 address", tmp);
		return -EINVAL;
	}
	pfx = max;
	if (slash != NULL) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9') {
			snprintf(msg, msgsz, "bad prefix length in '%.*s'", (int)n, s);
			return -EINVAL;
		}
		pfx = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || pfx > max) {
			snprintf(msg, msgsz, "bad prefix length in '%.*s'", (int)n, s);
			return -EINVAL;
		}
	}
	out->prefix = (unsigned)pfx;
	for (unsigned bit = out->prefix; bit < max; bit++) {
		if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
			snprintf(msg, msgsz, "'%.*s' has host bits set", (int)n, s);
			return -EINVAL;
		}
	}
	return 0;
}

int config_cidr_list_parse(const char *val, struct config_cidr *v, size_t max, size_t *n,
                           char *msg, size_t msgsz)
{
	const char *s = val;

	while (*s != '\0') {
		size_t k = strcspn(s, " \t,");

		if (k == 0) {
			s++;
			continue;
		}
		if (*n >= max) {
			snprintf(msg, msgsz, "too many networks (at most %zu)", max);
			return -EINVAL;
		}
		if (config_cidr_parse_one(s, k, &v[*n], msg, msgsz) < 0)
			return -EINVAL;
		(*n)++;
		s += k;
	}
	return 0;
}

static bool config_cidr_match(const struct config_cidr *c, const unsigned char *a)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((c->addr[full] ^ a[full]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

bool config_is_trusted(const struct config *c, const struct sockaddr *sa)
{
	unsigned char a4[4], a6[16];
	bool have4 = false, have6 = false;

	if (sa->sa_family == AF_INET) {
		memcpy(a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		have4 = true;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		memcpy(a6, in6, 16);
		have6 = true;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			memcpy(a4, a6 + 12, 4);
			have4 = true;
		}
	}
	for (size_t i = 0; i < c->ntrusted; i++) {
		const struct config_cidr *t = &c->trusted[i];

		if (t->family == AF_INET && have4 && config_cidr_match(t, a4))
			return true;
		if (t->family == AF_INET6 && have6 && config_cidr_match(t, a6))
			return true;
	}
	return false;
}
