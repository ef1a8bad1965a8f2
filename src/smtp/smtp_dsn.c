/* smtp_dsn.c - parse RFC 3461 parameters. xtext values (ENVID, ORCPT) are kept as
 * sent (still xtext-encoded, so printable ASCII without spaces or '='); only their
 * syntax is checked. It does not decide anything about delivery reports. */
#include "smtp/smtp_dsn.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool smtp_dsn_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* xtext (RFC 3461 4): chars 33..126 except '+' and '=', or "+HH" (HH not a
 * control byte: nothing downstream should ever decode one). */
static bool smtp_dsn_xtext_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '+') {
			if (i + 2 >= n)
				return false;
			int v = 0;
			for (int k = 1; k <= 2; k++) {
				char h = p[i + (size_t)k];
				if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')))
					return false;
				v = v * 16 + (h <= '9' ? h - '0' : h - 'A' + 10);
			}
			if (v < 0x20 || v == 0x7f)
				return false; /* an encoded NUL, CR, LF or other control byte */
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

/* ORCPT's addr-type ("rfc822", "utf-8", "x400"): an atom, here letters, digits
 * and '-' only. It goes into the Original-Recipient field of a report as given, so
 * nothing else (a control byte, a CR) may pass. */
static bool smtp_dsn_addr_type_ok(const char *p, const char *end)
{
	for (; p < end; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

int smtp_dsn_mail_param(const char *key, size_t klen, const char *val, size_t vlen, int *ret,
                        char *envid)
{
	if (smtp_dsn_is(key, klen, "RET")) {
		if (*ret != 0 || val == NULL)
			return -EINVAL;
		if (smtp_dsn_is(val, vlen, "FULL"))
			*ret = 1;
		else if (smtp_dsn_is(val, vlen, "HDRS"))
			*ret = 2;
		else
			return -EINVAL;
		return 1;
	}
	if (smtp_dsn_is(key, klen, "ENVID")) {
		if (envid[0] != '\0' || val == NULL || vlen == 0 || vlen > SMTP_DSN_ENVID_MAX ||
		    !smtp_dsn_xtext_ok(val, vlen))
			return -EINVAL;
		memcpy(envid, val, vlen);
		envid[vlen] = '\0';
		return 1;
	}
	return 0;
}

int smtp_dsn_notify_parse(const char *v, size_t n, unsigned *out)
{
	unsigned bits = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ',')
			continue;
		const char *w = v + start;
		size_t wl = i - start;
		unsigned b = smtp_dsn_is(w, wl, "NEVER")     ? SMTP_DSN_NEVER
		             : smtp_dsn_is(w, wl, "SUCCESS") ? SMTP_DSN_SUCCESS
		             : smtp_dsn_is(w, wl, "FAILURE") ? SMTP_DSN_FAILURE
		             : smtp_dsn_is(w, wl, "DELAY")   ? SMTP_DSN_DELAY
		                                             : 0;
		if (b == 0 || (bits & b))
			return -EINVAL;
		bits |= b;
		start = i + 1;
	}
	if ((bits & SMTP_DSN_NEVER) && bits != SMTP_DSN_NEVER)
		return -EINVAL; /* NEVER stands alone (RFC 3461 4.1) */
	*out = bits;
	return 0;
}

/* The next "KEY=VALUE" of a space-separated list at p[*i..n): 1 (found), 0 (end),
 * -EINVAL (a word without '='). */
static int smtp_dsn_next(const char *p, size_t n, size_t *i, const char **key, size_t *klen,
                         const char **val, size_t *vlen)
{
	while (*i < n && p[*i] == ' ')
		(*i)++;
	if (*i >= n)
		return 0;
	size_t start = *i;
	while (*i < n && p[*i] != ' ')
		(*i)++;
	const char *eq = memchr(p + start, '=', *i - start);
	if (eq == NULL)
		return -EINVAL;
	*key = p + start;
	*klen = (size_t)(eq - *key);
	*val = eq + 1;
	*vlen = *i - start - *klen - 1;
	return 1;
}

int smtp_dsn_mail_params(const char *p, size_t n, int *ret, char *envid)
{
	const char *key, *val;
	size_t i = 0, klen, vlen;
	int r;
	while ((r = smtp_dsn_next(p, n, &i, &key, &klen, &val, &vlen)) == 1)
		if (smtp_dsn_mail_param(key, klen, val, vlen, ret, envid) != 1)
			return -EINVAL;
	return r;
}

int smtp_dsn_rcpt_params(const char *p, size_t n, struct smtp_rcpt_dsn *out)
{
	const char *key, *val;
	size_t i = 0, klen, vlen;
	int r;
	memset(out, 0, sizeof *out);
	while ((r = smtp_dsn_next(p, n, &i, &key, &klen, &val, &vlen)) == 1) {
		if (smtp_dsn_is(key, klen, "NOTIFY")) {
			if (out->notify != 0 || smtp_dsn_notify_parse(val, vlen, &out->notify) < 0)
				return -EINVAL;
		} else if (smtp_dsn_is(key, klen, "ORCPT")) {
			const char *semi = memchr(val, ';', vlen);
			if (out->orcpt[0] != '\0' || semi == NULL || semi == val ||
			    vlen > SMTP_DSN_ORCPT_MAX || !smtp_dsn_addr_type_ok(val, semi) ||
			    !smtp_dsn_xtext_ok(semi + 1, vlen - (size_t)(semi + 1 - val)))
				return -EINVAL;
			memcpy(out->orcpt, val, vlen);
			out->orcpt[vlen] = '\0';
		} else {
			return -EINVAL;
		}
	}
	return r;
}

int smtp_dsn_notify_format(unsigned bits, char *out, size_t outsz)
{
	static const struct {
		unsigned bit;
		const char *word;
	} words[] = {{SMTP_DSN_NEVER, "NEVER"},
	             {SMTP_DSN_SUCCESS, "SUCCESS"},
	             {SMTP_DSN_FAILURE, "FAILURE"},
	             {SMTP_DSN_DELAY, "DELAY"}};
	size_t len = 0;

	if (bits == 0 || (bits & ~(SMTP_DSN_NEVER | SMTP_DSN_SUCCESS | SMTP_DSN_FAILURE |
	                           SMTP_DSN_DELAY)) != 0 ||
	    ((bits & SMTP_DSN_NEVER) && bits != SMTP_DSN_NEVER))
		return -EINVAL;
	if (outsz == 0)
		return -ENOSPC;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (!(bits & words[i].bit))
			continue;
		size_t wl = strlen(words[i].word) + (len > 0);
		if (len + wl + 1 > outsz)
			return -ENOSPC;
		if (len > 0)
			out[len++] = ',';
		memcpy(out + len, words[i].word, strlen(words[i].word) + 1);
		len += strlen(words[i].word);
	}
	return 0;
}

int smtp_dsn_xtext_encode(const char *raw, size_t n, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c < 32 || c > 126)
			return -EINVAL;
		bool enc = c == '+' || c == '=' || c == ' ';
		if (len + (enc ? 3 : 1) + 1 > outsz)
			return -ENOSPC;
		if (enc) {
			out[len++] = '+';
			out[len++] = hex[c >> 4];
			out[len++] = hex[c & 15];
		} else {
			out[len++] = (char)c;
		}
	}
	if (len + 1 > outsz)
		return -ENOSPC;
	out[len] = '\0';
	return 0;
}
