/* smtp_server.c - the inbound SMTP protocol engine (RFC 5321, 1870, 2034, 2920,
 * 3030, 3463, 6152, 6531).
 *
 * Does: split client bytes into command lines (CRLF only unless lenient_lf; 512
 * octets at most, longer lines are discarded with constant memory), run commands
 * from a table {verb, allowed states, check, run}, decode DATA content with a
 * byte-level state machine (dot-unstuffing, bare CR/LF detection, 1000-octet text
 * lines, size limit) that takes runs of ordinary lines at once, and BDAT chunks,
 * and produce replies through smtp_reply_format.
 * Does not: read or write sockets or files, log, look at clocks, decide policy (the
 * ops callbacks do), or keep any message content beyond a 16 KiB staging buffer.
 * Stops consuming command input while 64 KiB of replies are unsent (the glue then
 * stops reading the socket), so a client that never reads cannot grow our memory.
 *
 * Replies chosen where the brief left room (documented here, tested in
 * tests/unit/smtp_server_test.c):
 *   - content with a bare CR or LF (strict mode): 550 5.6.0, after the real end;
 *   - a content line over 1000 octets incl. CRLF: 550 5.6.0 (the message is rejected,
 *     not truncated or folded: changing content would break signatures);
 *   - HELP <unknown>: 504 5.5.4; BDAT with a malformed size: 501 5.5.4 and close,
 *     because the chunk boundary is lost (RFC 3030 2);
 *   - SEND SOML SAML TURN ETRN ATRN: 502 5.5.1 (not implemented here);
 *   - STARTTLS (RFC 3207) and AUTH (RFC 4954) are events: STARTTLS answers 220 and
 *     stops consuming input at the end of its line, so the glue can drop whatever the
 *     client pipelined after it (CVE-2011-0411); AUTH decodes base64 and hands each
 *     step to ops->auth, whose answer (smtp_server_auth_answer) may come later.
 *     STARTTLS when not offered: 502 5.5.1; again under TLS: 503 5.5.1; with an
 *     argument: 501 5.5.4. AUTH when not offered: 502 5.5.1; offered only under TLS:
 *     530 5.7.0 with require_tls, else 538 5.7.11; already authenticated or inside a
 *     transaction: 503 5.5.1; unknown mechanism: 504 5.5.4; bad base64: 501 5.5.2;
 *     '*': 501 5.7.0; a response line over TERN_SASL_LINE_MAX: 500 5.5.6.
 *   - addresses without angle brackets are accepted only with lenient_lf (the one
 *     "lenient client" switch a listener has).
 *   - bare CR in DATA content is refused with lenient_lf too (only LF is relaxed, and
 *     normalised to CRLF): the queue never holds a bare CR or LF, so nothing relayed
 *     onward can carry a "<CR>.<CR>" that a lenient next hop might take as the end.
 */
#include "smtp/smtp_server.h"
#include "smtp/smtp_dsn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_reply.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/limits.h"
#include "util/scan.h"

/* Staging buffer for decoded content, gathering small pieces (a line after a
 * stuffed dot, say) for data_write. */
#define SMTP_SERVER_DBUF 16384
/* A decoded run at least this long goes to data_write without being staged. */
#define SMTP_SERVER_RUN_MIN 2048
/* Pending output a client may make us hold without reading it. */
#define SMTP_SERVER_OUT_MAX (1024 * 1024)
/* Unsent replies above which command input is not consumed (backpressure: a client
 * that pipelines commands but never reads the replies stalls; memory stays bounded). */
#define SMTP_SERVER_OUT_HIGH (64 * 1024)

/* DATA decoder states (the position within the current content line). */
enum smtp_server_dstate {
	SMTP_DS_BOL,    /* at the beginning of a line (after CRLF, or right after 354) */
	SMTP_DS_TEXT,   /* inside a line */
	SMTP_DS_CR,     /* inside a line, just after a CR */
	SMTP_DS_DOT,    /* a line started with '.', the dot is held back */
	SMTP_DS_DOT_CR, /* ".\r" at the start of a line: LF here ends the data */
};

/* Content problems found while reading DATA/BDAT, reported after the end. */
enum smtp_server_dflag {
	SMTP_DF_BARE_LF = 1 << 0,
	SMTP_DF_BARE_CR = 1 << 1,
	SMTP_DF_LONG_LINE = 1 << 2,
	SMTP_DF_TOO_BIG = 1 << 3,
	SMTP_DF_WRITE_ERR = 1 << 4,
};

enum smtp_server_cmd_id {
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_HTTP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_UNIMPL,
};

/* A reply being built by a handler. Larger than struct smtp_reply so that the EHLO
 * list with a 255-octet hostname and argument always fits. */
struct smtp_server_reply {
	int code; /* 0: no reply now */
	char enh[16];
	char text[1024];
};

/* What check() parsed for run() to act on. */
struct smtp_server_args {
	const char *arg; /* after the verb and its spaces; NUL-terminated */
	size_t n;
	struct smtp_addr addr;
	struct smtp_mail_params params;
	struct smtp_rcpt_dsn dsn;  /* RCPT NOTIFY/ORCPT */
	uint64_t bdat_size;
	bool bdat_last;
	bool close; /* check failed in a way that loses sync: close after the reply */
	char mech[32];             /* AUTH mechanism, upper case */
	unsigned char sasl[TERN_SASL_LINE_MAX];
	size_t sasl_len;
	bool has_sasl;             /* AUTH came with an initial response */
};

struct smtp_server {
	struct smtp_server_opts opts;
	const struct smtp_server_ops *ops;
	void *ctx;
	enum smtp_state state;
	struct buf out;

	/* command line being read (an AUTH response line may be longer) */
	char *line;      /* allocated at a line's first byte, freed at its end: an idle
	                  * session holds no line buffer */
	size_t line_cap; /* bytes allocated (depends on the state: AUTH lines are longer) */
	size_t line_len;
	bool line_long; /* over TERN_CMD_LINE_MAX: discarding up to the line end */
	bool line_bare_cr;
	bool cr_pending; /* last byte was CR */
	size_t rest_after_line; /* bytes fed after the line being executed */

	/* session */
	char helo[TERN_HELO_MAX + 1];
	bool helo_seen;
	bool esmtp;
	unsigned nerrors;
	bool authenticated;
	char auth_mech[32];        /* mechanism of the exchange in progress */

	/* transaction */
	struct smtp_addr from;
	struct smtp_mail_params params;
	struct smtp_addr *rcpts;
	struct smtp_rcpt_dsn *rdsn; /* parallel to rcpts; NULL until a RCPT has DSN params */
	size_t nrcpts;
	size_t rcpts_cap;
	bool data_open; /* data_begin called, neither commit nor abort yet */
	bool used_bdat;
	uint64_t msg_size;
	unsigned dflags;
	bool write_enospc; /* the write error was "no space": 452 4.3.1, not 451 */

	/* DATA decoder */
	enum smtp_server_dstate dstate;
	size_t line_octets;
	size_t dlen;
	char *dbuf; /* SMTP_SERVER_DBUF bytes, only while a message is being received */

	/* BDAT chunk */
	uint64_t bdat_left;
	uint64_t bdat_size;
	bool bdat_last;
	bool bdat_discard;  /* chunk is read and dropped; bdat_reply answers it */
	bool bdat_cr;       /* the last content octet was a CR */
	bool bdat_txn_fail; /* ... and the transaction ends with it */
	enum smtp_state bdat_prev;
	struct smtp_server_reply bdat_reply;
};

struct smtp_server_cmd {
	const char *verb;
	enum smtp_server_cmd_id id;
	unsigned states; /* bit mask of enum smtp_state where the verb is in sequence */
	/* Validate and parse only; fill r and return -EINVAL to refuse. */
	int (*check)(struct smtp_server *s, struct smtp_server_args *a,
	             struct smtp_server_reply *r);
	/* Act; fill r (code 0: the reply comes later). */
	void (*run)(struct smtp_server *s, struct smtp_server_args *a, struct smtp_server_reply *r);
};

#define SMTP_M(st) (1u << (st))
#define SMTP_M_CMD                                                                                 \
	(SMTP_M(SMTP_ST_CONNECTED) | SMTP_M(SMTP_ST_READY) | SMTP_M(SMTP_ST_HELO) |                \
	 SMTP_M(SMTP_ST_MAIL) | SMTP_M(SMTP_ST_RCPT) | SMTP_M(SMTP_ST_BDAT_WAIT))

