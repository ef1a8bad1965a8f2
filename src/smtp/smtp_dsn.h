/* smtp_dsn.h - RFC 3461 DSN parameters: RET and ENVID on MAIL, NOTIFY and ORCPT on
 * RCPT. Parsing only (no I/O); the server engine stores what it parses. */
#ifndef TERN_SMTP_DSN_H
#define TERN_SMTP_DSN_H

#include <stddef.h>

#define SMTP_DSN_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_DSN_ORCPT_MAX 500 /* RFC 3461 4.2 */

/* NOTIFY bits; values match the queue's SPOOL_NOTIFY_* */
#define SMTP_DSN_NEVER 1u
#define SMTP_DSN_SUCCESS 2u
#define SMTP_DSN_FAILURE 4u
#define SMTP_DSN_DELAY 8u

struct smtp_rcpt_dsn {
	unsigned notify;                      /* 0 = not given */
	char orcpt[SMTP_DSN_ORCPT_MAX + 1];   /* "rfc822;user@example.org" as sent, "" */
};

/* One MAIL parameter: 1 = a DSN parameter, stored; 0 = not DSN; -EINVAL = bad.
 * *ret: 1 FULL, 2 HDRS. envid must hold SMTP_DSN_ENVID_MAX + 1. */
int smtp_dsn_mail_param(const char *key, size_t klen, const char *val, size_t vlen, int *ret,
                        char *envid);
/* A list of MAIL parameters that must all be DSN ones (" RET=HDRS ENVID=x", as a
 * maildrop file carries them): 0, or -EINVAL. *ret and envid as above, 0 and "" on
 * entry. */
int smtp_dsn_mail_params(const char *p, size_t n, int *ret, char *envid);
/* The parameters after RCPT TO:<...>: 0, or -EINVAL (unknown, duplicate, bad). */
int smtp_dsn_rcpt_params(const char *p, size_t n, struct smtp_rcpt_dsn *out);

/* Formatting, for clients that pass DSN parameters on (tern send/sendmail). */

/* A NOTIFY value ("never", "success,delay"; any case) -> SMTP_DSN_* bits. 0, or
 * -EINVAL (unknown or repeated word, NEVER with another, empty). */
int smtp_dsn_notify_parse(const char *v, size_t n, unsigned *out);
/* SMTP_DSN_* bits -> "NEVER" or "SUCCESS,FAILURE,DELAY" (that order). 0, or -EINVAL
 * (no bits, NEVER with another) or -ENOSPC. */
int smtp_dsn_notify_format(unsigned bits, char *out, size_t outsz);
/* Printable US-ASCII (33..126, and space) -> xtext: '+', '=' and space become "+HH".
 * 0, or -EINVAL (a byte outside that range) or -ENOSPC (with the NUL). */
int smtp_dsn_xtext_encode(const char *raw, size_t n, char *out, size_t outsz);

#endif
