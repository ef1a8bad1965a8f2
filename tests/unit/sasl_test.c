/* sasl_test.c - unit tests for the server SASL mechanisms (src/policy/sasl.c) and the
 * strict base64 codec (src/util/base64.c): PLAIN and LOGIN decoding, SCRAM-SHA-256
 * server steps checked against the RFC 7677 section 3 example (user "user", password
 * "pencil"), password verification, and malformed inputs. The SCRAM client side here
 * is an independent few lines of OpenSSL calls, itself checked against the RFC's
 * ClientProof and ServerSignature. Does not test the engine's AUTH framing
 * (smtp_auth_test.c) or the daemon glue. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "policy/sasl.h"
#include "util/base64.h"

/* ---- base64 ---- */

static void test_base64_rfc4648_vectors(void **state)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
	                                  "Zm9vYmFy"};
	char out[32];
	unsigned char dec[32];

	for (size_t i = 0; i < 7; i++) {
		int n = base64_encode(plain[i], strlen(plain[i]), out, sizeof out);
		assert_int_equal(n, (int)strlen(enc[i]));
		assert_string_equal(out, enc[i]);
		n = base64_decode(enc[i], strlen(enc[i]), dec, sizeof dec);
		assert_int_equal(n, (int)strlen(plain[i]));
		assert_memory_equal(dec, plain[i], (size_t)n);
	}
}

static void test_base64_binary_roundtrip(void **state)
{
	unsigned char in[256], dec[256];
	char enc[BASE64_ENC_LEN(256) + 1];

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	for (size_t n = 0; n <= 256; n += 37) {
		assert_int_equal(base64_encode(in, n, enc, sizeof enc), (int)BASE64_ENC_LEN(n));
		assert_int_equal(base64_decode(enc, strlen(enc), dec, sizeof dec), (int)n);
		assert_memory_equal(dec, in, n);
	}
}

static void test_base64_rejects_noncanonical(void **state)
{
	static const char *const bad[] = {
		"Zg",       /* padding missing */
		"Zg=",      /* short padding */
		"Zm9v\r\n", /* line break */
		"Zm 9v",    /* blank */
		"Zm9v====", /* too much padding */
		"Z===",     /* one character is not a byte */
		"Zh==",     /* non-zero bits after the last byte */
		"Zm9-",     /* URL alphabet */
		"=Zm9",     /* padding first */
		"Zg==Zg==", /* data after padding */
	};
	unsigned char dec[16];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(base64_decode(bad[i], strlen(bad[i]), dec, sizeof dec), -EINVAL);
}

static void test_base64_bounds(void **state)
{
	char out[8];
	unsigned char dec[2];

	assert_int_equal(base64_encode("foobar", 6, out, 8), -ENOSPC); /* needs 9 with NUL */
	assert_int_equal(base64_encode("fooba", 5, out, 9 - 1), -ENOSPC);
	assert_int_equal(base64_decode("Zm9v", 4, dec, sizeof dec), -ENOSPC);
	/* decode exactly n characters: the rest of the buffer is not read */
	assert_int_equal(base64_decode("Zm9vXXXX", 4, (unsigned char[3]){0}, 3), 3);
}

/* ---- PLAIN and LOGIN ---- */

static enum sasl_result t_step(struct sasl *sa, const char *in, size_t n, bool has,
                               char *out, size_t *outlen)
{
	static unsigned char buf[512];
	enum sasl_result r = sasl_step(sa, (const unsigned char *)in, n, has, NULL, NULL, buf,
	                               sizeof buf, outlen);
	if (out != NULL) {
		memcpy(out, buf, *outlen);
		out[*outlen] = '\0';
	}
	return r;
}

static void test_plain_initial_response(void **state)
{
	struct sasl *sa = sasl_new("PLAIN");
	size_t ol;

	assert_non_null(sa);
	assert_int_equal(t_step(sa, "\0alice\0s3cret pass", 18, true, NULL, &ol), SASL_R_CHECK);
	assert_string_equal(sasl_user(sa), "alice");
	assert_string_equal(sasl_pass(sa), "s3cret pass");
	sasl_free(sa);

	/* authzid equal to the user is fine */
	sa = sasl_new("PLAIN");
	assert_int_equal(t_step(sa, "bob\0bob\0pw", 10, true, NULL, &ol), SASL_R_CHECK);
	assert_string_equal(sasl_user(sa), "bob");
	sasl_free(sa);
}

