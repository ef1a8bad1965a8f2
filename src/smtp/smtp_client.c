/* smtp_client.c - the outbound SMTP engine: reply parser (hostile input capped and
 * escaped), EHLO/HELO, STARTTLS decision, MAIL/RCPT/DATA one command at a time or,
 * when the server offers PIPELINING (RFC 2920), MAIL + every RCPT + DATA in one
 * output with the replies matched in order; per-recipient results, RSET after a
 * failed transaction, several messages per connection, QUIT, and dot-stuffing.
 *
 * It does no I/O, no DNS, no TLS and no logging (smtp_client.h says how the glue
 * drives it); it does not decide what a result means for the queue (relay.c does). */
#include "smtp/smtp_client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_CLIENT_EXT_MAX 32
#define SMTP_CLIENT_OUT_MAX (64u * 1024u) /* commands waiting to be sent */

struct smtp_client {
	enum smtp_client_state st;
	char helo[256];
	bool want_tls, tls_active, require_tls;
	char auth_user[256], auth_pass[256];
	bool want_auth;
	int auth_step;
	struct buf out;
	/* reply being parsed */
	char line[SMTP_CLIENT_LINE_MAX];
	size_t llen;
	bool line_overflow;
	unsigned nlines;
	int rcode;
	struct smtp_client_reply cur;
	/* EHLO extensions, uppercase keyword and the rest of the line */
	char ext[SMTP_CLIENT_EXT_MAX][64];
	size_t next;
	uint64_t max_size;
	/* current message */
	const struct smtp_client_msg *m;
	size_t rcpt_idx;
	size_t naccepted;
	bool pipelined;   /* this transaction was sent as one RFC 2920 group */
	bool mail_failed; /* pipelined: MAIL refused, later replies only consumed */
	bool finished;
	struct smtp_client_reply *res;
	struct smtp_client_reply err;
};

static void smtp_client_enter_state(struct smtp_client *c, enum smtp_client_state st)
{
	c->st = st;
}

static void smtp_client_set(struct smtp_client_reply *r, int code, const char *text)
{
	r->code = code;
	snprintf(r->text, sizeof r->text, "%s", text);
}

static void smtp_client_fail(struct smtp_client *c, int code, const char *text)
{
	smtp_client_set(&c->err, code, text);
	/* recipients without a result yet get the connection's error */
	if (c->m != NULL && !c->finished) {
		for (size_t i = 0; i < c->m->nrcpts; i++)
			if (c->res[i].code == 0 || c->res[i].code / 100 == 2)
				c->res[i] = c->err; /* accepted at RCPT is not delivered */
		c->finished = true;
	}
	smtp_client_enter_state(c, SMTP_CL_FAILED);
}

struct smtp_client *smtp_client_new(const struct smtp_client_opts *o)
{
	struct smtp_client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	snprintf(c->helo, sizeof c->helo, "%s", o->helo ? o->helo : "localhost");
	c->want_tls = o->starttls;
	c->tls_active = o->tls_active;
	c->require_tls = o->require_tls;
	if (o->auth_user != NULL && o->auth_pass != NULL) {
		c->want_auth = true;
		snprintf(c->auth_user, sizeof c->auth_user, "%s", o->auth_user);
		snprintf(c->auth_pass, sizeof c->auth_pass, "%s", o->auth_pass);
	}
	buf_init(&c->out, SMTP_CLIENT_OUT_MAX);
	c->st = SMTP_CL_GREETING;
	return c;
}

void smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	explicit_bzero(c->auth_pass, sizeof c->auth_pass);
	buf_free(&c->out);
	free(c->res);
	free(c);
}

/* A command: the pieces concatenated, then CRLF. */
static void smtp_client_cmd4(struct smtp_client *c, const char *a, const char *b, const char *d,
                             const char *e)
{
	int r = buf_printf(&c->out, "%s%s%s%s\r\n", a, b ? b : "", d ? d : "", e ? e : "");
	if (r < 0)
		smtp_client_fail(c, 0, "out of memory building a command");
}

