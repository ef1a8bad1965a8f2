/* client_reply.h - SMTP replies as the client sees them: a line-by-line parser for
 * (multi-line) replies, a one-line plain-language explanation of a reply code and
 * enhanced status code (RFC 5321 4.2, RFC 3463), and the sysexits(3) mapping the
 * tern command uses. No I/O: the session (client_smtp.h) splits lines and feeds them. */
#ifndef TERN_CLIENT_REPLY_H
#define TERN_CLIENT_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/limits.h"

#define CLIENT_REPLY_LINES_MAX 64   /* EHLO replies are the longest; real ones ~15 */
#define CLIENT_REPLY_TEXT_MAX 4096  /* joined text kept for messages and EHLO keywords */

struct client_reply {
	int code;                         /* 200..599; 0 before the first line */
	char enh[16];                     /* "2.1.0" from the first line, or "" */
	char text[CLIENT_REPLY_TEXT_MAX]; /* line texts (after "250-"/"250 "), '\n'-joined,
	                                     control characters replaced by '?' */
	size_t text_len;
	size_t nlines;
	bool done;                        /* the last line ("250 ...") was seen */
};

void client_reply_init(struct client_reply *r);
/* Feed one line without its CRLF. Returns 0 (check r->done) or -EPROTO (not a reply
 * line, code changes between lines, reply after done) or -EMSGSIZE (line longer than
 * RFC 5321 allows, or too many lines). */
int client_reply_feed_line(struct client_reply *r, const char *line, size_t n);
/* "550 5.1.1 no such user" (multi-line texts joined by " / "); always NUL-terminated. */
void client_reply_summary(const struct client_reply *r, char *out, size_t outsz);

/* One-line explanation, e.g. "OK: sender accepted". verb is the command the reply
 * answers ("MAIL", "RCPT", "DATA", "." for end of data, NULL for the greeting). */
void client_reply_explain(int code, const char *enh, const char *verb, char *out, size_t outsz);

/* sysexits for a failed reply: 4xx -> EX_TEMPFAIL, 5xx -> EX_UNAVAILABLE, anything
 * else unexpected -> EX_PROTOCOL. */
int client_exit_for_reply(int code);
/* sysexits for a negative errno from the client: network errors -> EX_TEMPFAIL,
 * -ENOENT -> EX_NOINPUT, -EINVAL/-EILSEQ -> EX_DATAERR, -EPROTO -> EX_PROTOCOL... */
int client_exit_for_errno(int err);

#endif