static void test_plain_challenge_form(void **state)
{
	struct sasl *sa = sasl_new("PLAIN");
	char out[64];
	size_t ol = 99;

	assert_int_equal(t_step(sa, NULL, 0, false, out, &ol), SASL_R_CONTINUE);
	assert_int_equal(ol, 0); /* "334 " with an empty challenge */
	assert_int_equal(t_step(sa, "\0u\0p", 4, true, NULL, &ol), SASL_R_CHECK);
	assert_string_equal(sasl_user(sa), "u");
	sasl_free(sa);
}

static void test_plain_malformed(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		enum sasl_result want;
	} cases[] = {
		{"alice", 5, SASL_R_MALFORMED},           /* no NUL at all */
		{"\0alice", 6, SASL_R_MALFORMED},         /* one NUL */
		{"\0\0pw", 4, SASL_R_MALFORMED},          /* empty user */
		{"\0a\0p\0q", 6, SASL_R_MALFORMED},       /* NUL inside the password */
		{"", 0, SASL_R_MALFORMED},                /* empty response */
		{"mallory\0alice\0pw", 16, SASL_R_FAIL},  /* act as someone else */
	};
	size_t ol;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sasl *sa = sasl_new("PLAIN");
		assert_int_equal(t_step(sa, cases[i].in, cases[i].n, true, NULL, &ol), cases[i].want);
		sasl_free(sa);
	}
}

static void test_plain_oversized(void **state)
{
	size_t n = 2 + SASL_USER_MAX + 1 + 3;
	char *in = calloc(1, n);
	struct sasl *sa = sasl_new("PLAIN");
	size_t ol;

	memset(in + 1, 'u', SASL_USER_MAX + 1); /* one byte over */
	memcpy(in + n - 3, "\0pw", 3);
	assert_int_equal(t_step(sa, in, n, true, NULL, &ol), SASL_R_MALFORMED);
	sasl_free(sa);
	free(in);
}

static void test_login_steps(void **state)
{
	struct sasl *sa = sasl_new("LOGIN");
	char out[64];
	size_t ol;

	assert_int_equal(t_step(sa, NULL, 0, false, out, &ol), SASL_R_CONTINUE);
	assert_string_equal(out, "Username:");
	assert_int_equal(t_step(sa, "carol", 5, true, out, &ol), SASL_R_CONTINUE);
	assert_string_equal(out, "Password:");
	assert_int_equal(t_step(sa, "pw pw", 5, true, NULL, &ol), SASL_R_CHECK);
	assert_string_equal(sasl_user(sa), "carol");
	assert_string_equal(sasl_pass(sa), "pw pw");
	sasl_free(sa);

	/* AUTH LOGIN <user> (initial response) goes straight to the password */
	sa = sasl_new("LOGIN");
	assert_int_equal(t_step(sa, "dave", 4, true, out, &ol), SASL_R_CONTINUE);
	assert_string_equal(out, "Password:");
	assert_int_equal(t_step(sa, "x", 1, true, NULL, &ol), SASL_R_CHECK);
	assert_string_equal(sasl_user(sa), "dave");
	sasl_free(sa);
}

static void test_login_malformed(void **state)
{
	struct sasl *sa = sasl_new("LOGIN");
	char out[64];
	size_t ol;

	t_step(sa, NULL, 0, false, out, &ol);
	assert_int_equal(t_step(sa, "", 0, true, out, &ol), SASL_R_MALFORMED); /* empty user */
	sasl_free(sa);
	sa = sasl_new("LOGIN");
	t_step(sa, NULL, 0, false, out, &ol);
	assert_int_equal(t_step(sa, "a\0b", 3, true, out, &ol), SASL_R_MALFORMED);
	sasl_free(sa);
}

static void test_unknown_mechanism(void **state)
{
	assert_null(sasl_new("CRAM-MD5"));
	assert_null(sasl_new("plain2"));
	assert_null(sasl_new(""));
	sasl_free(NULL);
}

