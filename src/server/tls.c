/* tls.c - TLS for ternd's sessions with OpenSSL 3 (see tls.h).
 *
 * Does: build one SSL_CTX per certificate of a listener (TLS 1.2 and 1.3 only, a
 * modern cipher list with server preference, no compression, no renegotiation, no
 * session tickets state on disk), pick the certificate by the client's SNI server
 * name (tls_cert_for), and drive non-blocking SSL_accept/SSL_read/SSL_write for one
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
#include <strings.h>

#include "policy/config.h"
#include "server/ev.h"

/* TLS 1.2 suites with forward secrecy and AEAD only (Mozilla "intermediate"). */
#define TLS_CIPHERS_12                                                                             \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

struct tls_ctx {
	SSL_CTX *ctx;  /* the default certificate: every session starts on it */
	SSL_CTX **sni; /* the tls_cert_for ones, in configuration order */
	char **names;  /* names[i]: sni[i]'s patterns, separated by one space */
	size_t nsni;
	unsigned refs; /* the owner's, plus one per tls_conn: the servername
	                  callback may run after a SIGHUP replaced this set. Loop
	                  thread only, like every tls_* call. */
};

struct tls_conn {
	SSL *ssl;
	struct tls_ctx *ctx; /* a reference */
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

/* ---- server name matching (no OpenSSL, unit-tested) ---- */

/* Does the pattern (lowercase: "mx.example.org" or "*.example.org") match the first
 * n bytes of name (any case)? A wildcard stands for exactly one non-empty label. */
static bool tls_sni_match_n(const char *pattern, size_t plen, const char *name, size_t n)
{
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		size_t sfx = plen - 1; /* ".example.org" */

		if (n <= sfx || strncasecmp(name + n - sfx, pattern + 1, sfx) != 0)
			return false;
		return memchr(name, '.', n - sfx) == NULL;
	}
	return plen == n && strncasecmp(pattern, name, n) == 0;
}

bool tls_sni_match(const char *pattern, const char *name)
{
	return tls_sni_match_n(pattern, strlen(pattern), name, strlen(name));
}

/* Does one of the space-separated patterns match? Exact names only, or wildcards only. */
static bool tls_sni_list_match(const char *list, const char *name, size_t n, bool wild)
{
	while (*list != '\0') {
		size_t m = strcspn(list, " ");

		if ((list[0] == '*') == wild && tls_sni_match_n(list, m, name, n))
			return true;
		list += m;
		list += *list == ' ';
	}
	return false;
}

int tls_sni_pick(const char *const *lists, size_t nlists, const char *name)
{
	size_t n;

	if (name == NULL)
		return -1;
	n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--; /* "mx.example.org." is mx.example.org */
	if (n == 0 || memchr(name, ' ', n) != NULL)
		return -1;
	/* an exact name wins over a wildcard, wherever each is listed */
	for (int wild = 0; wild < 2; wild++) {
		for (size_t i = 0; i < nlists; i++) {
			if (tls_sni_list_match(lists[i], name, n, wild != 0))
				return (int)i;
		}
	}
	return -1;
}

/* ---- contexts ---- */

/* An SSL_CTX with our protocol settings and one certificate. On error -EINVAL and
 * the OpenSSL reason in msg. */
static int tls_ssl_ctx_new(SSL_CTX **out, const char *cert, const char *key, char *msg,
                           size_t msgsz)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	*out = NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	                             SSL_OP_NO_RENEGOTIATION);
	/* Client-initiated renegotiation is already off in OpenSSL 3 (it needs
	 * SSL_OP_ALLOW_CLIENT_RENEGOTIATION); NO_RENEGOTIATION refuses every kind. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1)
		goto fail;
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ternd", 5);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	*out = ctx;
	return 0;
fail:
	tls_err_string(msg, msgsz);
	if (msg[0] == '\0')
		snprintf(msg, msgsz, "TLS setup failed");
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/* ClientHello carried (or lacked) a server name: switch to its certificate. Runs
 * inside SSL_accept on the loop thread; arg is the tls_ctx the session holds. */
static int tls_on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_ctx *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	int i = tls_sni_pick((const char *const *)t->names, t->nsni, name);

	if (i >= 0 && SSL_set_SSL_CTX(ssl, t->sni[i]) == NULL) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK; /* no or unknown name: the default certificate */
}

