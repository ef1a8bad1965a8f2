/* client_codec.c - base64, quoted-printable and RFC 2047 encoders for the tern client
 * (see client_codec.h). Does no I/O and knows nothing of MIME structure or SMTP;
 * decoding is limited to base64. The base64 alphabet and decoder are util/base64.c's;
 * this file adds line wrapping and the MIME leniencies. */
#include "client/client_codec.h"
#include "util/base64.h"

#include <errno.h>
#include <string.h>

static const char client_hex[] = "0123456789ABCDEF";

int client_b64_encode(struct buf *out, const void *in, size_t n, size_t wrap)
{
	const unsigned char *p = in;
	size_t col = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i += 3) {
		char quad[BASE64_ENC_LEN(3) + 1];

		base64_encode(p + i, n - i < 3 ? n - i : 3, quad, sizeof(quad));
		if ((rc = buf_append(out, quad, 4)) < 0)
			goto fail;
		col += 4;
		if (wrap && col >= wrap) {
			if ((rc = buf_append(out, "\r\n", 2)) < 0)
				goto fail;
			col = 0;
		}
	}
	if (wrap && col > 0)
		rc = buf_append(out, "\r\n", 2);
fail:
	return rc;
}

int client_b64_decode(struct buf *out, const char *p, size_t n)
{
	const unsigned flags = BASE64_SKIP_SPACE | BASE64_ANY_PAD_BITS;
	int len = base64_decode_opt(p, n, flags, NULL, 0);
	int rc;

	if (len <= 0)
		return len;
	if ((rc = buf_reserve(out, (size_t)len)) < 0)
		return rc;
	len = base64_decode_opt(p, n, flags, (unsigned char *)out->ptr + out->len, (size_t)len);
	if (len < 0)
		return len; /* cannot happen: the same input passed above */
	out->len += (size_t)len;
	return 0;
}

