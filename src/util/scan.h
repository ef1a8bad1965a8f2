/* scan.h - finding line ends in content fast, and CRLF -> LF for the Maildir copies.
 *
 * The DATA decoder and the BDAT check look at every octet of a message. Byte by
 * byte that was most of the CPU a 100 KiB message cost the server; comparing 16
 * octets at once (SSE2, which every x86-64 has) leaves one step per 16 octets and
 * a call per line. Other machines get the plain loop; both give the same answer. */
#ifndef TERN_SCAN_H
#define TERN_SCAN_H
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The offset of the first CR or LF in p[0..n), or n if there is none. */
static inline size_t scan_cr_lf(const char *p, size_t n)
{
	size_t i = 0;
#if defined(__SSE2__)
	const __m128i cr = _mm_set1_epi8('\r');
	const __m128i lf = _mm_set1_epi8('\n');
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		unsigned m = (unsigned)_mm_movemask_epi8(
		    _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n')
			return i;
	return n;
}

/* Where scan_crlf_to_lf sends its output, a run at a time: 0 or -errno. */
typedef int (*scan_sink)(void *ctx, const char *p, size_t n);

/* CRLF -> LF over a stream cut anywhere; a lone CR is kept. *cr carries "the last
 * octet was a CR, not written yet" from one call to the next (false at the start;
 * a CR still held at the end is the caller's to write). The runs between CRs go to
 * out whole (memchr: many octets a step). Returns 0 or the first error of out. */
static inline int scan_crlf_to_lf(const char *p, size_t n, bool *cr, scan_sink out, void *ctx)
{
	const char *end = p + n;
	while (p < end) {
		int r;
		if (*cr) {
			*cr = false;
			if (*p != '\n' && (r = out(ctx, "\r", 1)) < 0)
				return r;
		}
		if (*p == '\r') {
			*cr = true;
			p++;
			continue;
		}
		const char *q = memchr(p, '\r', (size_t)(end - p));
		if (q == NULL)
			q = end;
		if ((r = out(ctx, p, (size_t)(q - p))) < 0)
			return r;
		p = q;
	}
	return 0;
}

#endif