/* Append text (escaped) to the current reply's kept text. */
static void smtp_client_keep(struct smtp_client *c, const char *p, size_t n)
{
	size_t o = strlen(c->cur.text);
	if (o > 0 && o + 3 < sizeof c->cur.text) {
		memcpy(c->cur.text + o, " / ", 3);
		o += 3;
	}
	for (size_t i = 0; i < n && o + 5 < sizeof c->cur.text; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"') {
			c->cur.text[o++] = (char)ch;
		} else {
			snprintf(c->cur.text + o, 5, "\\x%02X", ch);
			o += 4;
		}
	}
	c->cur.text[o] = '\0';
}

static void smtp_client_ehlo_line(struct smtp_client *c, const char *p, size_t n)
{
	if (c->nlines == 1 || c->next >= SMTP_CLIENT_EXT_MAX)
		return; /* first line is the greeting */
	char *e = c->ext[c->next++];
	size_t i = 0;
	for (; i < n && i + 1 < sizeof c->ext[0]; i++) {
		unsigned char ch = (unsigned char)p[i];
		e[i] = (ch >= 0x20 && ch < 0x7f) ? (char)toupper(ch) : '?';
	}
	e[i] = '\0';
	if (strncmp(e, "SIZE ", 5) == 0) {
		unsigned long long v = 0;
		for (const char *d = e + 5; *d >= '0' && *d <= '9'; d++)
			v = v < 1000000000000ull ? v * 10 + (unsigned)(*d - '0') : v;
		c->max_size = v;
	}
}

bool smtp_client_has_ext(const struct smtp_client *c, const char *kw)
{
	size_t kl = strlen(kw);
	for (size_t i = 0; i < c->next; i++)
		if (strncmp(c->ext[i], kw, kl) == 0 &&
		    (c->ext[i][kl] == '\0' || c->ext[i][kl] == ' '))
			return true;
	return false;
}

bool smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

static void smtp_client_b64(const unsigned char *p, size_t n, char *out, size_t outsz)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < outsz; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

/* After EHLO: authenticate if asked to (over TLS only), else ready. */
static void smtp_client_after_ehlo(struct smtp_client *c)
{
	char raw[520], b64[704];
	if (!c->want_auth) {
		smtp_client_enter_state(c, SMTP_CL_READY);
		return;
	}
	if (!c->tls_active) {
		smtp_client_fail(c, 0, "refusing to send AUTH credentials without TLS");
		return;
	}
	if (smtp_client_has_ext(c, "AUTH")) {
		bool plain = false, login = false;
		for (size_t i = 0; i < c->next; i++)
			if (strncmp(c->ext[i], "AUTH ", 5) == 0 ||
			    strncmp(c->ext[i], "AUTH=", 5) == 0) {
				plain = plain || strstr(c->ext[i], " PLAIN") != NULL;
				login = login || strstr(c->ext[i], " LOGIN") != NULL ||
				        strstr(c->ext[i], "=LOGIN") != NULL;
			}
		if (plain) {
			size_t ul = strlen(c->auth_user), pl = strlen(c->auth_pass);
			raw[0] = '\0';
			memcpy(raw + 1, c->auth_user, ul);
			raw[1 + ul] = '\0';
			memcpy(raw + 2 + ul, c->auth_pass, pl);
			smtp_client_b64((unsigned char *)raw, 2 + ul + pl, b64, sizeof b64);
			explicit_bzero(raw, sizeof raw);
			smtp_client_cmd4(c, "AUTH PLAIN ", b64, NULL, NULL);
			explicit_bzero(b64, sizeof b64);
			c->auth_step = 0;
			smtp_client_enter_state(c, SMTP_CL_AUTH);
			return;
		}
		if (login) {
			smtp_client_cmd4(c, "AUTH LOGIN", NULL, NULL, NULL);
			c->auth_step = 1;
			smtp_client_enter_state(c, SMTP_CL_AUTH);
			return;
		}
	}
	smtp_client_fail(c, 0, "server offers no AUTH PLAIN or LOGIN");
}

