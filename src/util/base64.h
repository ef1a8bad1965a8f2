/* base64.h - RFC 4648 base64 (standard alphabet, '=' padding required). Strict by
 * default, for SASL exchanges: no line breaks, no whitespace, no URL alphabet, one
 * spelling per value. Each leniency (MIME bodies, see RFC 2045 6.8) is a named flag.
 * No I/O, no line wrapping on output. */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include <stddef.h>

/* Encoded length of n bytes, without the NUL. */
#define BASE64_ENC_LEN(n) ((((n) + 2) / 3) * 4)

/* Encode n bytes into out (NUL-terminated). Returns the length or -ENOSPC. */
int base64_encode(const void *in, size_t n, char *out, size_t outsz);
/* Decode exactly n characters. Returns the decoded length, -EINVAL for anything
 * that is not canonical base64, -ENOSPC if out is too small. */
int base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz);

/* Leniencies for base64_decode_opt. */
#define BASE64_SKIP_SPACE 0x1u     /* CR, LF, space and tab anywhere are skipped */
#define BASE64_ANY_PAD_BITS 0x2u   /* bits under the padding need not be zero */

/* The one decoder: base64_decode is base64_decode_opt(in, n, 0, out, outsz). With
 * out == NULL nothing is written and outsz is ignored: the input is only checked and
 * its decoded length returned. Errors as for base64_decode. */
int base64_decode_opt(const char *in, size_t n, unsigned flags, unsigned char *out,
                      size_t outsz);

#endif