int client_qp_encode(struct buf *out, const char *p, size_t n)
{
	size_t col = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char tok[3];
		size_t tlen;

		if (c == '\n' || (c == '\r' && i + 1 < n && p[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			if ((rc = buf_append(out, "\r\n", 2)) < 0)
				goto fail;
			col = 0;
			continue;
		}
		bool at_eol = i + 1 == n || p[i + 1] == '\n' ||
		              (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n');
		bool literal = (c >= 33 && c <= 126 && c != '=') ||
		               ((c == ' ' || c == '\t') && !at_eol);
		if (literal) {
			tok[0] = (char)c;
			tlen = 1;
		} else {
			tok[0] = '=';
			tok[1] = client_hex[c >> 4];
			tok[2] = client_hex[c & 15];
			tlen = 3;
		}
		/* 76 octets per line including the "=" of a soft break. */
		if (col + tlen > 75 && !(at_eol && col + tlen <= 76)) {
			if ((rc = buf_append(out, "=\r\n", 3)) < 0)
				goto fail;
			col = 0;
		}
		if ((rc = buf_append(out, tok, tlen)) < 0)
			goto fail;
		col += tlen;
	}
fail:
	return rc;
}

bool client_is_ascii(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return false;
	return true;
}

/* Length of the well-formed UTF-8 sequence at p, or 0 when it is malformed. */
static size_t client_utf8_len(const unsigned char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	size_t len;
	unsigned long cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool client_is_utf8(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		size_t l = client_utf8_len(u + i, n - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

static bool client_q_literal(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static bool client_has_ctl(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return true;
	}
	return false;
}

/* Copy printable ASCII header text, folding before a space when a line would pass 78. */
static int client_fold_ascii(struct buf *out, const char *p, size_t n, size_t col)
{
	size_t i = 0;
	int rc = 0;
	while (i < n) {
		/* next word: spaces then non-spaces */
		size_t j = i;
		while (j < n && (p[j] == ' ' || p[j] == '\t'))
			j++;
		while (j < n && p[j] != ' ' && p[j] != '\t')
			j++;
		if (col + (j - i) > 78 && col > 1 && (p[i] == ' ' || p[i] == '\t')) {
			if ((rc = buf_append(out, "\r\n", 2)) < 0)
				return rc;
			col = 0;
		}
		if ((rc = buf_append(out, p + i, j - i)) < 0)
			return rc;
		col += j - i;
		i = j;
	}
	return 0;
}

/* Encoded-words for p[0..n), mode 'Q' or 'B'. */
static int client_ew_write(struct buf *out, const char *p, size_t n, size_t col, char mode)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	bool first = true;
	int rc = 0;

	if (col > 56) { /* too little room on this line for a useful word */
		if ((rc = buf_append(out, "\r\n ", 3)) < 0)
			return rc;
		first = false;
	}
	while (i < n) {
		size_t budget = (first ? 76 - col : 75) - 12; /* "=?UTF-8?X?" + "?=" */
		size_t j = i, enc = 0;
		while (j < n) {
			size_t cl = client_utf8_len(u + j, n - j);
			if (cl == 0)
				return -EILSEQ;
			size_t add;
			if (mode == 'B') {
				size_t bytes = j + cl - i;
				add = 4 * ((bytes + 2) / 3) - enc;
			} else {
				add = 0;
				for (size_t k = 0; k < cl; k++)
					add += (client_q_literal(u[j + k]) || u[j + k] == ' ') ? 1 : 3;
			}
			if (enc + add > budget)
				break;
			enc += add;
			j += cl;
		}
		if (j == i)
			return -EILSEQ; /* cannot happen with budget >= 12 */
		if (!first && (rc = buf_append(out, "\r\n ", 3)) < 0)
			return rc;
		if ((rc = buf_printf(out, "=?UTF-8?%c?", mode)) < 0)
			return rc;
		if (mode == 'B') {
			if ((rc = client_b64_encode(out, p + i, j - i, 0)) < 0)
				return rc;
		} else {
			for (size_t k = i; k < j; k++) {
				char tok[3] = {(char)u[k], 0, 0};
				size_t tl = 1;
				if (u[k] == ' ') {
					tok[0] = '_';
				} else if (!client_q_literal(u[k])) {
					tok[0] = '=';
					tok[1] = client_hex[u[k] >> 4];
					tok[2] = client_hex[u[k] & 15];
					tl = 3;
				}
				if ((rc = buf_append(out, tok, tl)) < 0)
					return rc;
			}
		}
		if ((rc = buf_append(out, "?=", 2)) < 0)
			return rc;
		first = false;
		i = j;
	}
	return 0;
}

static bool client_needs_ew(const char *p, size_t n)
{
	if (!client_is_ascii(p, n))
		return true;
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '=' && p[i + 1] == '?')
			return true;
	return false;
}

int client_rfc2047_encode(struct buf *out, const char *p, size_t n, size_t col)
{
	if (client_has_ctl(p, n) || !client_is_utf8(p, n))
		return -EILSEQ;
	if (!client_needs_ew(p, n))
		return client_fold_ascii(out, p, n, col);
	size_t qlen = 0, blen = 4 * ((n + 2) / 3);
	for (size_t i = 0; i < n; i++)
		qlen += (client_q_literal((unsigned char)p[i]) || p[i] == ' ') ? 1 : 3;
	return client_ew_write(out, p, n, col, qlen <= blen ? 'Q' : 'B');
}

int client_rfc2047_phrase(struct buf *out, const char *p, size_t n, size_t col)
{
	static const char specials[] = "()<>[]:;@\\,.\"";
	int rc;

	if (client_has_ctl(p, n) || !client_is_utf8(p, n))
		return -EILSEQ;
	if (client_needs_ew(p, n))
		return client_ew_write(out, p, n, col, 'B');
	bool quote = false;
	for (size_t i = 0; i < n; i++)
		if (strchr(specials, p[i]) != NULL)
			quote = true;
	if (!quote)
		return buf_append(out, p, n);
	if ((rc = buf_append(out, "\"", 1)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((p[i] == '"' || p[i] == '\\') && (rc = buf_append(out, "\\", 1)) < 0)
			return rc;
		if ((rc = buf_append(out, p + i, 1)) < 0)
			return rc;
	}
	return buf_append(out, "\"", 1);
}
