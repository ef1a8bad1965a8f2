/* client_codec.h - the encodings the tern client writes: base64 (RFC 4648 / RFC 2045
 * 6.8), quoted-printable (RFC 2045 6.7) and RFC 2047 encoded-words, plus UTF-8 checks.
 * Pure functions appending to bounded buffers; no I/O, no MIME structure (see
 * client_mime.h). Only base64 is decoded (AUTH challenges, tests). */
#ifndef TERN_CLIENT_CODEC_H
#define TERN_CLIENT_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Encode n bytes. wrap = 0: one line, no CRLF; wrap > 0 (a multiple of 4, e.g. 76):
 * lines of at most wrap characters, each ended by CRLF. 0 or -ENOSPC/-ENOMEM. */
int client_b64_encode(struct buf *out, const void *p, size_t n, size_t wrap);
/* Decode and append (util/base64.c with the MIME leniencies: CR, LF, space and tab
 * are skipped, bits under the padding are ignored). 0, or -EINVAL on any other bad
 * input (out is left as it was), -ENOSPC/-ENOMEM. */
int client_b64_decode(struct buf *out, const char *p, size_t n);

/* Quoted-printable body encoding. Input line ends may be LF or CRLF; output lines end
 * in CRLF and are at most 76 octets (soft breaks "=" CRLF). A lone CR becomes =0D,
 * trailing space/tab is encoded. */
int client_qp_encode(struct buf *out, const char *p, size_t n);

/* Header text (unstructured, e.g. Subject): printable ASCII is copied (folded at
 * spaces when long); anything else becomes UTF-8 encoded-words ("=?UTF-8?Q?...?=" or
 * "?B?", whichever is shorter), at most 75 octets each, folded with CRLF SP, never
 * splitting a UTF-8 character. col is the column the value starts at. -EILSEQ when
 * the text is not valid UTF-8 or holds control characters. */
int client_rfc2047_encode(struct buf *out, const char *p, size_t n, size_t col);
/* Same for a display name (RFC 5322 phrase): ASCII is copied, or quoted when it holds
 * specials; non-ASCII becomes B encoded-words. */
int client_rfc2047_phrase(struct buf *out, const char *p, size_t n, size_t col);

bool client_is_ascii(const char *p, size_t n);
/* Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
bool client_is_utf8(const char *p, size_t n);

#endif