static void smtp_client_next_rcpt(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->m;
	const char *dsn = NULL;
	if (m->dsn_rcpt != NULL && smtp_client_has_ext(c, "DSN"))
		dsn = m->dsn_rcpt[c->rcpt_idx];
	smtp_client_cmd4(c, "RCPT TO:<", m->rcpts[c->rcpt_idx], ">", dsn);
	smtp_client_enter_state(c, SMTP_CL_RCPT);
}

static void smtp_client_msg_end(struct smtp_client *c, bool rset)
{
	c->finished = true;
	if (rset) {
		smtp_client_cmd4(c, "RSET", NULL, NULL, NULL);
		smtp_client_enter_state(c, SMTP_CL_RSET);
	} else {
		smtp_client_enter_state(c, SMTP_CL_READY);
	}
}

/* One complete reply: drive the state machine. */
static void smtp_client_on_reply(struct smtp_client *c)
{
	int code = c->cur.code, cls = code / 100;
	switch (c->st) {
	case SMTP_CL_GREETING:
		if (cls != 2) {
			smtp_client_fail(c, code, c->cur.text);
			return;
		}
		c->next = 0;
		smtp_client_cmd4(c, "EHLO ", c->helo, NULL, NULL);
		smtp_client_enter_state(c, SMTP_CL_EHLO);
		return;
	case SMTP_CL_EHLO:
		if (cls == 5 &&
		    (code == 500 || code == 501 || code == 502 || code == 504 || code == 550)) {
			smtp_client_cmd4(c, "HELO ", c->helo, NULL, NULL);
			smtp_client_enter_state(c, SMTP_CL_HELO);
			return;
		}
		if (cls != 2) {
			smtp_client_fail(c, code, c->cur.text);
			return;
		}
		if (c->want_tls && !c->tls_active && smtp_client_has_ext(c, "STARTTLS")) {
			smtp_client_cmd4(c, "STARTTLS", NULL, NULL, NULL);
			smtp_client_enter_state(c, SMTP_CL_STARTTLS);
			return;
		}
		if (c->require_tls && !c->tls_active) {
			smtp_client_fail(c, 0, "TLS required but the server does not offer STARTTLS");
			return;
		}
		smtp_client_after_ehlo(c);
		return;
	case SMTP_CL_HELO:
		if (cls != 2) {
			smtp_client_fail(c, code, c->cur.text);
			return;
		}
		smtp_client_after_ehlo(c);
		return;
	case SMTP_CL_AUTH:
		if ((c->auth_step == 1 || c->auth_step == 2) && code == 334) {
			char b64[704];
			const char *v = c->auth_step == 1 ? c->auth_user : c->auth_pass;
			smtp_client_b64((const unsigned char *)v, strlen(v), b64, sizeof b64);
			smtp_client_cmd4(c, b64, NULL, NULL, NULL);
			explicit_bzero(b64, sizeof b64);
			c->auth_step = c->auth_step == 1 ? 2 : 3;
			return;
		}
		if (code == 235) {
			smtp_client_enter_state(c, SMTP_CL_READY);
			return;
		}
		smtp_client_fail(c, code, c->cur.text);
		return;
	case SMTP_CL_STARTTLS:
		if (code == 220) {
			smtp_client_enter_state(c, SMTP_CL_TLS);
			return;
		}
		if (c->require_tls) {
			smtp_client_fail(c, code, c->cur.text);
			return;
		}
		/* opportunistic: go on in the clear (AUTH then refuses) */
		smtp_client_after_ehlo(c);
		return;
	case SMTP_CL_MAIL:
		if (cls != 2) {
			for (size_t i = 0; i < c->m->nrcpts; i++)
				c->res[i] = c->cur;
			if (c->pipelined) {
				/* the RCPT and DATA replies are still on their way */
				c->mail_failed = true;
				c->rcpt_idx = 0;
				smtp_client_enter_state(c, SMTP_CL_RCPT);
				return;
			}
			smtp_client_msg_end(c, true);
			return;
		}
		c->rcpt_idx = 0;
		if (c->pipelined)
			smtp_client_enter_state(c, SMTP_CL_RCPT);
		else
			smtp_client_next_rcpt(c);
		return;
	case SMTP_CL_RCPT:
		if (!c->mail_failed) {
			c->res[c->rcpt_idx] = c->cur;
			if (cls == 2)
				c->naccepted++;
		}
		if (++c->rcpt_idx < c->m->nrcpts) {
			if (!c->pipelined)
				smtp_client_next_rcpt(c);
			return;
		}
		if (c->pipelined) {
			smtp_client_enter_state(c, SMTP_CL_DATA); /* DATA was sent with the group */
			return;
		}
		if (c->naccepted == 0) {
			smtp_client_msg_end(c, true);
			return;
		}
		smtp_client_cmd4(c, "DATA", NULL, NULL, NULL);
		smtp_client_enter_state(c, SMTP_CL_DATA);
		return;
	case SMTP_CL_DATA:
		if (code == 354 && (c->mail_failed || c->naccepted == 0)) {
			/* RFC 2920 3.1: a server that says 354 with no valid recipient gets an
			 * empty message ended at once; its reply is ignored, then RSET */
			smtp_client_cmd4(c, ".", NULL, NULL, NULL);
			c->mail_failed = true;
			smtp_client_enter_state(c, SMTP_CL_DOT);
			return;
		}
		if (code == 354) {
			smtp_client_enter_state(c, SMTP_CL_BODY);
			return;
		}
		for (size_t i = 0; i < c->m->nrcpts; i++)
			if (c->res[i].code / 100 == 2)
				c->res[i] = c->cur;
		smtp_client_msg_end(c, true);
		return;
	case SMTP_CL_DOT:
		if (c->mail_failed) {
			smtp_client_msg_end(c, true);
			return;
		}
		for (size_t i = 0; i < c->m->nrcpts; i++)
			if (c->res[i].code / 100 == 2)
				c->res[i] = c->cur;
		smtp_client_msg_end(c, false);
		return;
	case SMTP_CL_RSET:
		if (cls != 2) {
			smtp_client_fail(c, code, c->cur.text);
			return;
		}
		smtp_client_enter_state(c, SMTP_CL_READY);
		return;
	case SMTP_CL_QUIT:
		smtp_client_enter_state(c, SMTP_CL_DONE);
		return;
	default:
		smtp_client_fail(c, 0, "unexpected reply from server");
		return;
	}
}

