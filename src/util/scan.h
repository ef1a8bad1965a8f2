/* scan.h - finding line ends in content fast.
 *
 * The DATA decoder and the BDAT check look at every octet of a message. Byte by
 * byte that was most of the CPU a 100 KiB message cost the server; comparing 16
 * octets at once (SSE2, which every x86-64 has) leaves one step per 16 octets and
 * a call per line. Other machines get the plain loop; both give the same answer. */
#ifndef TERN_SCAN_H
#define TERN_SCAN_H
#include <stddef.h>

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

#endif
