/* smtp_addr.c - RFC 5321 4.1.2 path parser (Reverse-path / Forward-path).
 *
 * Does: dot-atom and quoted-string local parts, domains (LDH labels, UTF-8 U-labels
 * when SMTPUTF8 is allowed), address literals ([IPv4] and [IPv6:...], validated with
 * inet_pton), source routes ("@a,@b:" parsed, validated and dropped), "<>",
 * "<Postmaster>", the RFC 5321 4.5.3.1 length limits and UTF-8 well-formedness.
 * Does not: allocate, do I/O, look at ESMTP parameters after the path, lowercase
 * anything, or accept general address literals ("[tag:...]" other than IPv6).
 */
#include "smtp/smtp_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Cursor over the input; lengths are checked by every reader. */
struct smtp_addr_cur {
	const unsigned char *p;
	size_t n;
	size_t i;
	bool allow_utf8;
	bool saw_utf8;
	int err; /* first error that is not SYNTAX (UTF8), else 0 */
};

static int smtp_addr_peek(const struct smtp_addr_cur *c)
{
	return c->i < c->n ? c->p[c->i] : -1;
}

/* Length of a well-formed UTF-8 sequence at p[0..n) (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if malformed. p[0] must be >= 0x80. */
static size_t smtp_addr_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char b = p[0];
	size_t len, k;
	unsigned char lo = 0x80, hi = 0xbf;

	if (b >= 0xc2 && b <= 0xdf) {
		len = 2;
	} else if (b >= 0xe0 && b <= 0xef) {
		len = 3;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		len = 4;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < len; k++)
		if (p[k] < 0x80 || p[k] > 0xbf)
			return 0;
	return len;
}

/* Consume one UTF-8 sequence at the cursor. 0 on success, or the error. */
static int smtp_addr_take_utf8(struct smtp_addr_cur *c)
{
	size_t len = smtp_addr_utf8_seq(c->p + c->i, c->n - c->i);

	if (len == 0)
		return SMTP_ADDR_SYNTAX;
	if (!c->allow_utf8) {
		if (c->err == 0)
			c->err = SMTP_ADDR_UTF8;
	}
	c->saw_utf8 = true;
	c->i += len;
	return 0;
}

static bool smtp_addr_is_atext(int ch)
{
	if (ch < 0)
		return false;
	if (ch < 0x80 && isalnum(ch))
		return true;
	return ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

static bool smtp_addr_is_ldh(int ch)
{
	return ch >= 0 && ch < 0x80 && (isalnum(ch) || ch == '-');
}

/* Local-part = Dot-string / Quoted-string. */
static int smtp_addr_local(struct smtp_addr_cur *c)
{
	int ch = smtp_addr_peek(c);
	int rc;

	if (ch == '"') {
		c->i++;
		for (;;) {
			ch = smtp_addr_peek(c);
			if (ch < 0)
				return SMTP_ADDR_SYNTAX;
			if (ch == '"') {
				c->i++;
				return 0;
			}
			if (ch == '\\') {
				c->i++;
				ch = smtp_addr_peek(c);
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (ch < 32 || ch > 126)
					return SMTP_ADDR_SYNTAX;
				c->i++;
				continue;
			}
			if (ch >= 0x80) {
				rc = smtp_addr_take_utf8(c);
				if (rc < 0)
					return rc;
				continue;
			}
			/* qtextSMTP = %d32-33 / %d35-91 / %d93-126 */
			if (ch < 32 || ch > 126)
				return SMTP_ADDR_SYNTAX;
			c->i++;
		}
	}
	/* Dot-string = Atom *("." Atom) */
	for (;;) {
		size_t start = c->i;

		for (;;) {
			ch = smtp_addr_peek(c);
			if (smtp_addr_is_atext(ch)) {
				c->i++;
			} else if (ch >= 0x80) {
				rc = smtp_addr_take_utf8(c);
				if (rc < 0)
					return rc;
			} else {
				break;
			}
		}
		if (c->i == start)
			return SMTP_ADDR_SYNTAX;
		if (smtp_addr_peek(c) != '.')
			return 0;
		c->i++;
	}
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] or a U-label.
 * Labels are at most 63 octets (RFC 1035 2.3.4). */
static int smtp_addr_domain_name(struct smtp_addr_cur *c)
{
	int ch, rc;

	for (;;) {
		size_t start = c->i;
		bool last_hyphen = false;

		for (;;) {
			ch = smtp_addr_peek(c);
			if (smtp_addr_is_ldh(ch)) {
				if (ch == '-' && c->i == start)
					return SMTP_ADDR_SYNTAX;
				last_hyphen = ch == '-';
				c->i++;
			} else if (ch >= 0x80) {
				rc = smtp_addr_take_utf8(c);
				if (rc < 0)
					return rc;
				last_hyphen = false;
			} else {
				break;
			}
		}
		if (c->i == start || last_hyphen || c->i - start > 63)
			return SMTP_ADDR_SYNTAX;
		if (smtp_addr_peek(c) != '.')
			return 0;
		c->i++;
	}
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]" */
static int smtp_addr_literal(struct smtp_addr_cur *c)
{
	char tmp[64];
	size_t start, len;
	unsigned char bin[16];
	int ch;

	c->i++; /* '[' */
	start = c->i;
	for (;;) {
		ch = smtp_addr_peek(c);
		if (ch < 0)
			return SMTP_ADDR_SYNTAX;
		if (ch == ']')
			break;
		/* dcontent = %d33-90 / %d94-126; '[' '\' ']' excluded */
		if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
			return SMTP_ADDR_SYNTAX;
		c->i++;
	}
	len = c->i - start;
	c->i++; /* ']' */
	if (len == 0 || len >= sizeof tmp)
		return SMTP_ADDR_SYNTAX;
	memcpy(tmp, c->p + start, len);
	tmp[len] = '\0';
	if (len > 5 && strncasecmp(tmp, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, tmp + 5, bin) != 1)
			return SMTP_ADDR_SYNTAX;
		return 0;
	}
	if (inet_pton(AF_INET, tmp, bin) != 1)
		return SMTP_ADDR_SYNTAX;
	return 0;
}