int tls_ctx_new(struct tls_ctx **out, const struct tls_keypair *kp, size_t n, char *err,
                size_t errsz)
{
	struct tls_ctx *t = NULL;
	const char *where;
	char msg[200];
	size_t i = 0;

	*out = NULL;
	if (n == 0 || kp[0].names != NULL) {
		snprintf(err, errsz, "no default certificate");
		return -EINVAL;
	}
	t = calloc(1, sizeof *t);
	if (t == NULL)
		goto nomem;
	t->refs = 1;
	if (n > 1 && ((t->sni = calloc(n - 1, sizeof *t->sni)) == NULL ||
	              (t->names = calloc(n - 1, sizeof *t->names)) == NULL))
		goto nomem;
	for (i = 0; i < n; i++) {
		if (i > 0) {
			if (kp[i].names == NULL || kp[i].names[0] == '\0') {
				snprintf(msg, sizeof msg, "no server name");
				goto fail;
			}
			t->names[i - 1] = strdup(kp[i].names);
			if (t->names[i - 1] == NULL)
				goto nomem;
			t->nsni = i;
		}
		if (tls_ssl_ctx_new(i == 0 ? &t->ctx : &t->sni[i - 1], kp[i].cert, kp[i].key, msg,
		                    sizeof msg) < 0)
			goto fail;
	}
	if (t->nsni > 0) {
		SSL_CTX_set_tlsext_servername_callback(t->ctx, tls_on_servername);
		SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
	}
	*out = t;
	return 0;
nomem:
	snprintf(err, errsz, "out of memory");
	tls_ctx_free(t);
	return -ENOMEM;
fail:
	/* "FILE:LINE: tls_cert_for NAMES: CERT / KEY: reason" */
	where = kp[i].where != NULL ? kp[i].where : "";
	snprintf(err, errsz, "%s%s%s%s%s%s / %s: %s", where, where[0] ? ": " : "",
	         kp[i].names ? "tls_cert_for " : "", kp[i].names ? kp[i].names : "",
	         kp[i].names ? ": " : "", kp[i].cert, kp[i].key, msg);
	tls_ctx_free(t);
	return -EINVAL;
}

int tls_ctx_for_listener(struct tls_ctx **out, const char *source, const struct config_listener *l,
                         char *err, size_t errsz)
{
	struct tls_keypair kp[CONFIG_TLS_PAIRS_MAX + 1];
	char(*where)[600] = NULL;
	size_t n = l->ntls_pairs < CONFIG_TLS_PAIRS_MAX ? l->ntls_pairs : CONFIG_TLS_PAIRS_MAX;
	int rc;

	*out = NULL;
	where = calloc(n + 1, sizeof *where);
	if (where == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	if (l->tls_cert_line > 0)
		snprintf(where[0], sizeof where[0], "%s:%u: tls_cert", source, l->tls_cert_line);
	kp[0] = (struct tls_keypair){NULL, l->tls_cert, l->tls_key, where[0]};
	for (size_t i = 0; i < n; i++) {
		const struct config_tls_pair *p = &l->tls_pairs[i];

		snprintf(where[i + 1], sizeof where[0], "%s:%u", source, p->line);
		kp[i + 1] = (struct tls_keypair){p->names, p->cert, p->key, where[i + 1]};
	}
	rc = tls_ctx_new(out, kp, n + 1, err, errsz);
	free(where);
	return rc;
}

int tls_check_config(const struct config *c, char *err, size_t errsz)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct config_listener *l = &c->listeners[i];
		struct tls_ctx *t;
		char msg[700];
		if (l->tls == CONFIG_TLS_NONE)
			continue;
		if (tls_ctx_for_listener(&t, c->source, l, msg, sizeof msg) < 0) {
			snprintf(err, errsz, "%s (listener %s)", msg, l->name);
			return -EINVAL;
		}
		tls_ctx_free(t);
	}
	return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	SSL_CTX_free(t->ctx);
	for (size_t i = 0; i < t->nsni; i++) {
		SSL_CTX_free(t->sni[i]);
		free(t->names[i]);
	}
	free(t->sni);
	free(t->names);
	free(t);
}

size_t tls_ctx_count(const struct tls_ctx *t)
{
	return t == NULL ? 0 : 1 + t->nsni;
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
	c->ctx = ctx;
	ctx->refs++;
	SSL_set_accept_state(c->ssl);
	*out = c;
	return 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	tls_ctx_free(c->ctx);
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

const char *tls_conn_servername(const struct tls_conn *c)
{
	const char *n = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);

	return n != NULL ? n : "";
}

const char *tls_conn_error(const struct tls_conn *c)
{
	return c->err;
}
