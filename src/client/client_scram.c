/* client_scram.c - SCRAM-SHA-256 client computations with OpenSSL (PBKDF2, HMAC,
 * SHA-256). Does no I/O and keeps the password only for the duration of one call. */
#include "client/client_scram.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_codec.h"
#include "client/client_mime.h"
#include "util/buf.h"

int client_scram_start(struct client_scram *sc, const char *user, const char *nonce)
{
	char esc[256], rnd[33];
	size_t o = 0;
	memset(sc, 0, sizeof *sc);
	for (const char *p = user; *p != '\0'; p++) {
		const char *rep = *p == ',' ? "=2C" : *p == '=' ? "=3D" : NULL;
		size_t l = rep != NULL ? 3 : 1;
		if ((unsigned char)*p < 0x20 || o + l >= sizeof esc)
			return -EINVAL;
		memcpy(esc + o, rep != NULL ? rep : p, l);
		o += l;
	}
	esc[o] = '\0';
	if (o == 0)
		return -EINVAL;
	if (nonce == NULL) {
		client_random_hex(rnd, 32);
		nonce = rnd;
	}
	int w = snprintf(sc->client_first, sizeof sc->client_first, "n,,n=%s,r=%s", esc, nonce);
	if (w < 0 || (size_t)w >= sizeof sc->client_first)
		return -EINVAL;
	return 0;
}

/* Value of attribute "k=" in a SCRAM message, copied into out. */
static int client_scram_attr(const char *msg, char k, char *out, size_t outsz)
{
	const char *p = msg;
	while (p != NULL && *p != '\0') {
		if (p[0] == k && p[1] == '=') {
			const char *e = strchr(p, ',');
			size_t n = e != NULL ? (size_t)(e - p - 2) : strlen(p + 2);
			if (n + 1 > outsz)
				return -EPROTO;
			memcpy(out, p + 2, n);
			out[n] = '\0';
			return 0;
		}
		p = strchr(p, ',');
		if (p != NULL)
			p++;
	}
	return -EPROTO;
}

static void client_scram_hmac(const unsigned char *key, size_t klen, const void *p, size_t n,
                              unsigned char out[32])
{
	unsigned int ol = 32;
	HMAC(EVP_sha256(), key, (int)klen, p, n, out, &ol);
}

int client_scram_final(struct client_scram *sc, const char *pass, const char *server_first,
                       char *out, size_t outsz)
{
	char nonce[512], salt64[512], iters[32], without_proof[600];
	unsigned char salted[32], ckey[32], skey[32], stored[32], csig[32], proof[32];
	struct buf salt, proof64;
	int rc = -EPROTO;

	buf_init(&salt, 256);
	buf_init(&proof64, 128);
	const char *cnonce = strstr(sc->client_first, ",r=") + 3;
	if (client_scram_attr(server_first, 'r', nonce, sizeof nonce) < 0 ||
	    client_scram_attr(server_first, 's', salt64, sizeof salt64) < 0 ||
	    client_scram_attr(server_first, 'i', iters, sizeof iters) < 0)
		goto fail;
	if (strncmp(nonce, cnonce, strlen(cnonce)) != 0 || strlen(nonce) <= strlen(cnonce))
		goto fail;
	char *end = NULL;
	unsigned long it = strtoul(iters, &end, 10);
	if (end == iters || *end != '\0' || it < 1 || it > 1000000)
		goto fail;
	if (client_b64_decode(&salt, salt64, strlen(salt64)) < 0 || salt.len == 0)
		goto fail;
	if (PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), (unsigned char *)salt.ptr, (int)salt.len,
	                      (int)it, EVP_sha256(), 32, salted) != 1)
		goto fail;
	client_scram_hmac(salted, 32, "Client Key", 10, ckey);
	client_scram_hmac(salted, 32, "Server Key", 10, skey);
	SHA256(ckey, 32, stored);
	snprintf(without_proof, sizeof without_proof, "c=biws,r=%s", nonce);
	int w = snprintf(sc->auth_message, sizeof sc->auth_message, "%s,%s,%s",
	                 sc->client_first + 3, server_first, without_proof);
	if (w < 0 || (size_t)w >= sizeof sc->auth_message)
		goto fail;
	client_scram_hmac(stored, 32, sc->auth_message, (size_t)w, csig);
	for (int i = 0; i < 32; i++)
		proof[i] = ckey[i] ^ csig[i];
	client_scram_hmac(skey, 32, sc->auth_message, (size_t)w, sc->server_sig);
	if (client_b64_encode(&proof64, proof, 32, 0) < 0 || buf_cstr(&proof64) == NULL)
		goto fail;
	w = snprintf(out, outsz, "%s,p=%s", without_proof, proof64.ptr);
	if (w < 0 || (size_t)w >= outsz)
		goto fail;
	rc = 0;
fail:
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(ckey, sizeof ckey);
	OPENSSL_cleanse(skey, sizeof skey);
	buf_free(&salt);
	buf_free(&proof64);
	return rc;
}

int client_scram_verify(const struct client_scram *sc, const char *server_final)
{
	char v64[128];
	struct buf v;
	int rc = -EPROTO;
	buf_init(&v, 64);
	if (client_scram_attr(server_final, 'v', v64, sizeof v64) < 0)
		goto fail;
	if (client_b64_decode(&v, v64, strlen(v64)) < 0 || v.len != 32)
		goto fail;
	if (CRYPTO_memcmp(v.ptr, sc->server_sig, 32) == 0)
		rc = 0;
fail:
	buf_free(&v);
	return rc;
}
