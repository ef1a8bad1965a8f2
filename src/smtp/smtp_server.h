/* smtp_server.h - the inbound SMTP protocol engine (RFC 5321 + extensions).
 *
 * The engine does no I/O: the glue feeds it the bytes a client sent and sends the
 * bytes it produces. It never reads a socket, writes a file, logs, sleeps or looks at
 * the clock. Decisions that belong elsewhere (is this a local user? store this
 * message) go out through the callbacks in struct smtp_server_ops; the slow one,
 * committing a message, is asynchronous: the engine stops consuming input until the
 * glue calls smtp_server_commit_done().
 *
 * Life of a session:
 *   s = smtp_server_new(&opts, &ops, ctx);
 *   smtp_server_greet(s);                 -> 220 in the output buffer
 *   loop: n = smtp_server_feed(s, p, len); (consumed n bytes; keep the rest)
 *         send smtp_server_output(s), then smtp_server_output_done(s, sent)
 *         if smtp_server_is_closing(s) and output empty: close the connection
 *   smtp_server_free(s);
 */
#ifndef TERN_SMTP_SERVER_H
#define TERN_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "smtp/smtp_addr.h"

struct smtp_server;

/* Engine states. Only smtp_server_enter_state() changes them. */
enum smtp_state {
	SMTP_ST_CONNECTED,   /* greeting not yet produced */
	SMTP_ST_READY,       /* greeted; no HELO/EHLO yet */
	SMTP_ST_HELO,        /* after HELO/EHLO or RSET: no transaction */
	SMTP_ST_MAIL,        /* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT,        /* at least one recipient accepted */
	SMTP_ST_DATA,        /* reading DATA content up to CRLF.CRLF */
	SMTP_ST_BDAT,        /* reading a BDAT chunk's octets */
	SMTP_ST_BDAT_WAIT,   /* between BDAT chunks (not LAST) */
	SMTP_ST_COMMIT,      /* message handed to the glue; waiting for commit_done */
	SMTP_ST_CLOSING,     /* QUIT, 421 or fatal error: no more input is read */
	SMTP_ST_STARTTLS,    /* 220 to STARTTLS given: the glue discards buffered input,
	                        does the handshake, then calls smtp_server_tls_started() */
	SMTP_ST_AUTH,        /* AUTH step handed to the glue: waiting for auth_answer */
	SMTP_ST_AUTH_LINE,   /* 334 sent: reading the client's base64 response line */
};

/* The glue's answer to one AUTH step (smtp_server_auth_answer). */
enum smtp_auth_result {
	SMTP_AUTH_CONTINUE,  /* send data as a 334 challenge, read a response */
	SMTP_AUTH_OK,        /* 235 2.7.0: authenticated */
	SMTP_AUTH_FAIL,      /* 535 5.7.8: bad credentials */
	SMTP_AUTH_MALFORMED, /* 501 5.5.2: the response makes no sense for the mechanism */
	SMTP_AUTH_TEMPFAIL,  /* 454 4.7.0: try later (throttled, lookup failure) */
};

/* Options a listener gives each session. Strings are borrowed and must outlive it. */
struct smtp_server_opts {
	const char *hostname;        /* our name in the greeting and replies */
	const char *greeting;        /* text after "220 <hostname> "; NULL = "ESMTP tern" */
	uint64_t max_msg_size;       /* SIZE; body above it: read to the end, then 552 */
	unsigned max_rcpts;          /* per transaction; above: 452 4.5.3 */
	unsigned max_errors;         /* protocol errors before 421 4.7.0 and close */
	bool lenient_lf;             /* accept bare LF as a line end (smuggling risk) */
	bool require_helo;           /* MAIL before HELO/EHLO: 503 5.5.1 */
	bool vrfy_enabled;           /* off: VRFY answers 252 */
	bool expn_enabled;           /* off: EXPN answers 502 5.5.1 ... disabled */
	bool strict_sync;            /* bytes already sent after DATA (before our 354):
	                                554 5.5.0 and close (RFC 2920 3.1) */
	bool starttls;               /* STARTTLS offered (a certificate is configured) */
	bool tls_active;             /* the session is already encrypted (implicit TLS) */
	bool require_tls;            /* MAIL/AUTH before STARTTLS: 530 5.7.0 */
	bool auth;                   /* AUTH offered (over TLS, or auth_plaintext) */
	bool auth_plaintext;         /* AUTH also on an unencrypted session */
	bool require_auth;           /* submission: MAIL before AUTH: 530 5.7.0 */
	const char *auth_mechs;      /* space-separated, e.g. "PLAIN LOGIN SCRAM-SHA-256" */
};

/* A reply decided by a callback. text must not contain CR or LF; for a multi-line
 * reply, lines are separated by '\n' inside text and the engine formats them. */
struct smtp_reply {
	int code;          /* 0 = accept with the engine's default reply */
	char enh[16];      /* "5.1.1"; empty for none */
	char text[400];
};

/* Transaction parameters from MAIL FROM (ESMTP parameters, RFC 1870/6152/6531/3030). */
struct smtp_mail_params {
	uint64_t size;          /* SIZE=, 0 if absent */
	enum { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME } body;
	bool smtputf8;
	int dsn_ret;            /* RFC 3461 RET: 0 none, 1 FULL, 2 HDRS */
	char dsn_envid[101];    /* RFC 3461 ENVID (xtext as sent), "" if none */
};