static const struct smtp_server_ops smtp_server_no_ops;

static void smtp_server_enter_state(struct smtp_server *s, enum smtp_state st)
{
	s->state = st;
}

static void smtp_server_set(struct smtp_server_reply *r, int code, const char *enh, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

static void smtp_server_set(struct smtp_server_reply *r, int code, const char *enh, const char *fmt,
                            ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->enh, sizeof r->enh, "%s", enh ? enh : "");
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof r->text, fmt, ap);
	va_end(ap);
}

static void smtp_server_close(struct smtp_server *s);

/* Format r into the output. counts: a refused command, which counts towards
 * max_errors when it is a 5xx. */
static void smtp_server_respond(struct smtp_server *s, const struct smtp_server_reply *r,
                                bool counts)
{
	if (r->code == 0)
		return;
	if (smtp_reply_format(&s->out, r->code, r->enh, r->text) < 0) {
		/* The client does not read its replies: nothing sensible left to say. */
		smtp_server_close(s);
		return;
	}
	if (!counts || r->code < 500 || s->state == SMTP_ST_CLOSING)
		return;
	s->nerrors++;
	if (s->nerrors >= s->opts.max_errors) {
		struct smtp_server_reply e;

		smtp_server_set(&e, 421, "4.7.0", "%s Error: too many errors", s->opts.hostname);
		smtp_reply_format(&s->out, e.code, e.enh, e.text);
		smtp_server_close(s);
	}
}

static void smtp_server_say(struct smtp_server *s, bool counts, int code, const char *enh,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void smtp_server_say(struct smtp_server *s, bool counts, int code, const char *enh,
                            const char *fmt, ...)
{
	struct smtp_server_reply r;
	va_list ap;

	r.code = code;
	snprintf(r.enh, sizeof r.enh, "%s", enh ? enh : "");
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof r.text, fmt, ap);
	va_end(ap);
	smtp_server_respond(s, &r, counts);
}

/* ---- transaction ---------------------------------------------------------- */

static void smtp_server_txn_reset(struct smtp_server *s)
{
	if (s->data_open) {
		s->data_open = false;
		if (s->ops->data_abort)
			s->ops->data_abort(s->ctx);
	}
	memset(&s->from, 0, sizeof s->from);
	memset(&s->params, 0, sizeof s->params);
	free(s->rdsn);
	s->rdsn = NULL;
	s->nrcpts = 0;
	s->used_bdat = false;
	s->msg_size = 0;
	s->dflags = 0;
	s->write_enospc = false;
	s->dlen = 0;
	free(s->dbuf); /* idle sessions keep no staging buffer */
	s->dbuf = NULL;
	s->dstate = SMTP_DS_BOL;
	s->line_octets = 0;
	s->bdat_left = 0;
	s->bdat_size = 0;
	s->bdat_last = false;
	s->bdat_cr = false;
	s->bdat_discard = false;
	s->bdat_txn_fail = false;
}

/* Transaction over (done, refused or reset): back to the no-transaction state. */
static void smtp_server_txn_end(struct smtp_server *s)
{
	smtp_server_txn_reset(s);
	smtp_server_enter_state(s, s->helo_seen ? SMTP_ST_HELO : SMTP_ST_READY);
}

static void smtp_server_close(struct smtp_server *s)
{
	smtp_server_txn_reset(s);
	smtp_server_enter_state(s, SMTP_ST_CLOSING);
}

/* ---- content: staging, DATA decoder, BDAT --------------------------------- */

static void smtp_server_write_result(struct smtp_server *s, int rc)
{
	if (rc < 0) {
		s->dflags |= SMTP_DF_WRITE_ERR;
		s->write_enospc = rc == -ENOSPC;
	}
}

/* The reply for a local storage failure: a full disk is 452 4.3.1 (RFC 3463). */
static void smtp_server_set_local_err(struct smtp_server_reply *r, int err)
{
	if (err == -ENOSPC)
		smtp_server_set(r, 452, "4.3.1", "Insufficient system storage");
	else
		smtp_server_set(r, 451, "4.3.0", "Local error in processing");
}

static void smtp_server_flush(struct smtp_server *s)
{
	if (s->dlen > 0 && s->dflags == 0 && s->ops->data_write) {
		smtp_server_write_result(s, s->ops->data_write(s->ctx, s->dbuf, s->dlen));
	}
	s->dlen = 0;
}

/* Decoded content bytes. Once any problem is known nothing more is written. */
static void smtp_server_emit(struct smtp_server *s, const char *p, size_t k)
{
	/* The size is counted even after another problem was found, so which problems
	 * are known never depends on how the client's bytes were split (fuzzed). */
	if (!(s->dflags & SMTP_DF_TOO_BIG)) {
		if (k > s->opts.max_msg_size - s->msg_size)
			s->dflags |= SMTP_DF_TOO_BIG;
		else
			s->msg_size += k;
	}
	if (s->dflags)
		return;
	if (k >= SMTP_SERVER_RUN_MIN) {
		/* a run of whole lines: passed on as it is, after what is staged */
		smtp_server_flush(s);
		if (s->dflags == 0 && s->ops->data_write)
			smtp_server_write_result(s, s->ops->data_write(s->ctx, p, k));
		return;
	}
	if (s->dbuf == NULL && (s->dbuf = malloc(SMTP_SERVER_DBUF)) == NULL) {
		smtp_server_write_result(s, -ENOMEM);
		return;
	}
	while (k > 0 && s->dflags == 0) {
		size_t take = SMTP_SERVER_DBUF - s->dlen;

		if (take > k)
			take = k;
		memcpy(s->dbuf + s->dlen, p, take);
		s->dlen += take;
		p += take;
		k -= take;
		if (s->dlen == SMTP_SERVER_DBUF)
			smtp_server_flush(s);
	}
}

static void smtp_server_data_octets(struct smtp_server *s, size_t k)
{
	s->line_octets += k;
	if (s->line_octets > TERN_TEXT_LINE_MAX)
		s->dflags |= SMTP_DF_LONG_LINE;
}

/* End of content (CRLF.CRLF, or the LAST BDAT chunk): reject or commit. */
static void smtp_server_finish(struct smtp_server *s)
{
	struct smtp_server_reply r = {0};

	smtp_server_flush(s);
	if (s->used_bdat && s->bdat_cr)
		s->dflags |= SMTP_DF_BARE_CR;
	if (s->dflags & SMTP_DF_BARE_LF)
		smtp_server_set(&r, 550, "5.6.0", "bare LF in message content not allowed");
	else if (s->dflags & SMTP_DF_BARE_CR)
		smtp_server_set(&r, 550, "5.6.0", "bare CR in message content not allowed");
	else if (s->dflags & SMTP_DF_LONG_LINE)
		smtp_server_set(&r, 550, "5.6.0", "Message line longer than %d octets",
		                TERN_TEXT_LINE_MAX);
	else if (s->dflags & SMTP_DF_TOO_BIG)
		smtp_server_set(&r, 552, "5.3.4", "Message size exceeds fixed limit");
	else if (s->dflags & SMTP_DF_WRITE_ERR || !s->data_open)
		smtp_server_set_local_err(&r, s->write_enospc ? -ENOSPC : -EIO);
	if (r.code != 0) {
		smtp_server_txn_end(s);
		smtp_server_respond(s, &r, false);
		return;
	}
	s->data_open = false;
	smtp_server_enter_state(s, SMTP_ST_COMMIT);
	if (s->ops->data_commit)
		s->ops->data_commit(s->ctx);
	else
		smtp_server_commit_done(s, -ENOSYS, NULL);
}

/* A content byte inside a line (also after a dropped dot or a bare CR). */
static void smtp_server_data_text(struct smtp_server *s, char c)
{
	if (c == '\r') {
		s->dstate = SMTP_DS_CR;
	} else if (c == '\n') {
		if (s->opts.lenient_lf) {
			/* Stored as CRLF: one octet more than arrived, and the stored line is
			 * what must fit TERN_TEXT_LINE_MAX (it may be relayed onward). */
			smtp_server_data_octets(s, 1);
			smtp_server_emit(s, "\r\n", 2);
			s->dstate = SMTP_DS_BOL;
			s->line_octets = 0;
		} else {
			/* Not a line end: "\n.\n" must never end the data. */
			s->dflags |= SMTP_DF_BARE_LF;
			s->dstate = SMTP_DS_TEXT;
		}
	} else {
		smtp_server_emit(s, &c, 1);
		s->dstate = SMTP_DS_TEXT;
	}
}

