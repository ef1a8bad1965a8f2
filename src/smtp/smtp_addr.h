/* smtp_addr.h - RFC 5321 path parsing (Reverse-path / Forward-path, 4.1.2).
 *
 * Parses "<local@domain>" with quoted local parts, address literals ([1.2.3.4],
 * [IPv6:...]), source routes (accepted and dropped), "<>" and "<Postmaster>".
 * UTF-8 (RFC 6531) only when the caller allows it. Does no I/O and no allocation.
 */
#ifndef TERN_SMTP_ADDR_H
#define TERN_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "util/limits.h"

struct smtp_addr {
	/* local part as it travels on the wire, quotes included if it had them */
	char local[TERN_LOCAL_PART_MAX + 1];
	/* domain or address literal with brackets; "" for <> and <Postmaster> */
	char domain[TERN_DOMAIN_MAX + 1];
	bool is_null;       /* <> */
	bool is_postmaster; /* <Postmaster> without a domain */
	bool is_utf8;       /* contains non-ASCII */
};

enum smtp_addr_err {
	SMTP_ADDR_OK = 0,
	SMTP_ADDR_SYNTAX = -1,     /* 501 5.1.3 (5.1.7 for senders) */
	SMTP_ADDR_TOO_LONG = -2,   /* 501 5.1.3 path/local/domain over the limit */
	SMTP_ADDR_UTF8 = -3,       /* 553 5.6.7 non-ASCII without SMTPUTF8 */
	SMTP_ADDR_NULL_RCPT = -4,  /* "<>" as a recipient */
};

/* Parse the path at p[0..n) (starting at '<'; leading spaces are the caller's).
 * On success *used is set to the bytes the path occupied (including '>').
 * allow_null: "<>" is valid (MAIL). allow_utf8: SMTPUTF8 was given.
 * lenient: accept a path without angle brackets (still stops at space). */
int smtp_addr_parse(struct smtp_addr *a, const char *p, size_t n, size_t *used, bool allow_null,
                    bool allow_utf8, bool lenient);

/* Write "local@domain" (or "" / "Postmaster") into out; returns length or -1 if it
 * does not fit. */
int smtp_addr_format(const struct smtp_addr *a, char *out, size_t outsz);

/* The local part with quoting removed (for mailbox lookup), lowercased if fold. */
int smtp_addr_unquote_local(const struct smtp_addr *a, char *out, size_t outsz);

#endif