/* ---- SCRAM-SHA-256, RFC 7677 section 3 ---- */

#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE RFC_CNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SSIG "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static char T_secret[256]; /* "{SCRAM-SHA-256}4096,SALT,STORED,SERVER" for "pencil" */

static void t_hmac(const unsigned char *k, size_t kl, const char *m, unsigned char out[32])
{
	unsigned int ol = 32;
	assert_non_null(
		HMAC(EVP_sha256(), k, (int)kl, (const unsigned char *)m, strlen(m), out, &ol));
}

/* The client's side: ClientProof and the expected ServerSignature for auth_message. */
static void t_client(const char *pass, const char *salt64, unsigned iter, const char *am,
                     char proof64[64], char ssig64[64])
{
	unsigned char salt[64], salted[32], ckey[32], stored[32], csig[32], skey[32], ssig[32];
	unsigned char proof[32];
	int sl = base64_decode(salt64, strlen(salt64), salt, sizeof salt);

	assert_true(sl > 0);
	assert_int_equal(PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, sl, (int)iter,
	                                   EVP_sha256(), 32, salted), 1);
	t_hmac(salted, 32, "Client Key", ckey);
	SHA256(ckey, 32, stored);
	t_hmac(stored, 32, am, csig);
	for (int i = 0; i < 32; i++)
		proof[i] = ckey[i] ^ csig[i];
	t_hmac(salted, 32, "Server Key", skey);
	t_hmac(skey, 32, am, ssig);
	base64_encode(proof, 32, proof64, 64);
	base64_encode(ssig, 32, ssig64, 64);
	if (T_secret[0] == '\0') {
		char st64[64], sk64[64];
		base64_encode(stored, 32, st64, sizeof st64);
		base64_encode(skey, 32, sk64, sizeof sk64);
		snprintf(T_secret, sizeof T_secret, "{SCRAM-SHA-256}4096,%s,%s,%s", salt64, st64,
		         sk64);
	}
}

static void test_scram_client_matches_rfc7677(void **state)
{
	char proof[64], ssig[64];

	T_secret[0] = '\0';
	t_client("pencil", RFC_SALT, 4096,
	         "n=user,r=" RFC_CNONCE ",r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096,c=biws,r=" RFC_SNONCE,
	         proof, ssig);
	assert_string_equal(proof, RFC_PROOF);
	assert_string_equal(ssig, RFC_SSIG);
	/* the stored form verifies the password for PLAIN/LOGIN too */
	assert_int_equal(sasl_verify_password(T_secret, "pencil"), 0);
	assert_int_equal(sasl_verify_password(T_secret, "pencil "), -EACCES);
}

static const char *t_lookup(void *arg, const char *user)
{
	return strcmp(user, "user") == 0 ? T_secret : NULL;
}

struct t_scram {
	struct sasl *sa;
	char server_first[256];
	char snonce[128];
	char am[1024];
};

static enum sasl_result t_scram_step(struct sasl *sa, const char *in, char *out, size_t *ol)
{
	unsigned char buf[512];
	enum sasl_result r = sasl_step(sa, (const unsigned char *)in, strlen(in), true, t_lookup,
	                               NULL, buf, sizeof buf, ol);
	memcpy(out, buf, *ol);
	out[*ol] = '\0';
	return r;
}

/* client-first; checks the server-first message against the stored secret. */
static void t_scram_first(struct t_scram *t, const char *client_first)
{
	size_t ol;
	const char *s;

	if (T_secret[0] == '\0')
		test_scram_client_matches_rfc7677(NULL);
	t->sa = sasl_new("SCRAM-SHA-256");
	assert_non_null(t->sa);
	assert_int_equal(t_scram_step(t->sa, client_first, t->server_first, &ol), SASL_R_CONTINUE);
	/* r=<client nonce><server part>,s=<salt>,i=4096 */
	assert_memory_equal(t->server_first, "r=" RFC_CNONCE, strlen("r=" RFC_CNONCE));
	s = strstr(t->server_first, ",s=");
	assert_non_null(s);
	assert_true(s - t->server_first > (ptrdiff_t)strlen("r=" RFC_CNONCE)); /* server added some */
	snprintf(t->snonce, sizeof t->snonce, "%.*s", (int)(s - t->server_first - 2),
	         t->server_first + 2);
}

