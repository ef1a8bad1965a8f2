/* smtp_reply.h - formatting SMTP replies (RFC 5321 4.2, RFC 2034 enhanced codes).
 *
 * The one place that turns {code, enhanced code, text} into reply lines. Internal
 * to src/smtp/: the server engine and tests use it; it does no I/O.
 */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

#include <stddef.h>

#include "util/buf.h"

/* Append a reply to out. text holds one or more lines separated by '\n'; all but
 * the last get "code-", the last "code ". enh ("2.0.0") is put after the code on
 * every line unless empty or NULL. Bytes outside printable ASCII are replaced by
 * '?', and each line is cut to TERN_REPLY_LINE_MAX octets including CRLF.
 * Returns 0 or a negative errno from the buffer (-ENOSPC, -ENOMEM). */
int smtp_reply_format(struct buf *out, int code, const char *enh, const char *text);

#endif
