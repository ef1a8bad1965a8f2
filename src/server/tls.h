/* tls.h - the TLS connection type of ternd (OpenSSL 3), after Redis' connection
 * types: server.c reads and writes through tls_conn_read/tls_conn_write instead of
 * recv/send once a session is encrypted; nothing else in the daemon sees OpenSSL.
 * Non-blocking: every call returns -EAGAIN when it must wait for the socket, and
 * tls_conn_want() says for which direction. */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tls_ctx;  /* one per TLS listener: certificate, key, protocol settings */
struct tls_conn; /* one per encrypted session */

/* Load cert (PEM chain) and key. On error returns -EINVAL and a message in err. */
int tls_ctx_new(struct tls_ctx **out, const char *cert, const char *key, char *err,
                size_t errsz);
void tls_ctx_free(struct tls_ctx *t);

/* Start a server-side session on a connected non-blocking socket. */
int tls_conn_new(struct tls_conn **out, struct tls_ctx *ctx, int fd);
void tls_conn_free(struct tls_conn *c); /* no close_notify; the caller closes fd */
/* Progress the handshake: 0 done, -EAGAIN (see tls_conn_want), -EPROTO failed. */
int tls_conn_handshake(struct tls_conn *c);
/* > 0 bytes, 0 on a clean or unclean end of the stream, -EAGAIN, -EIO. */
ssize_t tls_conn_read(struct tls_conn *c, void *p, size_t n);
/* > 0 bytes written, -EAGAIN, -EIO. */
ssize_t tls_conn_write(struct tls_conn *c, const void *p, size_t n);
/* Decrypted bytes or unprocessed records held inside OpenSSL (epoll cannot see them). */
bool tls_conn_has_pending(const struct tls_conn *c);
/* EV_READ / EV_WRITE the last -EAGAIN waited for. */
unsigned tls_conn_want(const struct tls_conn *c);
/* Send close_notify (best effort, non-blocking). */
void tls_conn_shutdown(struct tls_conn *c);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384", secret bits; valid while c lives. */
const char *tls_conn_version(const struct tls_conn *c);
const char *tls_conn_cipher(const struct tls_conn *c);
int tls_conn_bits(const struct tls_conn *c);
/* The last OpenSSL error, for the log ("" if none). */
const char *tls_conn_error(const struct tls_conn *c);

#endif