static void test_scram_full_exchange(void **state)
{
	struct t_scram t;
	char final[512], out[512], proof[64], ssig[64], expect[80];
	size_t ol;

	t_scram_first(&t, "n,,n=user,r=" RFC_CNONCE);
	assert_non_null(strstr(t.server_first, ",s=" RFC_SALT ",i=4096"));
	snprintf(t.am, sizeof t.am, "n=user,r=" RFC_CNONCE ",%s,c=biws,r=%s", t.server_first,
	         t.snonce);
	t_client("pencil", RFC_SALT, 4096, t.am, proof, ssig);
	snprintf(final, sizeof final, "c=biws,r=%s,p=%s", t.snonce, proof);
	assert_int_equal(t_scram_step(t.sa, final, out, &ol), SASL_R_CONTINUE);
	snprintf(expect, sizeof expect, "v=%s", ssig);
	assert_string_equal(out, expect);
	assert_int_equal(t_scram_step(t.sa, "", out, &ol), SASL_R_OK);
	assert_string_equal(sasl_user(t.sa), "user");
	sasl_free(t.sa);
}

static void test_scram_wrong_password(void **state)
{
	struct t_scram t;
	char final[512], out[512], proof[64], ssig[64];
	size_t ol;

	t_scram_first(&t, "n,,n=user,r=" RFC_CNONCE);
	snprintf(t.am, sizeof t.am, "n=user,r=" RFC_CNONCE ",%s,c=biws,r=%s", t.server_first,
	         t.snonce);
	t_client("pencils", RFC_SALT, 4096, t.am, proof, ssig);
	snprintf(final, sizeof final, "c=biws,r=%s,p=%s", t.snonce, proof);
	assert_int_equal(t_scram_step(t.sa, final, out, &ol), SASL_R_FAIL);
	sasl_free(t.sa);
}

static void test_scram_unknown_user_gets_stable_fake_salt(void **state)
{
	struct t_scram a, b;

	t_scram_first(&a, "n,,n=nobody,r=" RFC_CNONCE);
	t_scram_first(&b, "n,,n=nobody,r=" RFC_CNONCE);
	assert_string_equal(strstr(a.server_first, ",s="), strstr(b.server_first, ",s="));
	assert_null(strstr(a.server_first, RFC_SALT));
	sasl_free(a.sa);
	sasl_free(b.sa);
}

static void test_scram_challenge_form_and_authzid(void **state)
{
	struct sasl *sa = sasl_new("SCRAM-SHA-256");
	char out[512];
	size_t ol;
	unsigned char buf[512];

	assert_int_equal(sasl_step(sa, NULL, 0, false, t_lookup, NULL, buf, sizeof buf, &ol),
	                 SASL_R_CONTINUE);
	assert_int_equal(ol, 0);
	assert_int_equal(t_scram_step(sa, "n,a=user,n=user,r=abc", out, &ol), SASL_R_CONTINUE);
	sasl_free(sa);
	sa = sasl_new("SCRAM-SHA-256");
	assert_int_equal(t_scram_step(sa, "n,a=admin,n=user,r=abc", out, &ol), SASL_R_FAIL);
	sasl_free(sa);
}

static void test_scram_malformed(void **state)
{
	static const char *const first[] = {
		"",                       /* empty */
		"p=tls-unique,,n=user,r=abc", /* channel binding not offered */
		"n,,r=abc",               /* no user */
		"n,,n=user",              /* no nonce */
		"n,,n=,r=abc",            /* empty user */
		"n,,n=us=41er,r=abc",     /* bad =XX escape */
		"n,,n=user,r=",           /* empty nonce */
		"n,,n=user,r=a b",        /* nonce with a blank */
		"n,user,r=abc",           /* gs2 header cut */
		"x,,n=user,r=abc",        /* unknown gs2 flag */
	};
	char out[512];
	size_t ol;

	if (T_secret[0] == '\0')
		test_scram_client_matches_rfc7677(NULL);
	for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
		struct sasl *sa = sasl_new("SCRAM-SHA-256");
		enum sasl_result r = t_scram_step(sa, first[i], out, &ol);
		if (r != SASL_R_MALFORMED)
			fail_msg("client-first %zu '%s': %d", i, first[i], (int)r);
		sasl_free(sa);
	}
}

