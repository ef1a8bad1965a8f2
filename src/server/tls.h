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

struct tls_ctx;  /* one per TLS listener: certificates, keys, protocol settings */
struct tls_conn; /* one per encrypted session */
struct config;
struct config_listener;

/* A certificate to load and the SNI server names it is for. */
struct tls_keypair {
	const char *names; /* NULL for the default certificate (kp[0]); else lowercase
	                      patterns separated by one space: "mx.example.org *.example.org" */
	const char *cert;  /* PEM chain */
	const char *key;   /* PEM private key */
	const char *where; /* "FILE:LINE" prefix for errors, or NULL */
};

/* Load kp[0] (the default, sent when the client names no server or an unknown one)
 * and kp[1..n-1] (chosen by SNI: an exact name first, then a *.domain wildcard
 * matching one label; case-insensitive). All or nothing: on error returns -EINVAL
 * and "WHERE: [tls_cert_for NAMES: ]CERT / KEY: reason" in err. */
int tls_ctx_new(struct tls_ctx **out, const struct tls_keypair *kp, size_t n, char *err,
                size_t errsz);
/* The same for a configured listener's tls_cert/tls_key and tls_cert_for pairs;
 * source is the config file named in errors. */
int tls_ctx_for_listener(struct tls_ctx **out, const char *source, const struct config_listener *l,
                         char *err, size_t errsz);
/* Load every TLS listener's certificates and keys as ternd would, and drop them:
 * what `tern check-config` and `ternd --check` report (an unreadable file, bad PEM,
 * a key that does not match its certificate). 0, or -EINVAL with the listener and
 * tls_ctx_new's message in err. */
int tls_check_config(const struct config *c, char *err, size_t errsz);
/* Drop the owner's reference; sessions started on it keep theirs until they end. */
void tls_ctx_free(struct tls_ctx *t);
/* How many certificates (the default and the SNI ones). */
size_t tls_ctx_count(const struct tls_ctx *t);

/* Does pattern ("mx.example.org", "*.example.org"; lowercase) match the server name
 * (any case)? The wildcard is one whole, non-empty, left-most label. */
bool tls_sni_match(const char *pattern, const char *name);
/* Which of the lists (each: patterns separated by one space) is chosen for the
 * client's server name: the first with an exact match, else the first with a
 * wildcard match; -1 (the default certificate) for none or a NULL name. A single
 * trailing dot of name is ignored. */
int tls_sni_pick(const char *const *lists, size_t nlists, const char *name);

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
/* The SNI server name the client sent ("" if none); valid while c lives. */
const char *tls_conn_servername(const struct tls_conn *c);
/* The last OpenSSL error, for the log ("" if none). */
const char *tls_conn_error(const struct tls_conn *c);

#endif
