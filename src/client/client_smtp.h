/* client_smtp.h - the tern client's SMTP session over a blocking TCP socket with
 * optional OpenSSL TLS (STARTTLS or implicit): greeting, EHLO capabilities, AUTH
 * (SCRAM-SHA-256, PLAIN, LOGIN), one mail transaction (PIPELINING, 8BITMIME,
 * SMTPUTF8, SIZE), QUIT, and the "C: "/"S: " dialogue trace of `tern send -v`.
 * It does not compose messages (client_mime.h) nor decide exit policy beyond
 * recording a sysexits code with a one-line error for the caller to print. */
#ifndef TERN_CLIENT_SMTP_H
#define TERN_CLIENT_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "client/client_reply.h"
#include "util/buf.h"

enum client_tls_mode {
	CLIENT_TLS_AUTO,     /* STARTTLS when the server offers it, else plain */
	CLIENT_TLS_NONE,     /* never */
	CLIENT_TLS_STARTTLS, /* required: fail when not offered */
	CLIENT_TLS_IMPLICIT, /* TLS from the first byte (port 465) */
};

struct client_smtp_opts {
	const char *host;
	const char *port;
	enum client_tls_mode tls;
	bool insecure;          /* skip certificate verification */
	const char *helo;       /* NULL: our host name */
	const char *auth_user;  /* NULL: no AUTH */
	const char *auth_pass;  /* borrowed; the caller wipes it */
	bool verbose;           /* trace the dialogue to trace (stderr when NULL) */
	FILE *trace;
	int timeout_s;          /* per read/write; 0: 300 s (RFC 5321 4.5.3.2) */
};

struct ssl_st;
struct ssl_ctx_st;

struct client_smtp {
	int fd;
	struct ssl_ctx_st *ctx;
	struct ssl_st *ssl;
	struct buf in;              /* received bytes not yet consumed */
	char host[256];
	bool insecure;
	bool verbose;
	FILE *trace;
	bool loopback;              /* peer address is loopback */
	/* from the last EHLO */
	bool esmtp, has_starttls, has_8bitmime, has_smtputf8, has_pipelining, has_size, has_dsn;
	bool has_auth, auth_plain, auth_login, auth_scram;
	unsigned long long size_max;
	struct client_reply reply;  /* the last reply read */
	int exit_code;              /* sysexits code of the last failure */
	char err[1024];             /* "RCPT TO:<x@y> failed: 550 5.1.1 no such user" */
};

/* RFC 3461 parameters for one transaction, sent when the server offers DSN (a
 * server that does not gets none of them: its own defaults apply, and -v says so). */
struct client_dsn {
	int ret;                 /* 0: none, 1: RET=FULL, 2: RET=HDRS */
	const char *envid;       /* ENVID, already xtext; NULL or "": none */
	unsigned notify;         /* SMTP_DSN_* bits for every recipient; 0: none */
	const unsigned *rnotify; /* per recipient, used where non-zero; NULL: none */
	char *const *rorcpt;     /* per recipient ORCPT "rfc822;xtext"; NULL or "": none */
};

/* What dsn gives MAIL (" RET=HDRS ENVID=x") and recipient i (" NOTIFY=FAILURE
 * ORCPT=rfc822;x"), as they go on the wire and into a maildrop file; "" when it
 * gives nothing (or dsn is NULL). out holds CLIENT_DSN_PARAMS_MAX. */
#define CLIENT_DSN_PARAMS_MAX 600
void client_dsn_mail_params(const struct client_dsn *d, char *out, size_t outsz);
void client_dsn_rcpt_params(const struct client_dsn *d, size_t i, char *out, size_t outsz);

void client_smtp_init(struct client_smtp *s);
/* Connect, TLS as asked, greeting, EHLO (HELO fallback), STARTTLS, AUTH. */
int client_smtp_open(struct client_smtp *s, const struct client_smtp_opts *o);
/* MAIL, RCPTs, DATA, message (CRLF text; dot-stuffed here), end of data. dsn may
 * be NULL. */
int client_smtp_transaction(struct client_smtp *s, const char *from, char *const *rcpts,
                            size_t nrcpts, const char *msg, size_t len, bool body_8bit,
                            bool smtputf8, const struct client_dsn *dsn);
/* QUIT and read 221; errors are ignored. */
void client_smtp_quit(struct client_smtp *s);
void client_smtp_close(struct client_smtp *s); /* closes and frees; safe twice */

/* Lower level, used by `tern chat` as well. */
int client_smtp_connect(struct client_smtp *s, const char *host, const char *port, int timeout_s);
int client_smtp_tls_start(struct client_smtp *s);
int client_smtp_write(struct client_smtp *s, const void *p, size_t n);
/* One line without its line end (CR LF or LF) into line (NUL-terminated). */
int client_smtp_read_line(struct client_smtp *s, char *line, size_t linesz, size_t *len);
/* Read one whole reply into s->reply, tracing each line when verbose. */
int client_smtp_read_reply(struct client_smtp *s);
/* Send "line" CRLF (traced as shown, e.g. "AUTH PLAIN ****"; NULL: as sent). */
int client_smtp_send_line(struct client_smtp *s, const char *line, const char *shown);
/* line = "AUTH PLAIN " + base64("\0user\0pass") (RFC 4616), NUL-terminated; line is
 * reset first. The clear-text copy made on the way is wiped; wiping line is the
 * caller's job. 0 or -ENOMEM/-ENOSPC. */
int client_smtp_plain_line(struct buf *line, const char *user, const char *pass);
/* Parse an EHLO reply's keywords into the has_* fields. */
void client_smtp_parse_ehlo(struct client_smtp *s, const struct client_reply *r);
/* Split "host", "host:port", "[v6]:port"; port left as def when absent. */
int client_smtp_split_server(const char *spec, char *host, size_t hostsz, char *port,
                             size_t portsz, const char *def);
/* Append msg (CRLF lines) dot-stuffed, without the final ".". */
int client_smtp_dot_stuff(const char *msg, size_t len, struct buf *out);

#endif