/* A CR that is not followed by LF. */
static void smtp_server_data_bare_cr(struct smtp_server *s)
{
	s->dflags |= SMTP_DF_BARE_CR;
	smtp_server_emit(s, "\r", 1);
}

/* The common case in one go: complete lines (text, CRLF) that do not start with a
 * dot, and text up to a line end, taken as one run and emitted at once. Stops
 * before what the byte-wise decoder below must see: a dot at the start of a line,
 * a CR or LF that is not a CRLF within p (a CR as the last octet too). Only in
 * state BOL or TEXT. Each line's octets are checked against TERN_TEXT_LINE_MAX as
 * the byte-wise decoder does (text, then CR, then LF). Returns the octets taken. */
static size_t smtp_server_data_lines(struct smtp_server *s, const char *p, size_t n)
{
	size_t i = 0, line = s->line_octets;
	enum smtp_server_dstate st = s->dstate;

	while (i < n && !(st == SMTP_DS_BOL && p[i] == '.')) {
		size_t k = i + scan_cr_lf(p + i, n - i);

		line += k - i;
		if (k > i)
			st = SMTP_DS_TEXT;
		if (k + 1 >= n || p[k] != '\r' || p[k + 1] != '\n') {
			i = k;
			break;
		}
		if (line + 2 > TERN_TEXT_LINE_MAX)
			s->dflags |= SMTP_DF_LONG_LINE;
		line = 0;
		st = SMTP_DS_BOL;
		i = k + 2;
	}
	if (line > TERN_TEXT_LINE_MAX)
		s->dflags |= SMTP_DF_LONG_LINE;
	s->line_octets = line;
	s->dstate = st;
	if (i > 0)
		smtp_server_emit(s, p, i);
	return i;
}

static size_t smtp_server_data_feed(struct smtp_server *s, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char c;

		if (s->dstate == SMTP_DS_TEXT || s->dstate == SMTP_DS_BOL) {
			size_t k = smtp_server_data_lines(s, p + i, n - i);

			if (k > 0) {
				i += k;
				continue;
			}
		}
		c = p[i++];
		smtp_server_data_octets(s, 1);
		switch (s->dstate) {
		case SMTP_DS_BOL:
			if (c == '.')
				s->dstate = SMTP_DS_DOT;
			else
				smtp_server_data_text(s, c);
			break;
		case SMTP_DS_TEXT:
			smtp_server_data_text(s, c);
			break;
		case SMTP_DS_CR:
			if (c == '\n') {
				smtp_server_emit(s, "\r\n", 2);
				s->dstate = SMTP_DS_BOL;
				s->line_octets = 0;
			} else {
				smtp_server_data_bare_cr(s);
				smtp_server_data_text(s, c);
			}
			break;
		case SMTP_DS_DOT:
			if (c == '\r') {
				s->dstate = SMTP_DS_DOT_CR;
			} else if (c == '\n' && s->opts.lenient_lf) {
				smtp_server_finish(s);
				return i;
			} else {
				smtp_server_data_text(s, c); /* the stuffed dot is dropped */
			}
			break;
		case SMTP_DS_DOT_CR:
			if (c == '\n') {
				smtp_server_finish(s);
				return i;
			}
			smtp_server_data_bare_cr(s);
			smtp_server_data_text(s, c);
			break;
		}
	}
	return n;
}

static void smtp_server_bdat_chunk_end(struct smtp_server *s)
{
	struct smtp_server_reply r;

	if (s->bdat_discard) {
		r = s->bdat_reply;
		if (s->bdat_txn_fail) {
			smtp_server_txn_end(s);
		} else {
			s->bdat_discard = false;
			smtp_server_enter_state(s, s->bdat_prev);
		}
		smtp_server_respond(s, &r, r.code >= 500 && r.code != 552);
		return;
	}
	if (s->bdat_last) {
		smtp_server_finish(s);
		return;
	}
	smtp_server_flush(s);
	if (s->dflags & SMTP_DF_WRITE_ERR) {
		struct smtp_server_reply e;
		smtp_server_set_local_err(&e, s->write_enospc ? -ENOSPC : -EIO);
		smtp_server_txn_end(s);
		smtp_server_respond(s, &e, false);
		return;
	}
	smtp_server_enter_state(s, SMTP_ST_BDAT_WAIT);
	smtp_server_say(s, false, 250, "2.0.0", "%llu octets received",
	                (unsigned long long)s->bdat_size);
}

/* BDAT octets are not parsed for an end, but a bare CR or LF in them is refused as
 * in DATA (550 5.6.0 after the LAST chunk): a message relayed onward with DATA must
 * never carry one (it could end the data early at a lenient next hop). */
static void smtp_server_bdat_scan(struct smtp_server *s, const char *p, size_t k)
{
	size_t i = 0;

	while (i < k) {
		if (s->bdat_cr) { /* the octet before was a CR */
			s->bdat_cr = false;
			if (p[i] == '\n') {
				i++;
				continue;
			}
			s->dflags |= SMTP_DF_BARE_CR;
		}
		size_t j = i + scan_cr_lf(p + i, k - i);
		if (j == k)
			break;
		if (p[j] == '\n')
			s->dflags |= SMTP_DF_BARE_LF;
		else
			s->bdat_cr = true;
		i = j + 1;
	}
}

static size_t smtp_server_bdat_feed(struct smtp_server *s, const char *p, size_t n)
{
	size_t k = n;

	if (k > s->bdat_left)
		k = (size_t)s->bdat_left;
	if (!s->bdat_discard) {
		smtp_server_bdat_scan(s, p, k);
		smtp_server_emit(s, p, k);
	}
	s->bdat_left -= k;
	if (s->bdat_left == 0)
		smtp_server_bdat_chunk_end(s);
	return k;
}

/* ---- command handlers ----------------------------------------------------- */

static bool smtp_server_is_printable(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			return false;
	return true;
}

static int smtp_server_check_helo(struct smtp_server *s, struct smtp_server_args *a,
                                  struct smtp_server_reply *r)
{
	if (a->n == 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax: HELO/EHLO hostname");
		return -EINVAL;
	}
	if (a->n > TERN_HELO_MAX || !smtp_server_is_printable(a->arg, a->n)) {
		smtp_server_set(r, 501, "5.5.4", "Invalid HELO/EHLO hostname");
		return -EINVAL;
	}
	return 0;
}

static void smtp_server_helo_common(struct smtp_server *s, struct smtp_server_args *a, bool esmtp)
{
	smtp_server_txn_reset(s);
	memcpy(s->helo, a->arg, a->n);
	s->helo[a->n] = '\0';
	s->helo_seen = true;
	s->esmtp = esmtp;
	smtp_server_enter_state(s, SMTP_ST_HELO);
}

static bool smtp_server_starttls_offered(const struct smtp_server *s)
{
	return s->opts.starttls && !s->opts.tls_active;
}

static bool smtp_server_auth_offered(const struct smtp_server *s)
{
	return s->opts.auth && s->opts.auth_mechs != NULL && s->opts.auth_mechs[0] != '\0' &&
	       (s->opts.tls_active || s->opts.auth_plaintext);
}

static void smtp_server_run_helo(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	smtp_server_helo_common(s, a, false);
	smtp_server_set(r, 250, "", "%s", s->opts.hostname);
}

static void smtp_server_run_ehlo(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	smtp_server_helo_common(s, a, true);
	smtp_server_set(r, 250, "",
	                "%s greets %s\nSIZE %llu\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nDSN\n"
	                "SMTPUTF8\nCHUNKING\nHELP%s%s%s",
	                s->opts.hostname, s->helo, (unsigned long long)s->opts.max_msg_size,
	                smtp_server_starttls_offered(s) ? "\nSTARTTLS" : "",
	                smtp_server_auth_offered(s) ? "\nAUTH " : "",
	                smtp_server_auth_offered(s) ? s->opts.auth_mechs : "");
}

/* "FROM:" / "TO:" then optional spaces (RFC 5321 says none; clients send one). */
static int smtp_server_skip_prefix(struct smtp_server_args *a, const char *prefix, size_t *off)
{
	size_t k = strlen(prefix);

	if (a->n < k || strncasecmp(a->arg, prefix, k) != 0)
		return -EINVAL;
	while (k < a->n && a->arg[k] == ' ')
		k++;
	*off = k;
	return 0;
}