/* One reply line (without CRLF). */
static void smtp_client_on_line(struct smtp_client *c, const char *p, size_t n)
{
	if (++c->nlines > SMTP_CLIENT_LINES_MAX) {
		smtp_client_fail(c, 0, "protocol error: too many reply lines");
		return;
	}
	if (n < 3 || p[0] < '2' || p[0] > '5' || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) || (n > 3 && p[3] != ' ' && p[3] != '-')) {
		c->cur.text[0] = '\0';
		smtp_client_keep(c, p, n < 80 ? n : 80);
		char t[SMTP_CLIENT_TEXT_MAX];
		snprintf(t, sizeof t, "protocol error: malformed reply \"%.300s\"", c->cur.text);
		smtp_client_fail(c, 0, t);
		return;
	}
	int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (c->nlines == 1) {
		c->rcode = code;
		c->cur.code = code;
		c->cur.text[0] = '\0';
	} else if (code != c->rcode) {
		smtp_client_fail(c, 0, "protocol error: reply code changed in a multi-line reply");
		return;
	}
	if (c->st == SMTP_CL_EHLO)
		smtp_client_ehlo_line(c, p + (n > 4 ? 4 : n), n > 4 ? n - 4 : 0);
	if (c->nlines == 1 || c->st != SMTP_CL_EHLO)
		smtp_client_keep(c, p, n);
	if (n == 3 || p[3] == ' ') {
		c->nlines = 0;
		smtp_client_on_reply(c);
	}
}

