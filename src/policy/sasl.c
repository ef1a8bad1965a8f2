/* sasl.c - PLAIN, LOGIN and SCRAM-SHA-256 server mechanisms and password checks
 * (see sasl.h). OpenSSL provides SHA-256, HMAC, PBKDF2 and randomness; libcrypt
 * provides crypt_r. Does no I/O and never keeps a password longer than the sasl
 * object (which wipes it when freed).
 * SCRAM: no channel binding (gs2 "n" or "y" only; "p=" is refused), the authzid must
 * be empty or equal to the user, user names are not SASLprep-normalised. A user
 * without a SCRAM secret (or unknown) gets a made-up salt and fails at the proof, so
 * the exchange does not reveal which names exist. */
#include "policy/sasl.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"

enum sasl_mech { SASL_PLAIN, SASL_LOGIN, SASL_SCRAM };

struct sasl {
	enum sasl_mech mech;
	int step;
	char user[SASL_USER_MAX + 1];
	char pass[SASL_PASS_MAX + 1];
	/* SCRAM */
	char client_first_bare[700];
	char server_first[400];
	char nonce[200];          /* client nonce + server nonce */
	unsigned char stored_key[32];
	unsigned char server_key[32];
	bool have_secret;
	char gs2[4];              /* "n,," or "y,," */
};

struct sasl *sasl_new(const char *mech)
{
	struct sasl *sa;

	sa = calloc(1, sizeof *sa);
	if (sa == NULL)
		return NULL;
	if (strcmp(mech, "PLAIN") == 0)
		sa->mech = SASL_PLAIN;
	else if (strcmp(mech, "LOGIN") == 0)
		sa->mech = SASL_LOGIN;
	else if (strcmp(mech, "SCRAM-SHA-256") == 0)
		sa->mech = SASL_SCRAM;
	else {
		free(sa);
		return NULL;
	}
	return sa;
}

void sasl_free(struct sasl *sa)
{
	if (sa == NULL)
		return;
	OPENSSL_cleanse(sa, sizeof *sa);
	free(sa);
}

const char *sasl_user(const struct sasl *sa)
{
	return sa->user;
}

const char *sasl_pass(const struct sasl *sa)
{
	return sa->pass;
}

/* Copy n bytes into a NUL-terminated field; refuses NUL bytes and overflow. */
static int sasl_field(char *dst, size_t dstsz, const unsigned char *p, size_t n)
{
	if (n >= dstsz || memchr(p, '\0', n) != NULL)
		return -EINVAL;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

static enum sasl_result sasl_plain(struct sasl *sa, const unsigned char *in, size_t n,
                                   bool has_in, size_t *outlen)
{
	const unsigned char *z1, *z2;

	if (!has_in) {
		*outlen = 0; /* empty challenge: "334 " */
		return SASL_R_CONTINUE;
	}
	/* authzid NUL authcid NUL passwd */
	z1 = memchr(in, '\0', n);
	if (z1 == NULL)
		return SASL_R_MALFORMED;
	z2 = memchr(z1 + 1, '\0', n - (size_t)(z1 + 1 - in));
	if (z2 == NULL)
		return SASL_R_MALFORMED;
	if (sasl_field(sa->user, sizeof sa->user, z1 + 1, (size_t)(z2 - z1 - 1)) < 0 ||
	    sasl_field(sa->pass, sizeof sa->pass, z2 + 1, n - (size_t)(z2 + 1 - in)) < 0 ||
	    sa->user[0] == '\0')
		return SASL_R_MALFORMED;
	/* An authzid other than the user would mean "act as someone else": refused. */
	if (z1 != in && ((size_t)(z1 - in) != strlen(sa->user) ||
	                 memcmp(in, sa->user, (size_t)(z1 - in)) != 0))
		return SASL_R_FAIL;
	return SASL_R_CHECK;
}

static enum sasl_result sasl_login(struct sasl *sa, const unsigned char *in, size_t n,
                                   bool has_in, unsigned char *out, size_t outsz,
                                   size_t *outlen)
{
	static const char uprompt[] = "Username:", pprompt[] = "Password:";

	if (sa->step == 0) {
		sa->step = 1;
		if (!has_in) {
			memcpy(out, uprompt, sizeof uprompt - 1);
			*outlen = sizeof uprompt - 1;
			return SASL_R_CONTINUE;
		}
	}
	if (sa->step == 1) {
		if (sasl_field(sa->user, sizeof sa->user, in, n) < 0 || sa->user[0] == '\0')
			return SASL_R_MALFORMED;
		sa->step = 2;
		memcpy(out, pprompt, sizeof pprompt - 1);
		*outlen = sizeof pprompt - 1;
		return SASL_R_CONTINUE;
	}
	if (sasl_field(sa->pass, sizeof sa->pass, in, n) < 0)
		return SASL_R_MALFORMED;
	return SASL_R_CHECK;
}

/* ---- SCRAM-SHA-256 ---- */

static int sasl_hmac(const unsigned char *key, size_t klen, const void *msg, size_t mlen,
                     unsigned char out[32])
{
	unsigned int olen = 32;

	return HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) ? 0 : -EIO;
}