static int smtp_addr_domain(struct smtp_addr_cur *c)
{
	if (smtp_addr_peek(c) == '[')
		return smtp_addr_literal(c);
	return smtp_addr_domain_name(c);
}

/* A-d-l = At-domain *( "," At-domain ); followed by ':'. Dropped. */
static int smtp_addr_route(struct smtp_addr_cur *c)
{
	int rc;

	for (;;) {
		if (smtp_addr_peek(c) != '@')
			return SMTP_ADDR_SYNTAX;
		c->i++;
		rc = smtp_addr_domain(c);
		if (rc < 0)
			return rc;
		if (smtp_addr_peek(c) == ',') {
			c->i++;
			continue;
		}
		if (smtp_addr_peek(c) != ':')
			return SMTP_ADDR_SYNTAX;
		c->i++;
		return 0;
	}
}

int smtp_addr_parse(struct smtp_addr *a, const char *p, size_t n, size_t *used, bool allow_null,
                    bool allow_utf8, bool lenient)
{
	struct smtp_addr_cur c = {
	    .p = (const unsigned char *)p,
	    .n = n,
	    .i = 0,
	    .allow_utf8 = allow_utf8,
	};
	bool bracket;
	size_t lstart, llen, dstart = 0, dlen = 0, pstart;
	int rc;

	memset(a, 0, sizeof *a);
	*used = 0;
	bracket = smtp_addr_peek(&c) == '<';
	if (!bracket && !lenient)
		return SMTP_ADDR_SYNTAX;
	if (bracket) {
		c.i++;
		if (smtp_addr_peek(&c) == '>') {
			if (!allow_null)
				return SMTP_ADDR_NULL_RCPT;
			a->is_null = true;
			*used = 2;
			return SMTP_ADDR_OK;
		}
		if (smtp_addr_peek(&c) == '@') {
			rc = smtp_addr_route(&c);
			if (rc < 0)
				return rc;
		}
	}
	pstart = c.i;
	lstart = c.i;
	rc = smtp_addr_local(&c);
	if (rc < 0)
		return rc;
	llen = c.i - lstart;
	if (smtp_addr_peek(&c) == '@') {
		c.i++;
		dstart = c.i;
		rc = smtp_addr_domain(&c);
		if (rc < 0)
			return rc;
		dlen = c.i - dstart;
	} else if (llen == 10 && strncasecmp(p + lstart, "Postmaster", 10) == 0) {
		a->is_postmaster = true;
	} else {
		return SMTP_ADDR_SYNTAX;
	}
	if (bracket) {
		if (smtp_addr_peek(&c) != '>')
			return SMTP_ADDR_SYNTAX;
		c.i++;
	} else if (c.i < n && p[c.i] != ' ') {
		return SMTP_ADDR_SYNTAX;
	}
	/* Limits: the mailbox inside the brackets plus two for "<>" (source route
	 * excluded: it is dropped and never travels further). */
	if (llen > TERN_LOCAL_PART_MAX || dlen > TERN_DOMAIN_MAX ||
	    (c.i - pstart) + (bracket ? 1 : 2) > TERN_PATH_MAX)
		return SMTP_ADDR_TOO_LONG;
	if (c.err < 0)
		return c.err;
	memcpy(a->local, p + lstart, llen);
	a->local[llen] = '\0';
	memcpy(a->domain, p + dstart, dlen);
	a->domain[dlen] = '\0';
	a->is_utf8 = c.saw_utf8;
	*used = c.i;
	return SMTP_ADDR_OK;
}

int smtp_addr_format(const struct smtp_addr *a, char *out, size_t outsz)
{
	int n;

	if (outsz == 0)
		return -1;
	if (a->is_null)
		n = snprintf(out, outsz, "%s", "");
	else if (a->domain[0] == '\0')
		n = snprintf(out, outsz, "%s", a->local);
	else
		n = snprintf(out, outsz, "%s@%s", a->local, a->domain);
	if (n < 0 || (size_t)n >= outsz) {
		out[0] = '\0';
		return -1;
	}
	return n;
}

int smtp_addr_unquote_local(const struct smtp_addr *a, char *out, size_t outsz)
{
	const char *s = a->local;
	size_t o = 0, i = 0, n = strlen(s);

	if (outsz == 0)
		return -1;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		i = 1;
		n--;
		while (i < n) {
			if (s[i] == '\\' && i + 1 < n)
				i++;
			if (o + 1 >= outsz)
				goto fail;
			out[o++] = s[i++];
		}
	} else {
		if (n >= outsz)
			goto fail;
		memcpy(out, s, n);
		o = n;
	}
	out[o] = '\0';
	return (int)o;
fail:
	out[0] = '\0';
	return -1;
}
