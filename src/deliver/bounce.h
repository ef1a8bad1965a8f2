/* bounce.h - build delivery status notifications (RFC 3464 multipart/report) for
 * failed or delayed recipients. Pure formatting: no I/O, no queue access. */
#ifndef TERN_BOUNCE_H
#define TERN_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

struct spool_envelope;

/* Append a complete DSN message (CRLF lines) to out for the recipients of env with
 * pick[i] set. delayed: a delay warning (Action: delayed) instead of a failure.
 * orig/orig_len: the original message (headers only are used when RET=HDRS or the
 * message is larger than full_max). */
int bounce_build(struct buf *out, const char *hostname, const struct spool_envelope *env,
                 const bool *pick, bool delayed, const char *orig, size_t orig_len,
                 size_t full_max, time_t now);

#endif
