/* base64.c - RFC 4648 base64 encoder and the one decoder (see base64.h). By default
 * the decoder refuses whitespace, missing padding and non-zero pad bits, so one
 * string has one meaning; flags relax the first and the last for MIME bodies. It does
 * not do MIME line wrapping (the client's codec does). */
#include "util/base64.h"

#include <errno.h>
#include <stdbool.h>

static const char base64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *in, size_t n, char *out, size_t outsz)
{
	const unsigned char *p = in;
	size_t o = 0;

	if (outsz < BASE64_ENC_LEN(n) + 1)
		return -ENOSPC;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = base64_alpha[(v >> 18) & 63];
		out[o++] = base64_alpha[(v >> 12) & 63];
		out[o++] = i + 1 < n ? base64_alpha[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? base64_alpha[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int base64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static bool base64_is_skipped(char c, unsigned flags)
{
	return (flags & BASE64_SKIP_SPACE) && (c == '\r' || c == '\n' || c == ' ' || c == '\t');
}

/* Nothing but skipped characters in in[0..n). */
static bool base64_is_rest_empty(const char *in, size_t n, unsigned flags)
{
	for (size_t i = 0; i < n; i++) {
		if (!base64_is_skipped(in[i], flags))
			return false;
	}
	return true;
}

int base64_decode_opt(const char *in, size_t n, unsigned flags, unsigned char *out,
                      size_t outsz)
{
	char q[4];
	size_t o = 0, k = 0;

	if (!(flags & BASE64_SKIP_SPACE) && n % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (base64_is_skipped(in[i], flags))
			continue;
		q[k++] = in[i];
		if (k < 4)
			continue;
		k = 0;

		int a = base64_val(q[0]), b = base64_val(q[1]);
		int c = base64_val(q[2]), d = base64_val(q[3]);
		size_t pad = 0;

		if (a < 0 || b < 0)
			return -EINVAL;
		if (q[3] == '=') {
			/* padding ends the data */
			if (!base64_is_rest_empty(in + i + 1, n - i - 1, flags))
				return -EINVAL;
			pad = q[2] == '=' ? 2 : 1;
			if (pad == 1 && c < 0)
				return -EINVAL;
		} else if (c < 0 || d < 0) {
			return -EINVAL;
		}
		unsigned v = ((unsigned)a << 18) | ((unsigned)b << 12);

		if (pad < 2)
			v |= (unsigned)c << 6;
		if (pad < 1)
			v |= (unsigned)d;
		/* non-zero bits under the padding would give a second spelling */
		if (!(flags & BASE64_ANY_PAD_BITS) &&
		    ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff))))
			return -EINVAL;
		if (out != NULL) {
			if (o + 3 - pad > outsz)
				return -ENOSPC;
			out[o] = (unsigned char)(v >> 16);
			if (pad < 2)
				out[o + 1] = (unsigned char)(v >> 8);
			if (pad < 1)
				out[o + 2] = (unsigned char)v;
		}
		o += 3 - pad;
	}
	if (k != 0)
		return -EINVAL; /* a partial quantum: padding missing */
	return (int)o;
}

int base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz)
{
	return base64_decode_opt(in, n, 0, out, outsz);
}