static void test_scram_final_malformed(void **state)
{
	static const struct {
		const char *pre, *post; /* around the full nonce */
	} fmt[] = {
		{"c=biws,r=", ""},                         /* no proof */
		{"c=eSws,r=", ",p=AAAA"},                  /* gs2 header differs from the first */
		{"c=biws,r=", "X,p=" RFC_PROOF},           /* nonce changed */
		{"c=biws,r=", ",p=not*base64"},            /* bad base64 */
		{"c=biws,r=", ",p=AAAA"},                  /* proof not 32 bytes */
		{"c=biws,r=", ",p=" RFC_PROOF ",x=extra"}, /* something after the proof */
	};
	char final[512], out[512];
	size_t ol;

	for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
		struct t_scram t;
		t_scram_first(&t, "n,,n=user,r=" RFC_CNONCE);
		snprintf(final, sizeof final, "%s%s%s", fmt[i].pre, t.snonce, fmt[i].post);
		enum sasl_result r = t_scram_step(t.sa, final, out, &ol);
		if (r != SASL_R_MALFORMED)
			fail_msg("client-final %zu '%s': %d", i, final, (int)r);
		sasl_free(t.sa);
	}
}

/* ---- stored secrets ---- */

static void test_verify_password_crypt_and_unusable(void **state)
{
	char h[256];

	assert_int_equal(sasl_scram_secret("pw", 4096, h, sizeof h), 0);
	assert_memory_equal(h, "{SCRAM-SHA-256}4096,", 20);
	assert_int_equal(sasl_verify_password(h, "pw"), 0);
	assert_int_equal(sasl_verify_password(h, "Pw"), -EACCES);
	assert_int_equal(sasl_scram_secret("pw", 4096, h, 20), -ENOSPC);
	/* sha512-crypt of "pencil" with salt "saltsalt" (made with `openssl passwd -6`) */
	assert_int_equal(sasl_verify_password(
	                     "$6$saltsalt$rD9fW1BwIrjB90WCgCTdIQc3phTBhf04I6Iw/XlgKD9E9aEbzqGZipji"
	                     "FxGo/4wWXDA6jV6/vZO.kKdDSfUJb0",
	                     "pencil"), 0);
	assert_int_equal(sasl_verify_password(NULL, "x"), -EINVAL);
	assert_int_equal(sasl_verify_password("", "x"), -EINVAL);
	assert_int_equal(sasl_verify_password("*", "x"), -EINVAL);
	assert_int_equal(sasl_verify_password("!locked", "x"), -EINVAL);
	assert_int_equal(sasl_verify_password("{SCRAM-SHA-256}0,AA==,x,y", "x"), -EINVAL);
	assert_int_equal(sasl_verify_password("{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==", "x"),
	                 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_rfc4648_vectors),
		cmocka_unit_test(test_base64_binary_roundtrip),
		cmocka_unit_test(test_base64_rejects_noncanonical),
		cmocka_unit_test(test_base64_bounds),
		cmocka_unit_test(test_plain_initial_response),
		cmocka_unit_test(test_plain_challenge_form),
		cmocka_unit_test(test_plain_malformed),
		cmocka_unit_test(test_plain_oversized),
		cmocka_unit_test(test_login_steps),
		cmocka_unit_test(test_login_malformed),
		cmocka_unit_test(test_unknown_mechanism),
		cmocka_unit_test(test_scram_client_matches_rfc7677),
		cmocka_unit_test(test_scram_full_exchange),
		cmocka_unit_test(test_scram_wrong_password),
		cmocka_unit_test(test_scram_unknown_user_gets_stable_fake_salt),
		cmocka_unit_test(test_scram_challenge_form_and_authzid),
		cmocka_unit_test(test_scram_malformed),
		cmocka_unit_test(test_scram_final_malformed),
		cmocka_unit_test(test_verify_password_crypt_and_unusable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
