/* base64.c - strict RFC 4648 base64 encoder and decoder (see base64.h). The decoder
 * refuses whitespace, missing padding and non-zero pad bits, so one string has one
 * meaning. It does not do MIME line wrapping (the client's codec does). */
#include "util/base64.h"

#include <errno.h>

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

int base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz)
{
	size_t o = 0;

	if (n % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 4) {
		int a = base64_val(in[i]), b = base64_val(in[i + 1]);
		int c = base64_val(in[i + 2]), d = base64_val(in[i + 3]);
		size_t pad = 0;

		if (a < 0 || b < 0)
			return -EINVAL;
		if (in[i + 3] == '=') {
			if (i + 4 != n)
				return -EINVAL;
			pad = in[i + 2] == '=' ? 2 : 1;
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
		if ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff)))
			return -EINVAL;
		if (o + 3 - pad > outsz)
			return -ENOSPC;
		out[o++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)v;
	}
	return (int)o;
}