static bool smtp_client_reading(const struct smtp_client *c)
{
	switch (c->st) {
	case SMTP_CL_GREETING:
	case SMTP_CL_EHLO:
	case SMTP_CL_HELO:
	case SMTP_CL_STARTTLS:
	case SMTP_CL_AUTH:
	case SMTP_CL_MAIL:
	case SMTP_CL_RCPT:
	case SMTP_CL_DATA:
	case SMTP_CL_DOT:
	case SMTP_CL_RSET:
	case SMTP_CL_QUIT:
		return true;
	default:
		return false;
	}
}

size_t smtp_client_feed(struct smtp_client *c, const char *p, size_t n)
{
	size_t i = 0;
	for (; i < n; i++) {
		if (!smtp_client_reading(c)) {
			if (c->st == SMTP_CL_DONE || c->st == SMTP_CL_FAILED)
				return n; /* discard */
			/* bytes the server sent without being asked */
			smtp_client_fail(c, 0, "protocol error: unexpected data from server");
			return n;
		}
		char ch = p[i];
		if (ch == '\n') {
			size_t l = c->llen;
			if (l > 0 && c->line[l - 1] == '\r')
				l--;
			bool over = c->line_overflow;
			c->llen = 0;
			c->line_overflow = false;
			if (over) {
				smtp_client_fail(c, 0, "protocol error: reply line too long");
				return n;
			}
			smtp_client_on_line(c, c->line, l);
			continue;
		}
		if (c->llen < sizeof c->line)
			c->line[c->llen++] = ch;
		else
			c->line_overflow = true;
		if (c->line_overflow) {
			smtp_client_fail(c, 0, "protocol error: reply line too long");
			return n;
		}
	}
	return i;
}

void smtp_client_eof(struct smtp_client *c, const char *why)
{
	if (c->st == SMTP_CL_DONE || c->st == SMTP_CL_FAILED)
		return;
	if (c->st == SMTP_CL_QUIT) {
		smtp_client_enter_state(c, SMTP_CL_DONE);
		return;
	}
	char t[SMTP_CLIENT_TEXT_MAX];
	snprintf(t, sizeof t, "%s%s", why ? why : "connection closed by server",
	         c->llen > 0 || c->nlines > 0 ? " in the middle of a reply" : "");
	smtp_client_fail(c, 0, t);
}

const char *smtp_client_output(const struct smtp_client *c, size_t *len)
{
	*len = c->out.len;
	return c->out.ptr;
}

void smtp_client_output_done(struct smtp_client *c, size_t n)
{
	buf_consume(&c->out, n);
}

void smtp_client_tls_done(struct smtp_client *c, bool ok)
{
	if (c->st != SMTP_CL_TLS)
		return;
	if (!ok) {
		smtp_client_fail(c, 0, "TLS handshake failed");
		return;
	}
	c->tls_active = true;
	c->next = 0;
	c->max_size = 0;
	smtp_client_cmd4(c, "EHLO ", c->helo, NULL, NULL);
	smtp_client_enter_state(c, SMTP_CL_EHLO);
}

/* Does the whole pipelined group fit the output buffer? Else one at a time. */
static bool smtp_client_group_fits(const struct smtp_client *c, const struct smtp_client_msg *m)
{
	size_t need = 600 + c->out.len;
	for (size_t i = 0; i < m->nrcpts && need < SMTP_CLIENT_OUT_MAX; i++)
		need += 16 + strlen(m->rcpts[i]) +
		        (m->dsn_rcpt && m->dsn_rcpt[i] ? strlen(m->dsn_rcpt[i]) : 0);
	return need < SMTP_CLIENT_OUT_MAX;
}

