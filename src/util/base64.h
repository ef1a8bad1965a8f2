/* base64.h - strict RFC 4648 base64 (standard alphabet, '=' padding required) for
 * SASL exchanges. No line breaks, no whitespace, no URL alphabet. No I/O. */
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

#endif
