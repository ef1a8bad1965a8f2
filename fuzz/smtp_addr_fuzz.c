/* smtp_addr_fuzz.c - libFuzzer target for the RFC 5321 path parser (smtp_addr.c).
 *
 * The first byte picks allow_null / allow_utf8 / lenient; the rest is the path.
 * Checks: `used` never exceeds the input; a parsed address respects the length
 * limits and holds no control bytes, spaces outside quotes or '>' in the domain; a
 * formatted address parses back to the same address (round trip), so what is
 * stored in the queue is what was accepted. Does no I/O.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_addr.h"
#include "util/limits.h"

static void fuzz_addr_check(const struct smtp_addr *a)
{
	size_t ll = strnlen(a->local, sizeof a->local), dl = strnlen(a->domain, sizeof a->domain);
	if (ll > TERN_LOCAL_PART_MAX || dl > TERN_DOMAIN_MAX)
		abort();
	for (size_t i = 0; i < ll; i++)
		if ((unsigned char)a->local[i] < 0x20 || a->local[i] == 0x7f)
			abort();
	for (size_t i = 0; i < dl; i++) {
		unsigned char ch = (unsigned char)a->domain[i];
		if (ch <= 0x20 || ch == 0x7f || ch == '>' || ch == '<' || ch == '@')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_addr a, b;
	size_t used = 0, used2 = 0;
	char out[TERN_PATH_MAX + 8], wire[TERN_PATH_MAX + 16], user[TERN_LOCAL_PART_MAX + 1];

	if (size < 1)
		return 0;
	bool allow_null = data[0] & 1, allow_utf8 = data[0] & 2, lenient = data[0] & 4;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	memset(&a, 0, sizeof a);
	int rc = smtp_addr_parse(&a, p, n, &used, allow_null, allow_utf8, lenient);
	if (rc != SMTP_ADDR_OK)
		return 0;
	if (used > n || used == 0)
		abort();
	fuzz_addr_check(&a);
	if (a.is_null && !allow_null)
		abort();
	if (a.is_utf8 && !allow_utf8)
		abort();
	smtp_addr_unquote_local(&a, user, sizeof user);
	int fl = smtp_addr_format(&a, out, sizeof out);
	if (fl < 0)
		return 0;
	if ((size_t)fl != strlen(out))
		abort();
	/* round trip: <formatted> parses to the same address */
	int wl = snprintf(wire, sizeof wire, "<%s>", out);
	if (wl < 0 || (size_t)wl >= sizeof wire)
		return 0;
	memset(&b, 0, sizeof b);
	if (smtp_addr_parse(&b, wire, (size_t)wl, &used2, true, true, false) != SMTP_ADDR_OK)
		abort();
	if (used2 != (size_t)wl || strcmp(a.local, b.local) != 0 || strcmp(a.domain, b.domain) != 0 ||
	    a.is_null != b.is_null)
		abort();
	return 0;
}