int smtp_client_send_msg(struct smtp_client *c, const struct smtp_client_msg *m)
{
	char params[256];
	if (c->st != SMTP_CL_READY || m->nrcpts == 0)
		return -EINVAL;
	struct smtp_client_reply *res = calloc(m->nrcpts, sizeof *res);
	if (res == NULL)
		return -ENOMEM;
	free(c->res);
	c->res = res;
	c->m = m;
	c->finished = false;
	c->naccepted = 0;
	c->rcpt_idx = 0;
	c->mail_failed = false;
	c->pipelined = smtp_client_has_ext(c, "PIPELINING") && smtp_client_group_fits(c, m);
	if (c->max_size > 0 && m->size > c->max_size) {
		for (size_t i = 0; i < m->nrcpts; i++)
			smtp_client_set(&res[i], 552,
			                "552 5.3.4 message larger than the server's SIZE limit");
		c->finished = true;
		return 0;
	}
	if (m->smtputf8 && !smtp_client_has_ext(c, "SMTPUTF8")) {
		for (size_t i = 0; i < m->nrcpts; i++)
			smtp_client_set(&res[i], 553,
			                "553 5.6.7 server does not support SMTPUTF8 (RFC 6531)");
		c->finished = true;
		return 0;
	}
	size_t o = 0;
	params[0] = '\0';
	if (smtp_client_has_ext(c, "SIZE"))
		o += (size_t)snprintf(params + o, sizeof params - o, " SIZE=%llu",
		                      (unsigned long long)m->size);
	if (m->eightbit && smtp_client_has_ext(c, "8BITMIME") && o < sizeof params)
		o += (size_t)snprintf(params + o, sizeof params - o, " BODY=8BITMIME");
	if (m->smtputf8 && o < sizeof params)
		o += (size_t)snprintf(params + o, sizeof params - o, " SMTPUTF8");
	if (m->dsn_mail != NULL && smtp_client_has_ext(c, "DSN") && o < sizeof params)
		snprintf(params + o, sizeof params - o, "%s", m->dsn_mail);
	smtp_client_cmd4(c, "MAIL FROM:<", m->from, ">", params);
	if (c->pipelined) {
		/* RFC 2920: the whole envelope and DATA in one write */
		for (c->rcpt_idx = 0; c->rcpt_idx < m->nrcpts; c->rcpt_idx++)
			smtp_client_next_rcpt(c);
		c->rcpt_idx = 0;
		smtp_client_cmd4(c, "DATA", NULL, NULL, NULL);
	}
	smtp_client_enter_state(c, SMTP_CL_MAIL);
	return 0;
}

void smtp_client_body_done(struct smtp_client *c)
{
	if (c->st == SMTP_CL_BODY)
		smtp_client_enter_state(c, SMTP_CL_DOT);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->st != SMTP_CL_READY)
		return;
	smtp_client_cmd4(c, "QUIT", NULL, NULL, NULL);
	smtp_client_enter_state(c, SMTP_CL_QUIT);
}

enum smtp_client_state smtp_client_state(const struct smtp_client *c)
{
	return c->st;
}

bool smtp_client_msg_finished(const struct smtp_client *c)
{
	return c->m != NULL && c->finished;
}

const struct smtp_client_reply *smtp_client_rcpt_result(const struct smtp_client *c, size_t i)
{
	if (c->m == NULL || i >= c->m->nrcpts)
		return &c->err;
	return &c->res[i];
}

const struct smtp_client_reply *smtp_client_error(const struct smtp_client *c)
{
	return &c->err;
}

void smtp_client_stuff_init(struct smtp_client_stuffer *st)
{
	st->bol = true;
	st->last = 0;
	st->any = false;
}

int smtp_client_stuff(struct smtp_client_stuffer *st, const char *p, size_t n, struct buf *out)
{
	size_t start = 0, i = 0;
	int r = 0;
	while (i < n && r == 0) {
		if (st->bol && p[i] == '.') {
			r = buf_append(out, p + start, i - start);
			r = r ? r : buf_append(out, ".", 1);
			start = i;
		}
		/* on to the next line (memchr: many octets a step) */
		const char *nl = memchr(p + i, '\n', n - i);
		st->bol = nl != NULL;
		i = nl != NULL ? (size_t)(nl - p) + 1 : n;
	}
	if (r == 0)
		r = buf_append(out, p + start, n - start);
	if (n > 0) {
		st->last = p[n - 1];
		st->any = true;
	}
	return r;
}

int smtp_client_stuff_end(struct smtp_client_stuffer *st, struct buf *out)
{
	if (st->any && st->last != '\n') {
		int r = buf_append(out, "\r\n", 2);
		if (r < 0)
			return r;
	}
	return buf_append(out, ".\r\n", 3);
}
