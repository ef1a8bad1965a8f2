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

static int smtp_dsn_notify(const char *v, size_t n, unsigned *out)
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

int smtp_dsn_rcpt_params(const char *p, size_t n, struct smtp_rcpt_dsn *out)
{
	size_t i = 0;
	memset(out, 0, sizeof *out);
	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		if (i >= n)
			break;
		size_t start = i;
		while (i < n && p[i] != ' ')
			i++;
		const char *key = p + start, *eq = memchr(key, '=', i - start);
		if (eq == NULL)
			return -EINVAL;
		size_t klen = (size_t)(eq - key), vlen = i - start - klen - 1;
		const char *val = eq + 1;
		if (smtp_dsn_is(key, klen, "NOTIFY")) {
			if (out->notify != 0 || smtp_dsn_notify(val, vlen, &out->notify) < 0)
				return -EINVAL;
		} else if (smtp_dsn_is(key, klen, "ORCPT")) {
			const char *semi = memchr(val, ';', vlen);
			if (out->orcpt[0] != '\0' || semi == NULL || semi == val ||
			    vlen > SMTP_DSN_ORCPT_MAX ||
			    !smtp_dsn_xtext_ok(semi + 1, vlen - (size_t)(semi + 1 - val)))
				return -EINVAL;
			memcpy(out->orcpt, val, vlen);
			out->orcpt[vlen] = '\0';
		} else {
			return -EINVAL;
		}
	}
	return 0;
}
