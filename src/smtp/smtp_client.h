/* smtp_client.h - the outbound SMTP protocol engine (RFC 5321 client side).
 *
 * Like the server engine it does no I/O: the glue feeds it the bytes the remote
 * server sent and sends the bytes it produces. It never opens a socket, resolves a
 * name, reads the clock or logs. Replies from the remote are untrusted: lines are
 * capped, continuation lines counted, codes checked, and the text kept for error
 * messages has every control or non-ASCII byte escaped (\xHH).
 *
 * Life of a connection:
 *   c = smtp_client_new(&opts);
 *   loop: send smtp_client_output() (then smtp_client_output_done)
 *         state SMTP_CL_TLS:   do the TLS handshake, then smtp_client_tls_done(c, ok)
 *         state SMTP_CL_READY: smtp_client_send_msg(c, &msg) or smtp_client_quit(c)
 *         state SMTP_CL_BODY:  send the message through smtp_client_stuff(),
 *                              then smtp_client_body_done(c)
 *         otherwise read and smtp_client_feed(c, p, n) (smtp_client_eof on EOF)
 *   after each message (smtp_client_msg_finished): smtp_client_rcpt_result(c, i)
 *   state SMTP_CL_FAILED: smtp_client_error() says why (code 4xx/5xx, or 0 for a
 *   protocol error, which the glue treats as temporary).
 * When the server offers PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out as
 * one output (the glue sends it in one write) and the replies are matched in order;
 * otherwise one command is outstanding at a time. After a message the engine is
 * READY again: the glue may send the next message on the same connection.
 */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Longest reply line we accept (RFC 5321 says 512; some servers exceed it). */
#define SMTP_CLIENT_LINE_MAX 2048
/* Most lines in one multi-line reply (EHLO lists are ~15 lines). */
#define SMTP_CLIENT_LINES_MAX 100
/* Reply text kept for error messages. */
#define SMTP_CLIENT_TEXT_MAX 400

enum smtp_client_state {
	SMTP_CL_GREETING, /* waiting for 220 */
	SMTP_CL_EHLO,     /* EHLO sent */
	SMTP_CL_HELO,     /* HELO sent (EHLO refused) */
	SMTP_CL_STARTTLS, /* STARTTLS sent */
	SMTP_CL_TLS,      /* 220 to STARTTLS: the glue does the handshake */
	SMTP_CL_AUTH,     /* AUTH sent (PLAIN, or LOGIN step auth_step) */
	SMTP_CL_READY,    /* idle: a message may be sent */
	SMTP_CL_MAIL,     /* MAIL sent (pipelined: with every RCPT and DATA) */
	SMTP_CL_RCPT,     /* waiting for the reply to RCPT number rcpt_idx */
	SMTP_CL_DATA,     /* DATA sent */
	SMTP_CL_BODY,     /* 354 received: the glue sends the body and the dot */
	SMTP_CL_DOT,      /* waiting for the reply to end of data */
	SMTP_CL_RSET,     /* RSET sent (after a message that failed) */
	SMTP_CL_QUIT,     /* QUIT sent */
	SMTP_CL_DONE,     /* finished normally */
	SMTP_CL_FAILED,   /* connection unusable; see smtp_client_error */
};

struct smtp_client_opts {
	const char *helo;   /* our name for EHLO/HELO */
	bool starttls;      /* use STARTTLS when offered */
	bool tls_active;    /* already TLS (implicit TLS): do not STARTTLS */
	bool require_tls;   /* no STARTTLS offered or refused: FAILED, never clear text */
	const char *auth_user; /* AUTH PLAIN/LOGIN with these (smarthost); NULL: none.
	                          Sent only over TLS; without TLS the connection fails. */
	const char *auth_pass;
};

/* A reply, with text made safe for logs and bounces. */
struct smtp_client_reply {
	int code;                          /* 0: no reply (protocol error / not sent) */
	char text[SMTP_CLIENT_TEXT_MAX];   /* "250 2.1.5 Ok" (lines joined with " / ") */
};

struct smtp_client_msg {
	const char *from;          /* "" for <> */
	const char *const *rcpts;  /* addresses without brackets */
	size_t nrcpts;
	uint64_t size;             /* body size, for SIZE= */
	bool eightbit;             /* BODY=8BITMIME wanted */
	bool smtputf8;             /* needs SMTPUTF8 */
	const char *dsn_mail;      /* " RET=HDRS ENVID=x" or NULL; sent only if DSN offered */
	const char *const *dsn_rcpt; /* per-rcpt " NOTIFY=.. ORCPT=.." or NULL */
};

struct smtp_client;

struct smtp_client *smtp_client_new(const struct smtp_client_opts *o);
void smtp_client_free(struct smtp_client *c);

/* Feed bytes from the server; returns bytes consumed (always n unless the state
 * stops reading: BODY/TLS/READY/DONE/FAILED), never negative. */
size_t smtp_client_feed(struct smtp_client *c, const char *p, size_t n);
/* The server closed the connection (or the glue gave up reading). */
void smtp_client_eof(struct smtp_client *c, const char *why);

const char *smtp_client_output(const struct smtp_client *c, size_t *len);
void smtp_client_output_done(struct smtp_client *c, size_t n);

/* In SMTP_CL_TLS: ok = handshake succeeded (EHLO again), else FAILED. */
void smtp_client_tls_done(struct smtp_client *c, bool ok);
/* In SMTP_CL_READY: start a transaction. Pointers in m must live until the message
 * is finished. Returns 0, or -EINVAL in another state. A message the server cannot
 * take (SIZE, SMTPUTF8) finishes at once with a synthesized 5xx for every rcpt. */
int smtp_client_send_msg(struct smtp_client *c, const struct smtp_client_msg *m);
/* In SMTP_CL_BODY: the body and the final ".\r\n" were sent. */
void smtp_client_body_done(struct smtp_client *c);
/* In SMTP_CL_READY: send QUIT. */
void smtp_client_quit(struct smtp_client *c);

enum smtp_client_state smtp_client_state(const struct smtp_client *c);
/* True once the last message given is finished (results available). */
bool smtp_client_msg_finished(const struct smtp_client *c);
/* Result for rcpt i of the last message: 2xx delivered, 4xx/0 retry, 5xx bounce. */
const struct smtp_client_reply *smtp_client_rcpt_result(const struct smtp_client *c, size_t i);
/* Why the connection failed (valid in SMTP_CL_FAILED). */
const struct smtp_client_reply *smtp_client_error(const struct smtp_client *c);
/* Extensions seen in the EHLO reply. */
bool smtp_client_has_ext(const struct smtp_client *c, const char *kw);
bool smtp_client_tls_active(const struct smtp_client *c);

/* Dot-stuffing for the body (RFC 5321 4.5.2): message bytes in CRLF form. */
struct smtp_client_stuffer {
	bool bol;   /* at the beginning of a line */
	char last;  /* last byte written */
	bool any;
};
void smtp_client_stuff_init(struct smtp_client_stuffer *st);
int smtp_client_stuff(struct smtp_client_stuffer *st, const char *p, size_t n, struct buf *out);
/* CRLF if the body did not end with one, then ".\r\n". */
int smtp_client_stuff_end(struct smtp_client_stuffer *st, struct buf *out);

#endif
