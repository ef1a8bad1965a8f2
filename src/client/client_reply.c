/* client_reply.c - parse SMTP reply lines, explain reply codes, map failures to
 * sysexits. Strict about shape (three digits, '-' or ' ' or end, one code per reply,
 * RFC 5321 line length) and defensive about content (control characters masked).
 * Does no I/O and keeps no state beyond one struct client_reply. */
#include "client/client_reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

void client_reply_init(struct client_reply *r)
{
	memset(r, 0, sizeof *r);
}

static bool client_reply_is_digit(char c) { return c >= '0' && c <= '9'; }

/* Enhanced status code at the start of text: class.subject.detail, class 2/4/5,
 * subject and detail 1-3 digits. Returns its length or 0. */
static size_t client_reply_enh_len(const char *p, size_t n)
{
	size_t i = 0;
	if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < n && client_reply_is_digit(p[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (i >= n || p[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

int client_reply_feed_line(struct client_reply *r, const char *line, size_t n)
{
	if (r->done)
		return -EPROTO;
	if (n + 2 > TERN_REPLY_LINE_MAX)
		return -EMSGSIZE;
	if (r->nlines >= CLIENT_REPLY_LINES_MAX)
		return -EMSGSIZE;
	if (n < 3 || !client_reply_is_digit(line[0]) || !client_reply_is_digit(line[1]) ||
	    !client_reply_is_digit(line[2]) || line[0] < '2' || line[0] > '5' || line[1] > '5')
		return -EPROTO;
	if (n > 3 && line[3] != ' ' && line[3] != '-')
		return -EPROTO;
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return -EPROTO;
	r->code = code;

	const char *text = n > 4 ? line + 4 : "";
	size_t tlen = n > 4 ? n - 4 : 0;
	if (r->nlines == 0 && code != 334) {
		size_t el = client_reply_enh_len(text, tlen);
		if (el > 0 && el < sizeof r->enh && text[0] == line[0]) {
			memcpy(r->enh, text, el);
			r->enh[el] = '\0';
		}
	}
	if (r->nlines > 0 && r->text_len + 1 < sizeof r->text)
		r->text[r->text_len++] = '\n';
	for (size_t i = 0; i < tlen && r->text_len + 1 < sizeof r->text; i++) {
		unsigned char c = (unsigned char)text[i];
		r->text[r->text_len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	r->text[r->text_len] = '\0';
	r->nlines++;
	if (n == 3 || line[3] == ' ')
		r->done = true;
	return 0;
}

void client_reply_summary(const struct client_reply *r, char *out, size_t outsz)
{
	size_t o = 0;
	if (outsz == 0)
		return;
	int w = snprintf(out, outsz, "%03d ", r->code);
	if (w < 0 || (size_t)w >= outsz)
		return;
	o = (size_t)w;
	for (size_t i = 0; i < r->text_len && o + 1 < outsz; i++) {
		if (r->text[i] == '\n') {
			if (o + 4 >= outsz)
				break;
			memcpy(out + o, " / ", 3);
			o += 3;
			continue;
		}
		out[o++] = r->text[i];
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

struct client_reply_expl {
	int code;
	const char *text;
};

static const struct client_reply_expl client_reply_codes[] = {
	{211, "system status"},
	{214, "help message"},
	{220, "server ready"},
	{221, "server closes the connection"},
	{235, "authentication succeeded"},
	{250, "requested action done"},
	{251, "user not local; will forward"},
	{252, "cannot verify the user, but will try delivery"},
	{334, "server waits for the next AUTH step (base64)"},
	{354, "send the message; end it with a line holding only \".\""},
	{421, "service not available, server closes the connection"},
	{432, "a password transition is needed"},
	{450, "mailbox unavailable (busy or blocked)"},
	{451, "local error in processing"},
	{452, "insufficient system storage or too many recipients"},
	{454, "temporary authentication or TLS failure"},
	{455, "server cannot accommodate parameters now"},
	{500, "syntax error, command unrecognized"},
	{501, "syntax error in parameters or arguments"},
	{502, "command not implemented"},
	{503, "bad sequence of commands"},
	{504, "command parameter not implemented"},
	{521, "server does not accept mail"},
	{523, "message too big for the recipient"},
	{530, "authentication required"},
	{534, "authentication mechanism too weak"},
	{535, "authentication credentials invalid"},
	{538, "encryption required for this authentication mechanism"},
	{550, "mailbox unavailable or action refused"},
	{551, "user not local"},
	{552, "exceeded storage allocation (message too big?)"},
	{553, "mailbox name not allowed"},
	{554, "transaction failed"},
	{555, "MAIL/RCPT parameters not recognized or not implemented"},
	{556, "domain does not accept mail"},
	{0, NULL},
};

/* RFC 3463 subject.detail -> meaning (the class is printed separately). */
static const struct {
	const char *sd;
	const char *text;
} client_reply_enh[] = {
	{"0.0", "other or undefined status"},
	{"1.0", "other address status"},
	{"1.1", "bad destination mailbox address"},
	{"1.2", "bad destination system address"},
	{"1.3", "bad destination mailbox address syntax"},
	{"1.4", "destination mailbox address ambiguous"},
	{"1.5", "destination address valid"},
	{"1.6", "destination mailbox has moved"},
	{"1.7", "bad sender's mailbox address syntax"},
	{"1.8", "bad sender's system address"},
	{"1.10", "recipient domain publishes a null MX"},
	{"2.0", "other or undefined mailbox status"},
	{"2.1", "mailbox disabled"},
	{"2.2", "mailbox full"},
	{"2.3", "message length exceeds the mailbox limit"},
	{"2.4", "mailing list expansion problem"},
	{"3.0", "other or undefined mail system status"},
	{"3.1", "mail system full"},
	{"3.2", "system not accepting network messages"},
	{"3.3", "system not capable of selected features"},
	{"3.4", "message too big for system"},
	{"3.5", "system incorrectly configured"},
	{"4.0", "other or undefined network or routing status"},
	{"4.1", "no answer from host"},
	{"4.2", "bad connection"},
	{"4.3", "directory server failure"},
	{"4.4", "unable to route"},
	{"4.5", "mail system congestion"},
	{"4.6", "routing loop detected"},
	{"4.7", "delivery time expired"},
	{"5.0", "other or undefined protocol status"},
	{"5.1", "invalid command"},
	{"5.2", "syntax error"},
	{"5.3", "too many recipients"},
	{"5.4", "invalid command arguments"},
	{"5.5", "wrong protocol version"},
	{"5.6", "authentication exchange line too long"},
	{"6.0", "other or undefined media error"},
	{"6.1", "media not supported"},
	{"6.2", "conversion required and prohibited"},
	{"6.3", "conversion required but not supported"},
	{"6.7", "non-ASCII addresses not permitted"},
	{"6.8", "UTF-8 string reply required"},
	{"7.0", "other or undefined security status"},
	{"7.1", "delivery not authorized, message refused"},
	{"7.2", "mailing list expansion prohibited"},
	{"7.3", "security conversion required but not possible"},
	{"7.4", "security features not supported"},
	{"7.5", "cryptographic failure"},
	{"7.7", "message integrity failure"},
	{"7.8", "authentication credentials invalid"},
	{"7.9", "authentication mechanism too weak"},
	{"7.10", "encryption needed"},
	{"7.11", "encryption required for this authentication mechanism"},
	{"7.12", "a password transition is needed"},
	{"7.13", "user account disabled"},
	{"7.14", "trust relationship required"},
	{NULL, NULL},
};

static bool client_verb_is(const char *verb, const char *v)
{
	return verb != NULL && strcasecmp(verb, v) == 0;
}

/* What a success means in the context of the command it answers. */
static const char *client_reply_success(int code, const char *verb)
{
	if (code == 220 && verb == NULL)
		return "server ready, say EHLO";
	if (code == 220 && client_verb_is(verb, "STARTTLS"))
		return "ready to start TLS";
	if (code != 250)
		return NULL;
	if (client_verb_is(verb, "EHLO"))
		return "hello; the lines list the extensions the server supports";
	if (client_verb_is(verb, "HELO"))
		return "hello (no extensions without EHLO)";
	if (client_verb_is(verb, "MAIL"))
		return "sender accepted";
	if (client_verb_is(verb, "RCPT"))
		return "recipient accepted";
	if (client_verb_is(verb, "."))
		return "message accepted for delivery";
	if (client_verb_is(verb, "BDAT"))
		return "chunk accepted";
	if (client_verb_is(verb, "RSET"))
		return "transaction reset";
	if (client_verb_is(verb, "NOOP"))
		return "nothing done, still connected";
	if (client_verb_is(verb, "VRFY"))
		return "address verified";
	return NULL;
}

void client_reply_explain(int code, const char *enh, const char *verb, char *out, size_t outsz)
{
	const char *cls;
	const char *what = NULL;
	const char *detail = NULL;

	switch (code / 100) {
	case 2: cls = "OK"; break;
	case 3: cls = "go on"; break;
	case 4: cls = "temporary failure, try again later"; break;
	case 5: cls = "permanent failure"; break;
	default: cls = "not an SMTP reply code"; break;
	}
	if (code / 100 == 2 || code / 100 == 3)
		what = client_reply_success(code, verb);
	if (what == NULL)
		for (size_t i = 0; client_reply_codes[i].code != 0; i++)
			if (client_reply_codes[i].code == code)
				what = client_reply_codes[i].text;
	if (enh != NULL && enh[0] != '\0' && code / 100 >= 4) {
		const char *sd = strchr(enh, '.');
		for (size_t i = 0; sd != NULL && client_reply_enh[i].sd != NULL; i++)
			if (strcmp(sd + 1, client_reply_enh[i].sd) == 0)
				detail = client_reply_enh[i].text;
	}
	int w;
	if (what != NULL && detail != NULL)
		w = snprintf(out, outsz, "%s: %s (%s)", cls, what, detail);
	else if (what != NULL || detail != NULL)
		w = snprintf(out, outsz, "%s: %s", cls, what != NULL ? what : detail);
	else
		w = snprintf(out, outsz, "%s", cls);
	(void)w; /* truncation is fine for an explanation line */
}

int client_exit_for_reply(int code)
{
	if (code >= 400 && code < 500)
		return EX_TEMPFAIL;
	if (code >= 500 && code < 600)
		return EX_UNAVAILABLE;
	return EX_PROTOCOL;
}

int client_exit_for_errno(int err)
{
	switch (err) {
	case 0: return EX_OK;
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ECONNABORTED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EHOSTDOWN:
	case -ENETDOWN:
	case -EPIPE:
	case -EAGAIN:
	case -EADDRNOTAVAIL:
		return EX_TEMPFAIL;
	case -ENOENT:
	case -EISDIR:
		return EX_NOINPUT;
	case -EACCES:
	case -EPERM:
		return EX_NOPERM;
	case -EINVAL:
	case -EILSEQ:
	case -EMSGSIZE:
		return EX_DATAERR;
	case -EPROTO:
		return EX_PROTOCOL;
	case -ENOMEM:
		return EX_OSERR;
	case -EIO:
	case -ENOSPC:
		return EX_IOERR;
	default:
		return EX_SOFTWARE;
	}
}