/* Parse a decimal uint64 of at most TERN_BDAT_SIZE_DIGITS digits. */
static int smtp_server_parse_u64(const char *p, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0 || n > TERN_BDAT_SIZE_DIGITS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		d = (unsigned)(p[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static bool smtp_server_word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* ESMTP parameters of MAIL FROM (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8). */
static int smtp_server_mail_params(struct smtp_server *s, const char *p, size_t n,
                                   struct smtp_mail_params *mp, struct smtp_server_reply *r)
{
	bool seen_size = false, seen_body = false, seen_utf8 = false;
	size_t i = 0;
	int dsn;

	while (i < n) {
		size_t start, end, klen;
		const char *key, *val = NULL;
		size_t vlen = 0;

		while (i < n && p[i] == ' ')
			i++;
		if (i >= n)
			break;
		start = i;
		while (i < n && p[i] != ' ')
			i++;
		end = i;
		key = p + start;
		klen = end - start;
		for (size_t j = start; j < end; j++) {
			if (p[j] == '=') {
				klen = j - start;
				val = p + j + 1;
				vlen = end - j - 1;
				break;
			}
		}
		if (smtp_server_word_is(key, klen, "SIZE")) {
			if (seen_size)
				goto dup;
			seen_size = true;
			if (val == NULL || smtp_server_parse_u64(val, vlen, &mp->size) < 0) {
				smtp_server_set(r, 501, "5.5.4", "Bad SIZE parameter");
				return -EINVAL;
			}
			if (mp->size > s->opts.max_msg_size) {
				smtp_server_set(r, 552, "5.3.4",
				                "Message size exceeds fixed limit");
				return -EINVAL;
			}
		} else if (smtp_server_word_is(key, klen, "BODY")) {
			if (seen_body)
				goto dup;
			seen_body = true;
			if (val != NULL && smtp_server_word_is(val, vlen, "7BIT")) {
				mp->body = SMTP_BODY_7BIT;
			} else if (val != NULL && smtp_server_word_is(val, vlen, "8BITMIME")) {
				mp->body = SMTP_BODY_8BITMIME;
			} else if (val != NULL && smtp_server_word_is(val, vlen, "BINARYMIME")) {
				smtp_server_set(r, 555, "5.5.4", "BODY=BINARYMIME not supported");
				return -EINVAL;
			} else {
				smtp_server_set(r, 501, "5.5.4", "Bad BODY parameter");
				return -EINVAL;
			}
		} else if (smtp_server_word_is(key, klen, "SMTPUTF8")) {
			if (seen_utf8)
				goto dup;
			seen_utf8 = true;
			if (val != NULL) {
				smtp_server_set(r, 501, "5.5.4", "SMTPUTF8 takes no value");
				return -EINVAL;
			}
			mp->smtputf8 = true;
		} else if ((dsn = smtp_dsn_mail_param(key, klen, val, vlen, &mp->dsn_ret,
		                                      mp->dsn_envid)) != 0) {
			if (dsn < 0) {
				smtp_server_set(r, 501, "5.5.4", "Bad or repeated RET/ENVID parameter");
				return -EINVAL;
			}
		} else {
			smtp_server_set(r, 555, "5.5.4", "Unsupported MAIL parameter");
			return -EINVAL;
		}
	}
	return 0;
dup:
	smtp_server_set(r, 555, "5.5.4", "Duplicate MAIL parameter");
	return -EINVAL;
}

/* Map an smtp_addr_parse error to a reply. */
static void smtp_server_addr_err(struct smtp_server_reply *r, int err, bool sender)
{
	const char *enh = sender ? "5.1.7" : "5.1.3";
	const char *who = sender ? "sender" : "recipient";

	switch (err) {
	case SMTP_ADDR_TOO_LONG:
		smtp_server_set(r, 501, enh, "Bad %s address: too long", who);
		break;
	case SMTP_ADDR_UTF8:
		smtp_server_set(r, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
		break;
	case SMTP_ADDR_NULL_RCPT:
		smtp_server_set(r, 501, "5.1.3", "Null recipient not allowed");
		break;
	default:
		smtp_server_set(r, 501, enh, "Bad %s address syntax", who);
		break;
	}
}

static int smtp_server_check_mail(struct smtp_server *s, struct smtp_server_args *a,
                                  struct smtp_server_reply *r)
{
	size_t off, used;
	int rc;

	if (s->opts.require_helo && !s->helo_seen) {
		smtp_server_set(r, 503, "5.5.1", "Error: send HELO/EHLO first");
		return -EINVAL;
	}
	if (s->opts.require_tls && !s->opts.tls_active) {
		smtp_server_set(r, 530, "5.7.0", "Must issue a STARTTLS command first");
		return -EINVAL;
	}
	if (s->opts.require_auth && !s->authenticated) {
		smtp_server_set(r, 530, "5.7.0", "Authentication required");
		return -EINVAL;
	}
	if (smtp_server_skip_prefix(a, "FROM:", &off) < 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return -EINVAL;
	}
	rc = smtp_addr_parse(&a->addr, a->arg + off, a->n - off, &used, true, true,
	                     s->opts.lenient_lf);
	if (rc == 0 && a->addr.is_postmaster)
		rc = SMTP_ADDR_SYNTAX; /* <Postmaster> is a Forward-path only */
	if (rc < 0) {
		smtp_server_addr_err(r, rc, true);
		return -EINVAL;
	}
	off += used;
	if (off < a->n && a->arg[off] != ' ') {
		smtp_server_set(r, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
		return -EINVAL;
	}
	if (smtp_server_mail_params(s, a->arg + off, a->n - off, &a->params, r) < 0)
		return -EINVAL;
	if (a->addr.is_utf8 && !a->params.smtputf8) {
		smtp_server_addr_err(r, SMTP_ADDR_UTF8, true);
		return -EINVAL;
	}
	return 0;
}

/* Copy a policy callback's answer; code 0 keeps the default already in r. */
static void smtp_server_policy(struct smtp_server_reply *r, const struct smtp_reply *pr)
{
	if (pr->code == 0)
		return;
	if (pr->code < 200 || pr->code > 599) {
		/* A callback bug must not silently end the session. */
		smtp_server_set(r, 451, "4.3.0", "Local error in processing");
		return;
	}
	r->code = pr->code;
	snprintf(r->enh, sizeof r->enh, "%.*s", (int)sizeof pr->enh, pr->enh);
	snprintf(r->text, sizeof r->text, "%.*s", (int)sizeof pr->text, pr->text);
}

static void smtp_server_run_mail(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	struct smtp_reply pr = {0};

	if (s->ops->mail)
		s->ops->mail(s->ctx, &a->addr, &a->params, &pr);
	smtp_server_set(r, 250, "2.1.0", "Sender ok");
	smtp_server_policy(r, &pr);
	if (r->code >= 400)
		return;
	smtp_server_txn_reset(s);
	s->from = a->addr;
	s->params = a->params;
	smtp_server_enter_state(s, SMTP_ST_MAIL);
}

static int smtp_server_check_rcpt(struct smtp_server *s, struct smtp_server_args *a,
                                  struct smtp_server_reply *r)
{
	size_t off, used;
	int rc;

	if (smtp_server_skip_prefix(a, "TO:", &off) < 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return -EINVAL;
	}
	rc = smtp_addr_parse(&a->addr, a->arg + off, a->n - off, &used, false, s->params.smtputf8,
	                     s->opts.lenient_lf);
	if (rc < 0) {
		smtp_server_addr_err(r, rc, false);
		return -EINVAL;
	}
	off += used;
	if (off < a->n && a->arg[off] != ' ') {
		smtp_server_set(r, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return -EINVAL;
	}
	while (off < a->n && a->arg[off] == ' ')
		off++;
	memset(&a->dsn, 0, sizeof a->dsn);
	if (off < a->n && smtp_dsn_rcpt_params(a->arg + off, a->n - off, &a->dsn) < 0) {
		smtp_server_set(r, 555, "5.5.4", "Unsupported or bad RCPT parameter");
		return -EINVAL;
	}
	if (s->nrcpts >= s->opts.max_rcpts) {
		smtp_server_set(r, 452, "4.5.3", "Too many recipients");
		return -EINVAL;
	}
	return 0;
}

static void smtp_server_run_rcpt(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	struct smtp_reply pr = {0};

	if (s->ops->rcpt)
		s->ops->rcpt(s->ctx, &a->addr, &pr);
	smtp_server_set(r, 250, "2.1.5", "Recipient ok");
	smtp_server_policy(r, &pr);
	if (r->code >= 400)
		return;
	if (s->nrcpts == s->rcpts_cap) {
		size_t ncap = s->rcpts_cap ? s->rcpts_cap * 2 : 8;
		struct smtp_addr *nr;

		if (ncap > s->opts.max_rcpts)
			ncap = s->opts.max_rcpts;
		nr = realloc(s->rcpts, ncap * sizeof *nr);
		if (nr == NULL) {
			smtp_server_set(r, 451, "4.3.0", "Local error in processing");
			return;
		}
		s->rcpts = nr;
		s->rcpts_cap = ncap;
	}
	if (a->dsn.notify != 0 || a->dsn.orcpt[0] != '\0' || s->rdsn != NULL) {
		/* DSN parameters are rare: the array exists only once one is given */
		struct smtp_rcpt_dsn *nd = realloc(s->rdsn, s->rcpts_cap * sizeof *nd);
		if (nd == NULL) {
			smtp_server_set(r, 451, "4.3.0", "Local error in processing");
			return;
		}
		if (s->rdsn == NULL)
			memset(nd, 0, s->rcpts_cap * sizeof *nd);
		s->rdsn = nd;
		s->rdsn[s->nrcpts] = a->dsn;
	}
	s->rcpts[s->nrcpts++] = a->addr;
	smtp_server_enter_state(s, SMTP_ST_RCPT);
}

static int smtp_server_check_noarg(struct smtp_server *s, struct smtp_server_args *a,
                                   struct smtp_server_reply *r)
{
	if (a->n != 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax error: no arguments allowed");
		return -EINVAL;
	}
	return 0;
}

static void smtp_server_run_data(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	if (s->opts.strict_sync && s->rest_after_line > 0) {
		/* Content sent before our 354: the client does not wait for replies, so
		 * what follows cannot be trusted to be content or commands. */
		smtp_server_close(s);
		smtp_server_set(r, 554, "5.5.0", "Error: SMTP protocol synchronization");
		return;
	}
	int brc = s->ops->data_begin ? s->ops->data_begin(s->ctx, &s->from, &s->params, s->rcpts,
	                                                  s->nrcpts)
	                             : 0;
	if (brc < 0) {
		smtp_server_set_local_err(r, brc);
		return;
	}
	s->data_open = true;
	s->msg_size = 0;
	s->dflags = 0;
	s->write_enospc = false;
	s->dlen = 0;
	s->dstate = SMTP_DS_BOL;
	s->line_octets = 0;
	smtp_server_enter_state(s, SMTP_ST_DATA);
	smtp_server_set(r, 354, "", "End data with <CR><LF>.<CR><LF>");
}

static int smtp_server_check_bdat(struct smtp_server *s, struct smtp_server_args *a,
                                  struct smtp_server_reply *r)
{
	size_t i = 0;

	while (i < a->n && a->arg[i] != ' ')
		i++;
	if (smtp_server_parse_u64(a->arg, i, &a->bdat_size) < 0)
		goto bad;
	while (i < a->n && a->arg[i] == ' ')
		i++;
	if (i < a->n) {
		if (!smtp_server_word_is(a->arg + i, a->n - i, "LAST"))
			goto bad;
		a->bdat_last = true;
	}
	return 0;
bad:
	/* The chunk size is unknown, so the next command cannot be found. */
	smtp_server_set(r, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	a->close = true;
	return -EINVAL;
}

static void smtp_server_run_bdat(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	s->bdat_prev = s->state;
	s->bdat_left = a->bdat_size;
	s->bdat_size = a->bdat_size;
	s->bdat_last = a->bdat_last;
	s->bdat_discard = false;
	s->bdat_txn_fail = false;
	r->code = 0; /* answered after the chunk has been read */
	if (s->state != SMTP_ST_RCPT && s->state != SMTP_ST_BDAT_WAIT) {
		s->bdat_discard = true;
		smtp_server_set(&s->bdat_reply, 503, "5.5.1",
		                s->state == SMTP_ST_MAIL ? "Error: need RCPT command"
		                                         : "Error: need MAIL command");
	} else if (a->bdat_size > s->opts.max_msg_size - s->msg_size) {
		s->bdat_discard = true;
		s->bdat_txn_fail = true;
		smtp_server_set(&s->bdat_reply, 552, "5.3.4", "Message size exceeds fixed limit");
	} else if (s->state == SMTP_ST_RCPT) {
		s->used_bdat = true;
		int brc = s->ops->data_begin ? s->ops->data_begin(s->ctx, &s->from, &s->params,
		                                                  s->rcpts, s->nrcpts)
		                             : 0;
		if (brc < 0) {
			s->bdat_discard = true;
			s->bdat_txn_fail = true;
			smtp_server_set_local_err(&s->bdat_reply, brc);
		} else {
			s->data_open = true;
			s->msg_size = 0;
			s->dflags = 0;
			s->write_enospc = false;
			s->dlen = 0;
		}
	}
	smtp_server_enter_state(s, SMTP_ST_BDAT);
	if (s->bdat_left == 0)
		smtp_server_bdat_chunk_end(s);
}

static void smtp_server_run_rset(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	smtp_server_txn_end(s);
	smtp_server_set(r, 250, "2.0.0", "Ok");
}

static void smtp_server_run_noop(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	smtp_server_set(r, 250, "2.0.0", "Ok");
}

static void smtp_server_run_quit(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	smtp_server_close(s);
	smtp_server_set(r, 221, "2.0.0", "Bye");
}

static int smtp_server_check_arg(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	if (a->n == 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax: command requires an argument");
		return -EINVAL;
	}
	return 0;
}

static void smtp_server_run_vrfy(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	struct smtp_reply pr = {0};

	smtp_server_set(r, 252, "2.5.2", "Cannot VRFY user, but will accept message");
	if (!s->opts.vrfy_enabled || s->ops->vrfy == NULL)
		return;
	s->ops->vrfy(s->ctx, a->arg, a->n, &pr);
	smtp_server_policy(r, &pr);
}

static void smtp_server_run_expn(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	struct smtp_reply pr = {0};

	smtp_server_set(r, 502, "5.5.1", "EXPN disabled");
	if (!s->opts.expn_enabled || s->ops->expn == NULL)
		return;
	smtp_server_set(r, 252, "2.5.2", "Cannot EXPN list");
	s->ops->expn(s->ctx, a->arg, a->n, &pr);
	smtp_server_policy(r, &pr);
}

static const struct {
	const char *verb;
	const char *syntax;
} smtp_server_help_topics[] = {
    {"HELO", "HELO <hostname>"},
    {"EHLO", "EHLO <hostname>"},
    {"MAIL", "MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]"},
    {"RCPT", "RCPT TO:<recipient>"},
    {"DATA", "DATA, then the message, ended by <CR><LF>.<CR><LF>"},
    {"BDAT", "BDAT <size> [LAST], then exactly <size> octets"},
    {"RSET", "RSET (abort the mail transaction)"},
    {"NOOP", "NOOP [text]"},
    {"QUIT", "QUIT (close the session)"},
    {"VRFY", "VRFY <user>"},
    {"EXPN", "EXPN <list>"},
    {"HELP", "HELP [command]"},
    {"STARTTLS", "STARTTLS (then a TLS handshake)"},
    {"AUTH", "AUTH <mechanism> [initial-response]"},
};

static void smtp_server_run_help(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	size_t i;

	if (a->n == 0) {
		smtp_server_set(r, 214, "2.0.0",
		                "tern SMTP server; commands:\n"
		                "HELO EHLO MAIL RCPT DATA BDAT\n"
		                "RSET NOOP QUIT VRFY EXPN HELP\n"
		                "HELP <command> for its syntax");
		return;
	}
	for (i = 0; i < sizeof smtp_server_help_topics / sizeof smtp_server_help_topics[0]; i++) {
		if (smtp_server_word_is(a->arg, a->n, smtp_server_help_topics[i].verb)) {
			smtp_server_set(r, 214, "2.0.0", "%s", smtp_server_help_topics[i].syntax);
			return;
		}
	}
	smtp_server_set(r, 504, "5.5.4", "HELP topic unknown");
}

static void smtp_server_run_http(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	smtp_server_close(s);
	smtp_server_set(r, 500, "5.5.1", "Error: this is an SMTP server, not HTTP");
}

/* ---- STARTTLS (RFC 3207) ---- */

static int smtp_server_check_starttls(struct smtp_server *s, struct smtp_server_args *a,
                                      struct smtp_server_reply *r)
{
	if (s->opts.tls_active && s->opts.starttls) {
		smtp_server_set(r, 503, "5.5.1", "Error: TLS already active");
		return -EINVAL;
	}
	if (!smtp_server_starttls_offered(s)) {
		smtp_server_set(r, 502, "5.5.1", "Command not implemented");
		return -EINVAL;
	}
	if (a->n != 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax: STARTTLS");
		return -EINVAL;
	}
	return 0;
}

static void smtp_server_run_starttls(struct smtp_server *s, struct smtp_server_args *a,
                                     struct smtp_server_reply *r)
{
	smtp_server_txn_reset(s);
	smtp_server_enter_state(s, SMTP_ST_STARTTLS);
	smtp_server_set(r, 220, "2.0.0", "Ready to start TLS");
}

/* ---- AUTH (RFC 4954) ---- */

/* Is the mechanism word p[0..n) one of opts.auth_mechs? Copies it, upper case. */
static bool smtp_server_mech_known(const struct smtp_server *s, const char *p, size_t n,
                                   char *out, size_t outsz)
{
	const char *m = s->opts.auth_mechs;

	if (n == 0 || n >= outsz)
		return false;
	while (*m != '\0') {
		size_t k = strcspn(m, " ");

		if (k == n && strncasecmp(m, p, n) == 0) {
			memcpy(out, m, n);
			out[n] = '\0';
			return true;
		}
		m += k;
		while (*m == ' ')
			m++;
	}
	return false;
}

/* Decode a client response: "=" (initial response) or an empty line is the empty
 * response (RFC 4954 4). */
static int smtp_server_sasl_decode(const char *p, size_t n, unsigned char *out, size_t outsz,
                                   size_t *len)
{
	int k;

	if (n == 1 && p[0] == '=') {
		*len = 0;
		return 0;
	}
	if (n == 0) {
		*len = 0; /* an empty line is an empty response */
		return 0;
	}
	k = base64_decode(p, n, out, outsz);
	if (k < 0)
		return k;
	*len = (size_t)k;
	return 0;
}

static int smtp_server_check_auth(struct smtp_server *s, struct smtp_server_args *a,
                                  struct smtp_server_reply *r)
{
	size_t i = 0;

	if (!s->opts.auth) {
		smtp_server_set(r, 502, "5.5.1", "Command not implemented");
		return -EINVAL;
	}
	if (!smtp_server_auth_offered(s)) {
		if (s->opts.require_tls)
			smtp_server_set(r, 530, "5.7.0", "Must issue a STARTTLS command first");
		else
			smtp_server_set(r, 538, "5.7.11",
			                "Encryption required for requested authentication mechanism");
		return -EINVAL;
	}
	if (s->authenticated) {
		smtp_server_set(r, 503, "5.5.1", "Error: already authenticated");
		return -EINVAL;
	}
	if (!s->helo_seen) {
		smtp_server_set(r, 503, "5.5.1", "Error: send EHLO first");
		return -EINVAL;
	}
	if (s->state != SMTP_ST_HELO) {
		smtp_server_set(r, 503, "5.5.1", "Error: AUTH not allowed during a mail transaction");
		return -EINVAL;
	}
	while (i < a->n && a->arg[i] != ' ')
		i++;
	if (i == 0) {
		smtp_server_set(r, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return -EINVAL;
	}
	if (!smtp_server_mech_known(s, a->arg, i, a->mech, sizeof a->mech)) {
		smtp_server_set(r, 504, "5.5.4", "Unrecognized authentication type");
		return -EINVAL;
	}
	while (i < a->n && a->arg[i] == ' ')
		i++;
	if (i < a->n) {
		size_t j = i;

		while (j < a->n && a->arg[j] != ' ')
			j++;
		if (j != a->n ||
		    smtp_server_sasl_decode(a->arg + i, a->n - i, a->sasl, sizeof a->sasl,
		                            &a->sasl_len) < 0) {
			smtp_server_set(r, 501, "5.5.2", "Invalid base64 data");
			return -EINVAL;
		}
		a->has_sasl = true;
	}
	return 0;
}

static void smtp_server_run_auth(struct smtp_server *s, struct smtp_server_args *a,
                                 struct smtp_server_reply *r)
{
	r->code = 0; /* the glue answers */
	snprintf(s->auth_mech, sizeof s->auth_mech, "%s", a->mech);
	smtp_server_enter_state(s, SMTP_ST_AUTH);
	if (s->ops->auth == NULL) {
		smtp_server_auth_answer(s, SMTP_AUTH_TEMPFAIL, NULL, 0);
		return;
	}
	s->ops->auth(s->ctx, s->auth_mech, a->sasl, a->sasl_len, a->has_sasl);
}

/* The exchange ended on the client's side or by an error: back to SMTP_ST_HELO. */
static void smtp_server_auth_stop(struct smtp_server *s)
{
	smtp_server_enter_state(s, SMTP_ST_HELO);
	if (s->ops->auth_abort)
		s->ops->auth_abort(s->ctx);
}

/* A response line in SMTP_ST_AUTH_LINE (s->line[0..line_len), not yet terminated). */
static void smtp_server_auth_line(struct smtp_server *s, bool too_long)
{
	unsigned char *dec;
	size_t n = 0;

	if (too_long) {
		smtp_server_auth_stop(s);
		smtp_server_say(s, true, 500, "5.5.6", "Authentication exchange line is too long");
		return;
	}
	if (s->line_len == 1 && s->line[0] == '*') {
		smtp_server_auth_stop(s);
		smtp_server_say(s, true, 501, "5.7.0", "Authentication aborted");
		return;
	}
	dec = malloc(TERN_SASL_LINE_MAX);
	if (dec == NULL) {
		smtp_server_auth_stop(s);
		smtp_server_say(s, false, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	if (smtp_server_sasl_decode(s->line, s->line_len, dec, TERN_SASL_LINE_MAX, &n) < 0) {
		free(dec);
		smtp_server_auth_stop(s);
		smtp_server_say(s, true, 501, "5.5.2", "Invalid base64 data");
		return;
	}
	smtp_server_enter_state(s, SMTP_ST_AUTH);
	if (s->ops->auth)
		s->ops->auth(s->ctx, s->auth_mech, dec, n, true);
	else
		smtp_server_auth_answer(s, SMTP_AUTH_TEMPFAIL, NULL, 0);
	free(dec);
}

static void smtp_server_run_unimpl(struct smtp_server *s, struct smtp_server_args *a,
                                   struct smtp_server_reply *r)
{
	smtp_server_set(r, 502, "5.5.1", "Command not implemented");
}

static const struct smtp_server_cmd smtp_server_cmds[] = {
    {"HELO", SMTP_CMD_HELO, SMTP_M_CMD, smtp_server_check_helo, smtp_server_run_helo},
    {"EHLO", SMTP_CMD_EHLO, SMTP_M_CMD, smtp_server_check_helo, smtp_server_run_ehlo},
    {"MAIL", SMTP_CMD_MAIL,
     SMTP_M(SMTP_ST_CONNECTED) | SMTP_M(SMTP_ST_READY) | SMTP_M(SMTP_ST_HELO),
     smtp_server_check_mail, smtp_server_run_mail},
    {"RCPT", SMTP_CMD_RCPT, SMTP_M(SMTP_ST_MAIL) | SMTP_M(SMTP_ST_RCPT), smtp_server_check_rcpt,
     smtp_server_run_rcpt},
    {"DATA", SMTP_CMD_DATA, SMTP_M(SMTP_ST_RCPT), smtp_server_check_noarg, smtp_server_run_data},
    {"BDAT", SMTP_CMD_BDAT, SMTP_M_CMD, smtp_server_check_bdat, smtp_server_run_bdat},
    {"RSET", SMTP_CMD_RSET, SMTP_M_CMD, smtp_server_check_noarg, smtp_server_run_rset},
    {"NOOP", SMTP_CMD_NOOP, SMTP_M_CMD, NULL, smtp_server_run_noop},
    {"QUIT", SMTP_CMD_QUIT, SMTP_M_CMD, NULL, smtp_server_run_quit},
    {"VRFY", SMTP_CMD_VRFY, SMTP_M_CMD, smtp_server_check_arg, smtp_server_run_vrfy},
    {"EXPN", SMTP_CMD_EXPN, SMTP_M_CMD, smtp_server_check_arg, smtp_server_run_expn},
    {"HELP", SMTP_CMD_HELP, SMTP_M_CMD, NULL, smtp_server_run_help},
    /* Cross-protocol guard: an HTTP client (or a browser form) talking to us. */
    {"GET", SMTP_CMD_HTTP, SMTP_M_CMD, NULL, smtp_server_run_http},
    {"POST", SMTP_CMD_HTTP, SMTP_M_CMD, NULL, smtp_server_run_http},
    {"HEAD", SMTP_CMD_HTTP, SMTP_M_CMD, NULL, smtp_server_run_http},
    {"PUT", SMTP_CMD_HTTP, SMTP_M_CMD, NULL, smtp_server_run_http},
    {"CONNECT", SMTP_CMD_HTTP, SMTP_M_CMD, NULL, smtp_server_run_http},
    /* Known SMTP verbs this engine does not implement. */
    {"SEND", SMTP_CMD_UNIMPL, SMTP_M_CMD, NULL, smtp_server_run_unimpl},
    {"SOML", SMTP_CMD_UNIMPL, SMTP_M_CMD, NULL, smtp_server_run_unimpl},
    {"SAML", SMTP_CMD_UNIMPL, SMTP_M_CMD, NULL, smtp_server_run_unimpl},
    {"TURN", SMTP_CMD_UNIMPL, SMTP_M_CMD, NULL, smtp_server_run_unimpl},
    {"ETRN", SMTP_CMD_UNIMPL, SMTP_M_CMD, NULL, smtp_server_run_unimpl},
    {"ATRN", SMTP_CMD_UNIMPL, SMTP_M_CMD, NULL, smtp_server_run_unimpl},
    {"STARTTLS", SMTP_CMD_STARTTLS, SMTP_M_CMD, smtp_server_check_starttls,
     smtp_server_run_starttls},
    {"AUTH", SMTP_CMD_AUTH, SMTP_M_CMD, smtp_server_check_auth, smtp_server_run_auth},
};

/* The 503 text for a verb used out of sequence. */
static const char *smtp_server_badseq(const struct smtp_server *s, enum smtp_server_cmd_id id)
{
	switch (id) {
	case SMTP_CMD_MAIL:
		return "Error: nested MAIL command";
	case SMTP_CMD_RCPT:
		return s->state == SMTP_ST_BDAT_WAIT ? "Error: RCPT not allowed after BDAT"
		                                     : "Error: need MAIL command";
	case SMTP_CMD_DATA:
		if (s->state == SMTP_ST_MAIL)
			return "Error: need RCPT command";
		if (s->state == SMTP_ST_BDAT_WAIT)
			return "Error: DATA not allowed after BDAT";
		return "Error: need MAIL command";
	default:
		return "Error: bad sequence of commands";
	}
}

/* Execute the complete command line in s->line[0..line_len). */
static void smtp_server_exec(struct smtp_server *s)
{
	struct smtp_server_reply r = {0};
	struct smtp_server_args a;
	const struct smtp_server_cmd *cmd = NULL;
	char *p = s->line;
	size_t n = s->line_len, vlen, i;

	memset(&a, 0, sizeof a);
	p[n] = '\0';
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			smtp_server_say(s, true, 500, "5.5.2",
			                "Error: invalid character in command");
			return;
		}
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		p[--n] = '\0';
	for (vlen = 0; vlen < n && p[vlen] != ' '; vlen++)
		;
	if (vlen == 0) {
		smtp_server_say(s, true, 500, "5.5.2", "Error: bad syntax");
		return;
	}
	for (i = 0; i < sizeof smtp_server_cmds / sizeof smtp_server_cmds[0]; i++) {
		if (smtp_server_word_is(p, vlen, smtp_server_cmds[i].verb)) {
			cmd = &smtp_server_cmds[i];
			break;
		}
	}
	if (cmd == NULL) {
		smtp_server_say(s, true, 500, "5.5.2", "Error: command not recognized");
		return;
	}
	i = vlen;
	while (i < n && p[i] == ' ')
		i++;
	a.arg = p + i;
	a.n = n - i;
	if (!(cmd->states & SMTP_M(s->state))) {
		smtp_server_say(s, true, 503, "5.5.1", "%s", smtp_server_badseq(s, cmd->id));
		return;
	}
	if (cmd->check && cmd->check(s, &a, &r) < 0) {
		if (a.close)
			smtp_server_close(s);
		smtp_server_respond(s, &r, true);
		return;
	}
	cmd->run(s, &a, &r);
	smtp_server_respond(s, &r, true);
}

static size_t smtp_server_line_max(const struct smtp_server *s)
{
	return s->state == SMTP_ST_AUTH_LINE ? TERN_SASL_LINE_MAX : TERN_CMD_LINE_MAX - 2;
}

/* Room for the longest line of the current state, plus a NUL. */
static bool smtp_server_line_alloc(struct smtp_server *s)
{
	size_t need = smtp_server_line_max(s) + 1;
	if (s->line_cap >= need)
		return true;
	char *nl = realloc(s->line, need);
	if (nl == NULL)
		return false;
	s->line = nl;
	s->line_cap = need;
	return true;
}

static void smtp_server_line_release(struct smtp_server *s)
{
	free(s->line);
	s->line = NULL;
	s->line_cap = 0;
	s->line_len = 0;
}

/* A command line ended (at CRLF, or at a bare LF). */
static void smtp_server_line_end(struct smtp_server *s, bool bare_lf)
{
	bool bare_cr = s->line_bare_cr, too_long = s->line_long;

	if (!smtp_server_line_alloc(s)) /* an empty line has no buffer yet */
		too_long = true;

	s->line_bare_cr = false;
	s->line_long = false;
	if (s->state == SMTP_ST_AUTH_LINE && !bare_cr && !bare_lf) {
		smtp_server_auth_line(s, too_long);
		smtp_server_line_release(s);
		return;
	}
	if (s->state == SMTP_ST_AUTH_LINE)
		smtp_server_auth_stop(s);
	if (bare_cr)
		smtp_server_say(s, true, 500, "5.5.2",
		                "bare CR not allowed, lines must end with CRLF");
	else if (bare_lf)
		smtp_server_say(s, true, 500, "5.5.2",
		                "bare LF not allowed, lines must end with CRLF");
	else if (too_long)
		smtp_server_say(s, true, 500, "5.5.2", "Line too long");
	else
		smtp_server_exec(s);
	smtp_server_line_release(s);
}

static void smtp_server_line_add(struct smtp_server *s, char c)
{
	size_t max = smtp_server_line_max(s);

	if (s->line_long)
		return;
	if (s->line_len >= max) {
		s->line_long = true;
		return;
	}
	if (!smtp_server_line_alloc(s)) {
		s->line_long = true; /* out of memory: answered as too long; the session goes on */
		return;
	}
	s->line[s->line_len++] = c;
}

/* Read command bytes up to and including one line end. */
static size_t smtp_server_line_feed(struct smtp_server *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = p[i];

		if (s->cr_pending) {
			s->cr_pending = false;
			if (c == '\n') {
				s->rest_after_line = n - i - 1;
				smtp_server_line_end(s, false);
				return i + 1;
			}
			s->line_bare_cr = true;
		}
		if (c == '\r') {
			s->cr_pending = true;
		} else if (c == '\n') {
			s->rest_after_line = n - i - 1;
			smtp_server_line_end(s, !s->opts.lenient_lf);
			return i + 1;
		} else {
			smtp_server_line_add(s, c);
		}
	}
	return n;
}

/* ---- public API ----------------------------------------------------------- */

struct smtp_server *smtp_server_new(const struct smtp_server_opts *opts,
                                    const struct smtp_server_ops *ops, void *ctx)
{
	struct smtp_server *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->opts = *opts;
	if (s->opts.hostname == NULL || s->opts.hostname[0] == '\0')
		s->opts.hostname = "localhost";
	if (s->opts.max_msg_size == 0)
		s->opts.max_msg_size = TERN_MSG_SIZE_DEFAULT;
	if (s->opts.max_rcpts == 0)
		s->opts.max_rcpts = TERN_RCPTS_DEFAULT;
	if (s->opts.max_errors == 0)
		s->opts.max_errors = TERN_ERRORS_DEFAULT;
	s->ops = ops ? ops : &smtp_server_no_ops;
	s->ctx = ctx;
	buf_init(&s->out, SMTP_SERVER_OUT_MAX);
	smtp_server_enter_state(s, SMTP_ST_CONNECTED);
	return s;
}

const struct smtp_rcpt_dsn *smtp_server_rcpt_dsn(const struct smtp_server *s, size_t i)
{
	return s->rdsn != NULL && i < s->nrcpts ? &s->rdsn[i] : NULL;
}

void smtp_server_free(struct smtp_server *s)
{
	if (s == NULL)
		return;
	if (s->data_open && s->ops->data_abort)
		s->ops->data_abort(s->ctx);
	free(s->rcpts);
	free(s->rdsn);
	free(s->dbuf);
	free(s->line);
	buf_free(&s->out);
	free(s);
}

void smtp_server_greet(struct smtp_server *s)
{
	if (s->state != SMTP_ST_CONNECTED)
		return;
	smtp_server_enter_state(s, SMTP_ST_READY);
	smtp_server_say(s, false, 220, "", "%s %s", s->opts.hostname,
	                s->opts.greeting ? s->opts.greeting : "ESMTP tern");
}

static void smtp_server_close_with(struct smtp_server *s, const char *enh, const char *text)
{
	if (s->state == SMTP_ST_CLOSING)
		return;
	smtp_server_close(s);
	smtp_server_say(s, false, 421, enh, "%s", text);
}

void smtp_server_refuse(struct smtp_server *s, const char *enh, const char *text)
{
	smtp_server_close_with(s, enh ? enh : "4.3.2",
	                       text ? text : "Service not available, closing channel");
}

void smtp_server_sync_error(struct smtp_server *s)
{
	if (s->state == SMTP_ST_CLOSING)
		return;
	smtp_server_close(s);
	smtp_server_say(s, false, 554, "5.5.0", "Error: SMTP protocol synchronization");
}

size_t smtp_server_feed(struct smtp_server *s, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		switch (s->state) {
		case SMTP_ST_CLOSING:
		case SMTP_ST_COMMIT:
		case SMTP_ST_STARTTLS:
		case SMTP_ST_AUTH:
			return i;
		case SMTP_ST_DATA:
			i += smtp_server_data_feed(s, p + i, n - i);
			break;
		case SMTP_ST_BDAT:
			i += smtp_server_bdat_feed(s, p + i, n - i);
			break;
		default:
			if (s->out.len >= SMTP_SERVER_OUT_HIGH)
				return i;
			i += smtp_server_line_feed(s, p + i, n - i);
			break;
		}
	}
	return i;
}

#define SMTP_SERVER_QUEUED "Ok: queued as "

size_t smtp_server_commit_ok_text(const struct smtp_server *s, const char *qid, char *out,
                                  size_t outsz)
{
	char text[TERN_REPLY_LINE_MAX];
	struct buf b;
	size_t n = 0;

	if (s->state != SMTP_ST_COMMIT)
		return 0;
	snprintf(text, sizeof text, SMTP_SERVER_QUEUED "%s", qid ? qid : "");
	buf_init(&b, outsz);
	if (smtp_reply_format(&b, 250, "2.0.0", text) == 0 && b.len <= outsz) {
		memcpy(out, b.ptr, b.len);
		n = b.len;
	}
	buf_free(&b);
	return n;
}

void smtp_server_commit_done(struct smtp_server *s, int err, const char *qid)
{
	if (s->state != SMTP_ST_COMMIT)
		return;
	smtp_server_txn_end(s);
	if (err == 0)
		smtp_server_say(s, false, 250, "2.0.0", SMTP_SERVER_QUEUED "%s", qid ? qid : "");
	else if (err == -ENOSPC)
		smtp_server_say(s, false, 452, "4.3.1", "Insufficient system storage");
	else
		smtp_server_say(s, false, 451, "4.3.0", "Local error in processing");
}

void smtp_server_commit_reply(struct smtp_server *s, const struct smtp_reply *r)
{
	struct smtp_server_reply out;

	if (s->state != SMTP_ST_COMMIT)
		return;
	smtp_server_txn_end(s);
	smtp_server_set(&out, 451, "4.3.0", "Local error in processing");
	if (r->code >= 400)
		smtp_server_policy(&out, r); /* a 2xx without a durable commit is never said */
	smtp_server_respond(s, &out, false);
}

void smtp_server_timeout(struct smtp_server *s)
{
	char text[TERN_REPLY_LINE_MAX];

	snprintf(text, sizeof text, "%s Error: timeout exceeded", s->opts.hostname);
	smtp_server_close_with(s, "4.4.2", text);
}

void smtp_server_shutdown(struct smtp_server *s)
{
	char text[TERN_REPLY_LINE_MAX];

	snprintf(text, sizeof text, "%s Service shutting down, closing channel", s->opts.hostname);
	smtp_server_close_with(s, "4.3.2", text);
}

const char *smtp_server_output(const struct smtp_server *s, size_t *len)
{
	*len = s->out.len;
	return s->out.ptr ? s->out.ptr : "";
}

void smtp_server_output_done(struct smtp_server *s, size_t n)
{
	buf_consume(&s->out, n);
	if (s->out.len == 0)
		buf_shrink(&s->out);
}

enum smtp_state smtp_server_state(const struct smtp_server *s)
{
	return s->state;
}

bool smtp_server_is_closing(const struct smtp_server *s)
{
	return s->state == SMTP_ST_CLOSING;
}

bool smtp_server_is_waiting(const struct smtp_server *s)
{
	return s->state == SMTP_ST_COMMIT || s->state == SMTP_ST_AUTH ||
	       s->state == SMTP_ST_STARTTLS;
}

const char *smtp_server_protocol(const struct smtp_server *s)
{
	static const char *const words[] = {"ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA"};

	if (!s->esmtp)
		return "SMTP";
	return words[(s->opts.tls_active ? 2 : 0) + (s->authenticated ? 1 : 0)];
}

void smtp_server_auth_answer(struct smtp_server *s, enum smtp_auth_result res,
                             const void *data, size_t n)
{
	char *enc;

	if (s->state != SMTP_ST_AUTH)
		return;
	smtp_server_enter_state(s, SMTP_ST_HELO);
	switch (res) {
	case SMTP_AUTH_CONTINUE:
		enc = malloc(BASE64_ENC_LEN(n) + 1);
		if (enc == NULL || BASE64_ENC_LEN(n) > TERN_REPLY_LINE_MAX - 6 ||
		    base64_encode(data, n, enc, BASE64_ENC_LEN(n) + 1) < 0) {
			free(enc);
			if (s->ops->auth_abort)
				s->ops->auth_abort(s->ctx);
			smtp_server_say(s, false, 454, "4.7.0", "Temporary authentication failure");
			return;
		}
		smtp_server_enter_state(s, SMTP_ST_AUTH_LINE);
		smtp_server_say(s, false, 334, "", "%s", enc);
		free(enc);
		return;
	case SMTP_AUTH_OK:
		s->authenticated = true;
		smtp_server_say(s, false, 235, "2.7.0", "Authentication successful");
		return;
	case SMTP_AUTH_FAIL:
		smtp_server_say(s, true, 535, "5.7.8", "Authentication credentials invalid");
		return;
	case SMTP_AUTH_MALFORMED:
		smtp_server_say(s, true, 501, "5.5.2", "Malformed authentication response");
		return;
	case SMTP_AUTH_TEMPFAIL:
	default:
		smtp_server_say(s, false, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
}

bool smtp_server_is_authenticated(const struct smtp_server *s)
{
	return s->authenticated;
}

bool smtp_server_wants_tls(const struct smtp_server *s)
{
	return s->state == SMTP_ST_STARTTLS;
}

void smtp_server_tls_started(struct smtp_server *s)
{
	if (s->state != SMTP_ST_STARTTLS)
		return;
	smtp_server_txn_reset(s);
	s->helo[0] = '\0';
	s->helo_seen = false;
	s->esmtp = false;
	s->authenticated = false;
	s->opts.tls_active = true;
	smtp_server_line_release(s);
	s->line_long = false;
	s->line_bare_cr = false;
	s->cr_pending = false;
	smtp_server_enter_state(s, SMTP_ST_READY);
}

const char *smtp_server_helo(const struct smtp_server *s)
{
	return s->helo;
}
