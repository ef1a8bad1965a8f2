/* tls.c - TLS for ternd's sessions with OpenSSL 3 (see tls.h).
 *
 * Does: build one SSL_CTX per listener (TLS 1.2 and 1.3 only, a modern cipher list
 * with server preference, no compression, no renegotiation, no session tickets
 * state on disk), and drive non-blocking SSL_accept/SSL_read/SSL_write for one
 * socket. Does not: touch the event loop, the SMTP engine or the socket's lifetime
 * (server.c owns all three), verify client certificates, or log.
 */
#include "server/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/ev.h"

/* TLS 1.2 suites with forward secrecy and AEAD only (Mozilla "intermediate"). */
#define TLS_CIPHERS_12                                                                             \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

struct tls_ctx {
	SSL_CTX *ctx;
};

struct tls_conn {
	SSL *ssl;
	unsigned want;
	char err[160];
};

static void tls_err_string(char *out, size_t outsz)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(out, outsz, "%s", "");
	else
		ERR_error_string_n(e, out, outsz);
	ERR_clear_error();
}

int tls_ctx_new(struct tls_ctx **out, const char *cert, const char *key, char *err, size_t errsz)
{
	struct tls_ctx *t = calloc(1, sizeof *t);
	char msg[200];

	*out = NULL;
	if (t == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (t->ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	                                SSL_OP_NO_RENEGOTIATION);
	/* Client-initiated renegotiation is already off in OpenSSL 3 (it needs
	 * SSL_OP_ALLOW_CLIENT_RENEGOTIATION); NO_RENEGOTIATION refuses every kind. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(t->ctx, TLS_CIPHERS_12) != 1)
		goto fail;
	SSL_CTX_set_dh_auto(t->ctx, 1);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(t->ctx, (const unsigned char *)"ternd", 5);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1)
		goto fail;
	if (SSL_CTX_check_private_key(t->ctx) != 1)
		goto fail;
	*out = t;
	return 0;
fail:
	tls_err_string(msg, sizeof msg);
	snprintf(err, errsz, "%s / %s: %s", cert, key, msg[0] ? msg : "TLS setup failed");
	tls_ctx_free(t);
	return -EINVAL;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int tls_conn_new(struct tls_conn **out, struct tls_ctx *ctx, int fd)
{
	struct tls_conn *c = calloc(1, sizeof *c);

	*out = NULL;
	if (c == NULL)
		return -ENOMEM;
	c->ssl = SSL_new(ctx->ctx); /* holds its own reference to the SSL_CTX */
	if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
		ERR_clear_error();
		tls_conn_free(c);
		return -ENOMEM;
	}
	SSL_set_accept_state(c->ssl);
	*out = c;
	return 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	free(c);
}

/* Classify an SSL_* failure: -EAGAIN (and set want), 0 for end of stream, -EIO. */
static int tls_conn_fail(struct tls_conn *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		c->want = EV_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want = EV_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == EINTR) {
			c->want = EV_READ;
			return -EAGAIN;
		}
		tls_err_string(c->err, sizeof c->err);
		if (c->err[0] == '\0')
			snprintf(c->err, sizeof c->err, "%s", errno ? strerror(errno) : "EOF");
		return -EIO;
	default:
		tls_err_string(c->err, sizeof c->err);
		return -EIO;
	}
}

int tls_conn_handshake(struct tls_conn *c)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_accept(c->ssl);
	if (r == 1)
		return 0;
	r = tls_conn_fail(c, r);
	return r == -EAGAIN ? r : -EPROTO;
}

ssize_t tls_conn_read(struct tls_conn *c, void *p, size_t n)
{
	size_t got = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	if (SSL_read_ex(c->ssl, p, n, &got) == 1)
		return (ssize_t)got;
	r = SSL_get_error(c->ssl, 0);
	if (r == SSL_ERROR_SYSCALL && errno == 0)
		return 0; /* EOF without close_notify: treat as the end */
	return tls_conn_fail(c, 0);
}

ssize_t tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
	size_t done = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	if (SSL_write_ex(c->ssl, p, n, &done) == 1)
		return (ssize_t)done;
	r = tls_conn_fail(c, 0);
	return r == 0 ? -EIO : r;
}

bool tls_conn_has_pending(const struct tls_conn *c)
{
	return SSL_has_pending(c->ssl) == 1;
}

unsigned tls_conn_want(const struct tls_conn *c)
{
	return c->want;
}

void tls_conn_shutdown(struct tls_conn *c)
{
	ERR_clear_error();
	if (SSL_is_init_finished(c->ssl))
		SSL_shutdown(c->ssl);
	ERR_clear_error();
}

const char *tls_conn_version(const struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
	return SSL_get_cipher_name(c->ssl);
}

int tls_conn_bits(const struct tls_conn *c)
{
	return SSL_get_cipher_bits(c->ssl, NULL);
}

const char *tls_conn_error(const struct tls_conn *c)
{
	return c->err;
}
