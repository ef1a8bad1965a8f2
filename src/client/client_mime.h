/* client_mime.h - building and reading RFC 5322 / MIME messages for the tern client:
 * address lists, the composer behind `tern send` (headers, text/html/attachment
 * parts, transfer encodings), MIME type guessing, and the few header operations
 * `tern sendmail -t` and `tern send --message` need (find addresses, drop Bcc).
 * No I/O except client_attach_load (reads one file); never talks SMTP. */
#ifndef TERN_CLIENT_MIME_H
#define TERN_CLIENT_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

/* A growable list of owned strings. */
struct client_strv {
	char **v;
	size_t n;
};
int client_strv_push(struct client_strv *sv, const char *s, size_t n);
void client_strv_free(struct client_strv *sv);

/* Split "a@x, Ann <b@y>, \"Doe, J\" <c@z>" at top-level commas (not inside quotes,
 * angle brackets or comments); RFC 5322 groups ("list: a@x, b@y;") are flattened.
 * Entries are trimmed and pushed as written. */
int client_addr_split(const char *s, size_t n, struct client_strv *out);
/* The addr-spec of one entry: inside <...> when present, else the entry without
 * comments. -EINVAL when empty, too long, or holding spaces/control characters/<>
 * or no '@' (allow_local: a bare local part like "root" is accepted). */
int client_addr_spec(const char *entry, char *out, size_t outsz, bool allow_local);

struct client_attach {
	char *name;     /* file name shown to the recipient (basename) */
	char *data;
	size_t len;
	const char *type; /* static MIME type string */
};
/* Read a file into an attachment (type guessed). -ENOENT etc. from the file system. */
int client_attach_load(struct client_attach *a, const char *path);
void client_attach_free(struct client_attach *a);
/* Type from magic bytes, then from the extension; text/plain for UTF-8 text
 * without NUL; else application/octet-stream. */
const char *client_mime_guess_type(const char *name, const char *data, size_t len);

struct client_compose {
	const char *from;               /* header text: "Ann <a@x>" or "a@x" */
	struct client_strv to, cc;      /* header text entries; Bcc is never written */
	const char *subject;            /* UTF-8; NULL: no Subject */
	const char *body;               /* text part (UTF-8), may be NULL */
	size_t body_len;
	const char *html;               /* html part, NULL when none */
	size_t html_len;
	struct client_strv headers;     /* extra "Name: value" lines */
	struct client_attach *att;
	size_t natt;
	bool allow_8bit;                /* server offers 8BITMIME */
	time_t now;                     /* for Date; 0 = time(NULL) */
	const char *msgid_domain;       /* right side of Message-ID; NULL = hostname */
	const char *boundary;           /* boundary prefix for tests; NULL = random */
};

/* Write the whole message (CRLF line ends, not dot-stuffed) to out. *used_8bit tells
 * the caller to add BODY=8BITMIME. -EINVAL for a bad --header, -EILSEQ for header
 * text that is not UTF-8. */
int client_compose_build(const struct client_compose *c, struct buf *out, bool *used_8bit);
void client_compose_free(struct client_compose *c); /* frees the strvs and attachments */

/* Message utilities on raw RFC 5322 text. */
/* Convert LF or lone CR line ends to CRLF, make sure the text ends with CRLF. */
int client_msg_to_crlf(const char *p, size_t n, struct buf *out);
/* Offset of the body (just past the blank line ending the header), or n. */
size_t client_msg_header_len(const char *p, size_t n);
/* Push the addr-specs of every header field called name (To, Cc, Bcc...) to out. */
int client_msg_header_addrs(const char *p, size_t n, const char *name, struct client_strv *out);
/* Is there a header field called name? When val is not NULL, copy its unfolded value. */
bool client_msg_has_header(const char *p, size_t n, const char *name, char *val, size_t valsz);
/* Remove every header field called name (with its continuation lines), in place. */
void client_msg_remove_header(struct buf *msg, const char *name);
/* Longest line (without CRLF) and whether any byte is >= 0x80. */
void client_msg_scan(const char *p, size_t n, size_t *longest, bool *has_8bit);

/* Fill out with "Tue, 02 Jan 2024 15:04:05 +0100" for t (local time). */
void client_rfc5322_date(time_t t, char *out, size_t outsz);
/* "<20240102150405.1234.a1b2c3d4@domain>" */
void client_message_id(const char *domain, char *out, size_t outsz);
/* Random hex of n characters (OpenSSL RAND, falling back to /dev/urandom). */
void client_random_hex(char *out, size_t n);

#endif