/* Parse "{SCRAM-SHA-256}iter,salt,stored,server". salt gets the decoded salt. */
static int sasl_scram_parse(const char *secret, unsigned *iter, unsigned char *salt,
                            size_t *saltlen, unsigned char stored[32], unsigned char server[32])
{
	const char *p, *c1, *c2, *c3;
	char *end;
	unsigned long it;
	int k;

	if (secret == NULL || strncmp(secret, SASL_SCRAM_PREFIX, strlen(SASL_SCRAM_PREFIX)) != 0)
		return -EINVAL;
	p = secret + strlen(SASL_SCRAM_PREFIX);
	it = strtoul(p, &end, 10);
	if (end == p || *end != ',' || it < 1 || it > 10000000)
		return -EINVAL;
	c1 = end + 1;
	c2 = strchr(c1, ',');
	if (c2 == NULL)
		return -EINVAL;
	c3 = strchr(c2 + 1, ',');
	if (c3 == NULL)
		return -EINVAL;
	k = base64_decode(c1, (size_t)(c2 - c1), salt, 64);
	if (k <= 0)
		return -EINVAL;
	*saltlen = (size_t)k;
	if (base64_decode(c2 + 1, (size_t)(c3 - c2 - 1), stored, 32) != 32 ||
	    base64_decode(c3 + 1, strlen(c3 + 1), server, 32) != 32)
		return -EINVAL;
	*iter = (unsigned)it;
	return 0;
}

static int sasl_scram_keys(const char *pass, const unsigned char *salt, size_t saltlen,
                           unsigned iter, unsigned char stored[32], unsigned char server[32])
{
	unsigned char salted[32], ckey[32];
	int rc = -EIO;

	if (PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, (int)saltlen, (int)iter, EVP_sha256(),
	                      32, salted) != 1)
		goto fail;
	if (sasl_hmac(salted, 32, "Client Key", 10, ckey) < 0)
		goto fail;
	SHA256(ckey, 32, stored);
	if (sasl_hmac(salted, 32, "Server Key", 10, server) < 0)
		goto fail;
	rc = 0;
fail:
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(ckey, sizeof ckey);
	return rc;
}

int sasl_scram_secret(const char *pass, unsigned iter, char *out, size_t outsz)
{
	unsigned char salt[16], stored[32], server[32];
	char s64[32], st64[48], sv64[48];
	int n;

	if (RAND_bytes(salt, sizeof salt) != 1)
		return -EIO;
	if (sasl_scram_keys(pass, salt, sizeof salt, iter, stored, server) < 0)
		return -EIO;
	base64_encode(salt, sizeof salt, s64, sizeof s64);
	base64_encode(stored, 32, st64, sizeof st64);
	base64_encode(server, 32, sv64, sizeof sv64);
	n = snprintf(out, outsz, "%s%u,%s,%s,%s", SASL_SCRAM_PREFIX, iter, s64, st64, sv64);
	return n < 0 || (size_t)n >= outsz ? -ENOSPC : 0;
}

/* "n=user": decode =2C and =3D (RFC 5802 5.1). */
static int sasl_scram_user(const char *p, size_t n, char *out, size_t outsz)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '=') {
			if (i + 2 >= n)
				return -EINVAL;
			if (p[i + 1] == '2' && p[i + 2] == 'C')
				ch = ',';
			else if (p[i + 1] == '3' && p[i + 2] == 'D')
				ch = '=';
			else
				return -EINVAL;
			i += 2;
		} else if (ch == ',' || ch == '\0') {
			return -EINVAL;
		}
		if (o + 1 >= outsz)
			return -EINVAL;
		out[o++] = ch;
	}
	out[o] = '\0';
	return o == 0 ? -EINVAL : 0;
}