/* Callbacks from the engine into the glue. All of them must return promptly. */
struct smtp_server_ops {
	/* MAIL FROM accepted syntactically; r->code = 0 to accept. */
	void (*mail)(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
	             struct smtp_reply *r);
	/* RCPT TO: r->code = 0 to accept (the engine adds it to the envelope). */
	void (*rcpt)(void *ctx, const struct smtp_addr *to, struct smtp_reply *r);
	/* VRFY (string as typed) and EXPN; r->code must be set (250/251/252/550/553). */
	void (*vrfy)(void *ctx, const char *arg, size_t n, struct smtp_reply *r);
	void (*expn)(void *ctx, const char *arg, size_t n, struct smtp_reply *r);
	/* Start of message content (DATA after 354 is decided, or the first BDAT).
	 * Return 0, or a negative error: the engine then answers 451 4.3.0 (DATA) and
	 * discards the content. from/rcpts give the accepted envelope. */
	int (*data_begin)(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
	                  const struct smtp_addr *rcpts, size_t nrcpts);
	/* Decoded message bytes (dot-unstuffed, CRLF line ends). Return 0 or negative:
	 * an error is remembered and the end of the message gets 451 4.3.0. */
	int (*data_write)(void *ctx, const char *p, size_t n);
	/* End of content, every check passed: make it durable, then call
	 * smtp_server_commit_done(). May call it before returning. */
	void (*data_commit)(void *ctx);
	/* Content discarded (too big, write error, RSET/QUIT/close mid-BDAT, ...). */
	void (*data_abort)(void *ctx);
	/* One AUTH step. mech is the upper-case mechanism (one of opts.auth_mechs);
	 * resp/n the decoded client response, has_resp false for "AUTH MECH" without an
	 * initial response. The glue answers with smtp_server_auth_answer(), now or
	 * later; resp is valid only during the call. */
	void (*auth)(void *ctx, const char *mech, const unsigned char *resp, size_t n,
	             bool has_resp);
	/* The exchange ended without an answer being due ('*', bad base64, overlong
	 * line, session closed): forget its state. */
	void (*auth_abort)(void *ctx);
};

struct smtp_server *smtp_server_new(const struct smtp_server_opts *opts,
                                    const struct smtp_server_ops *ops, void *ctx);
void smtp_server_free(struct smtp_server *s);

/* Produce the 220 greeting (or, with code 421/554, a refusal that closes). */
void smtp_server_greet(struct smtp_server *s);
void smtp_server_refuse(struct smtp_server *s, const char *enh, const char *text); /* 421 + close */
/* The client talked when it had to wait (before the greeting): 554 5.5.0 + close. */
void smtp_server_sync_error(struct smtp_server *s);

/* Feed client bytes. Returns the number consumed (<= n); the glue keeps the rest and
 * feeds it again after commit_done. Never negative: protocol errors become replies. */
size_t smtp_server_feed(struct smtp_server *s, const char *p, size_t n);

/* Result of data_commit: 0 -> "250 2.0.0 Ok: queued as <qid>", else 451/452. */
void smtp_server_commit_done(struct smtp_server *s, int err, const char *qid);
/* The exact bytes commit_done(s, 0, qid) will output, into out (for a glue that
 * sends them early from another thread and then drops them from the output).
 * Returns their length, or 0 if they do not fit in outsz or s is not committing. */
size_t smtp_server_commit_ok_text(const struct smtp_server *s, const char *qid, char *out,
                                  size_t outsz);
/* Result of data_commit when the glue has its own refusal (r->code 4xx or 5xx, e.g.
 * the next hop's verdict passed on); anything else becomes 451 4.3.0. */
void smtp_server_commit_reply(struct smtp_server *s, const struct smtp_reply *r);

/* Deadline passed: 421 4.4.2 and close. Shutdown: 421 4.3.2 and close. */
void smtp_server_timeout(struct smtp_server *s);
void smtp_server_shutdown(struct smtp_server *s);

/* Output the glue must send, in order. */
const char *smtp_server_output(const struct smtp_server *s, size_t *len);
void smtp_server_output_done(struct smtp_server *s, size_t n);

/* Answer the pending AUTH step (state SMTP_ST_AUTH); data is the challenge for
 * SMTP_AUTH_CONTINUE (raw bytes, the engine base64-encodes them). */
void smtp_server_auth_answer(struct smtp_server *s, enum smtp_auth_result res,
                             const void *data, size_t n);
bool smtp_server_is_authenticated(const struct smtp_server *s);
/* STARTTLS was answered with 220: the glue must send the output, drop every input
 * byte it holds (RFC 3207 4.2, CVE-2011-0411), do the handshake and then call
 * smtp_server_tls_started(), or close. */
bool smtp_server_wants_tls(const struct smtp_server *s);
/* The handshake is done: the session starts over (no HELO, no AUTH, no transaction)
 * and STARTTLS is no longer offered. */
void smtp_server_tls_started(struct smtp_server *s);

enum smtp_state smtp_server_state(const struct smtp_server *s);
bool smtp_server_is_closing(const struct smtp_server *s);
/* In SMTP_ST_COMMIT, SMTP_ST_AUTH or SMTP_ST_STARTTLS: input is not consumed. */
bool smtp_server_is_waiting(const struct smtp_server *s);
/* Protocol word for the Received header: SMTP (HELO), ESMTP (EHLO), with S for
 * TLS and A for AUTH (RFC 3848: ESMTPS, ESMTPA, ESMTPSA). */
const char *smtp_server_protocol(const struct smtp_server *s);
/* RFC 3461 NOTIFY/ORCPT given with accepted recipient i of the current transaction
 * (smtp/smtp_dsn.h), or NULL. Valid until the transaction ends. */
struct smtp_rcpt_dsn;
const struct smtp_rcpt_dsn *smtp_server_rcpt_dsn(const struct smtp_server *s, size_t i);
/* HELO/EHLO argument ("" if none yet). */
const char *smtp_server_helo(const struct smtp_server *s);

#endif