static bool sasl_printable(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

static enum sasl_result sasl_scram_first(struct sasl *sa, const char *m, size_t n,
                                         sasl_lookup_fn lookup, void *arg, unsigned char *out,
                                         size_t outsz, size_t *outlen)
{
	const char *bare, *cn, *e;
	unsigned char salt[64], rnd[18];
	size_t saltlen = 0;
	unsigned iter = SASL_SCRAM_ITER_DEFAULT;
	char s64[100], r64[32];
	int k;

	/* gs2-header: ("n" | "y") "," [authzid] "," */
	if (n < 3 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',')
		return SASL_R_MALFORMED;
	e = memchr(m + 2, ',', n - 2);
	if (e == NULL)
		return SASL_R_MALFORMED;
	snprintf(sa->gs2, sizeof sa->gs2, "%c,,", m[0]);
	bare = e + 1;
	if (sasl_field(sa->client_first_bare, sizeof sa->client_first_bare,
	               (const unsigned char *)bare, n - (size_t)(bare - m)) < 0)
		return SASL_R_MALFORMED;
	/* n=user,r=nonce[,extensions] */
	if (strncmp(sa->client_first_bare, "n=", 2) != 0)
		return SASL_R_MALFORMED;
	cn = strstr(sa->client_first_bare, ",r=");
	if (cn == NULL)
		return SASL_R_MALFORMED;
	if (sasl_scram_user(sa->client_first_bare + 2, (size_t)(cn - sa->client_first_bare - 2),
	                    sa->user, sizeof sa->user) < 0)
		return SASL_R_MALFORMED;
	if (e != m + 2) {
		/* authzid "a=name" must name the user itself */
		char az[SASL_USER_MAX + 1];

		if (e - m < 4 || m[2] != 'a' || m[3] != '=' ||
		    sasl_scram_user(m + 4, (size_t)(e - m - 4), az, sizeof az) < 0)
			return SASL_R_MALFORMED;
		if (strcmp(az, sa->user) != 0)
			return SASL_R_FAIL;
	}
	cn += 3;
	k = (int)strcspn(cn, ",");
	if (k == 0 || (size_t)k > 100 || !sasl_printable(cn, (size_t)k))
		return SASL_R_MALFORMED;
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return SASL_R_FAIL;
	base64_encode(rnd, sizeof rnd, r64, sizeof r64);
	snprintf(sa->nonce, sizeof sa->nonce, "%.*s%s", k, cn, r64);

	if (sasl_scram_parse(lookup ? lookup(arg, sa->user) : NULL, &iter, salt, &saltlen,
	                     sa->stored_key, sa->server_key) == 0) {
		sa->have_secret = true;
	} else {
		/* A stable made-up salt per user name, so probing learns nothing. */
		static unsigned char fake_key[32];
		static bool fake_init;

		if (!fake_init) {
			if (RAND_bytes(fake_key, sizeof fake_key) != 1)
				return SASL_R_FAIL;
			fake_init = true;
		}
		sasl_hmac(fake_key, sizeof fake_key, sa->user, strlen(sa->user), salt);
		saltlen = 16;
		iter = SASL_SCRAM_ITER_DEFAULT;
		sa->have_secret = false;
	}
	base64_encode(salt, saltlen, s64, sizeof s64);
	k = snprintf(sa->server_first, sizeof sa->server_first, "r=%s,s=%s,i=%u", sa->nonce, s64,
	             iter);
	if (k < 0 || (size_t)k >= sizeof sa->server_first || (size_t)k > outsz)
		return SASL_R_FAIL;
	memcpy(out, sa->server_first, (size_t)k);
	*outlen = (size_t)k;
	sa->step = 1;
	return SASL_R_CONTINUE;
}

static enum sasl_result sasl_scram_final(struct sasl *sa, const char *m, size_t n,
                                         unsigned char *out, size_t outsz, size_t *outlen)
{
	char msg[1200], am[2400], gs2b64[8], expect_c[16];
	const char *p;
	unsigned char proof[64], csig[32], ckey[32], stored[32], ssig[32];
	char ssig64[48];
	size_t wo; /* client-final-message-without-proof length */
	int k;

	if (sasl_field(msg, sizeof msg, (const unsigned char *)m, n) < 0)
		return SASL_R_MALFORMED;
	base64_encode(sa->gs2, strlen(sa->gs2), gs2b64, sizeof gs2b64);
	snprintf(expect_c, sizeof expect_c, "c=%s,", gs2b64);
	if (strncmp(msg, expect_c, strlen(expect_c)) != 0)
		return SASL_R_MALFORMED;
	p = msg + strlen(expect_c);
	if (strncmp(p, "r=", 2) != 0)
		return SASL_R_MALFORMED;
	p += 2;
	k = (int)strcspn(p, ",");
	if ((size_t)k != strlen(sa->nonce) || memcmp(p, sa->nonce, (size_t)k) != 0)
		return SASL_R_MALFORMED;
	p = strstr(msg, ",p=");
	if (p == NULL || strchr(p + 3, ',') != NULL)
		return SASL_R_MALFORMED;
	wo = (size_t)(p - msg);
	if (base64_decode(p + 3, strlen(p + 3), proof, sizeof proof) != 32)
		return SASL_R_MALFORMED;
	k = snprintf(am, sizeof am, "%s,%s,%.*s", sa->client_first_bare, sa->server_first, (int)wo,
	             msg);
	if (k < 0 || (size_t)k >= sizeof am)
		return SASL_R_MALFORMED;
	if (sasl_hmac(sa->stored_key, 32, am, (size_t)k, csig) < 0)
		return SASL_R_FAIL;
	for (int i = 0; i < 32; i++)
		ckey[i] = proof[i] ^ csig[i];
	SHA256(ckey, 32, stored);
	if (!sa->have_secret || CRYPTO_memcmp(stored, sa->stored_key, 32) != 0)
		return SASL_R_FAIL;
	if (sasl_hmac(sa->server_key, 32, am, (size_t)k, ssig) < 0)
		return SASL_R_FAIL;
	base64_encode(ssig, 32, ssig64, sizeof ssig64);
	k = snprintf((char *)out, outsz, "v=%s", ssig64);
	if (k < 0 || (size_t)k >= outsz)
		return SASL_R_FAIL;
	*outlen = (size_t)k;
	sa->step = 2;
	return SASL_R_CONTINUE;
}

static enum sasl_result sasl_scram(struct sasl *sa, const unsigned char *in, size_t n,
                                   bool has_in, sasl_lookup_fn lookup, void *arg,
                                   unsigned char *out, size_t outsz, size_t *outlen)
{
	if (sa->step == 0) {
		if (!has_in) {
			*outlen = 0;
			sa->step = -1; /* empty challenge sent, client-first comes next */
			return SASL_R_CONTINUE;
		}
	}
	if (sa->step <= 0)
		return sasl_scram_first(sa, (const char *)in, n, lookup, arg, out, outsz, outlen);
	if (sa->step == 1)
		return sasl_scram_final(sa, (const char *)in, n, out, outsz, outlen);
	/* after "v=...": the client answers with an empty response */
	return n == 0 ? SASL_R_OK : SASL_R_MALFORMED;
}

enum sasl_result sasl_step(struct sasl *sa, const unsigned char *in, size_t n, bool has_in,
                           sasl_lookup_fn lookup, void *arg, unsigned char *out, size_t outsz,
                           size_t *outlen)
{
	*outlen = 0;
	switch (sa->mech) {
	case SASL_PLAIN:
		return sasl_plain(sa, in, n, has_in, outlen);
	case SASL_LOGIN:
		return sasl_login(sa, in, n, has_in, out, outsz, outlen);
	case SASL_SCRAM:
	default:
		return sasl_scram(sa, in, n, has_in, lookup, arg, out, outsz, outlen);
	}
}

int sasl_verify_password(const char *secret, const char *pass)
{
	if (secret == NULL || secret[0] == '\0' || secret[0] == '*' || secret[0] == '!')
		return -EINVAL;
	if (strncmp(secret, SASL_SCRAM_PREFIX, strlen(SASL_SCRAM_PREFIX)) == 0) {
		unsigned char salt[64], stored[32], server[32], st2[32], sv2[32];
		size_t saltlen;
		unsigned iter;

		if (sasl_scram_parse(secret, &iter, salt, &saltlen, stored, server) < 0)
			return -EINVAL;
		if (sasl_scram_keys(pass, salt, saltlen, iter, st2, sv2) < 0)
			return -EINVAL;
		return CRYPTO_memcmp(stored, st2, 32) == 0 ? 0 : -EACCES;
	}
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h;
	int rc;

	if (cd == NULL)
		return -ENOMEM;
	h = crypt_r(pass, secret, cd);
	if (h == NULL || h[0] == '*' || strlen(h) != strlen(secret))
		rc = -EINVAL;
	else
		rc = CRYPTO_memcmp(h, secret, strlen(secret)) == 0 ? 0 : -EACCES;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return rc;
}
