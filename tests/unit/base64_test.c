/* base64_test.c - unit tests for the one base64 decoder (src/util/base64.c) in both
 * of its uses: strict (SASL: base64_decode, flags 0) and MIME (the client's
 * client_b64_decode: BASE64_SKIP_SPACE | BASE64_ANY_PAD_BITS), each flag alone, the
 * counting mode (out == NULL) and the error paths. Each mode is also checked against
 * a reference copy of the decoder it replaced, over every short string of a small
 * alphabet, so "behaviour unchanged" is a test and not a promise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "client/client_codec.h"
#include "util/base64.h"

#define MIME (BASE64_SKIP_SPACE | BASE64_ANY_PAD_BITS)

/* Decode s with flags into a buffer of outsz; returns the result, output in out. */
static int b64_test_dec(const char *s, unsigned flags, unsigned char *out, size_t outsz)
{
	return base64_decode_opt(s, strlen(s), flags, out, outsz);
}

static void test_strict_good(void **state)
{
	static const char *const v[][2] = {{"", ""},         {"Zg==", "f"},         {"Zm8=", "fo"},
	                                   {"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"},
	                                   {"Zm9vYmFy", "foobar"}};
	unsigned char out[16];

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		int n = (int)strlen(v[i][1]);

		assert_int_equal(b64_test_dec(v[i][0], 0, out, sizeof out), n);
		assert_memory_equal(out, v[i][1], (size_t)n);
		/* every mode agrees on canonical input, and counting gives the length */
		assert_int_equal(b64_test_dec(v[i][0], MIME, out, sizeof out), n);
		assert_int_equal(b64_test_dec(v[i][0], 0, NULL, 0), n);
		assert_int_equal(base64_decode(v[i][0], strlen(v[i][0]), out, sizeof out), n);
	}
}

static void test_strict_refuses(void **state)
{
	static const char *const bad[] = {
		"Zg",   "Zg=",      "Zm9v\r\n", "Zm 9v",    "Zm9v====", "Z===",  "Zh==",
		"Zm9-", "=Zm9",     "Zg==Zg==", "Zm8=Zg==", "Zg=g",     "Zm9v ", " Zm9v",
		"\tZg==", "Zm9v\n", "Zm==\r\n", "Zg==    ",
	};
	unsigned char out[16];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(b64_test_dec(bad[i], 0, out, sizeof out), -EINVAL);
		assert_int_equal(b64_test_dec(bad[i], 0, NULL, 0), -EINVAL);
	}
}

static void test_each_flag_alone(void **state)
{
	unsigned char out[16];

	/* skipping blanks does not allow a second spelling */
	assert_int_equal(b64_test_dec("Zm9v\r\nZg==", BASE64_SKIP_SPACE, out, sizeof out), 4);
	assert_int_equal(b64_test_dec("Zh==", BASE64_SKIP_SPACE, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zm9=", BASE64_SKIP_SPACE, out, sizeof out), -EINVAL);
	/* non-zero pad bits do not allow blanks */
	assert_int_equal(b64_test_dec("Zh==", BASE64_ANY_PAD_BITS, out, sizeof out), 1);
	assert_int_equal(out[0], 'f');
	assert_int_equal(b64_test_dec("Zm9=", BASE64_ANY_PAD_BITS, out, sizeof out), 2);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(b64_test_dec("Zg== ", BASE64_ANY_PAD_BITS, out, sizeof out), -EINVAL);
}

static void test_mime_blanks_and_errors(void **state)
{
	unsigned char out[16];

	assert_int_equal(b64_test_dec(" Z m\t9 v\r\nY g = =\r\n", MIME, out, sizeof out), 4);
	assert_memory_equal(out, "foob", 4);
	assert_int_equal(b64_test_dec("\r\n \t", MIME, out, sizeof out), 0);
	/* only CR, LF, space and tab are skipped */
	assert_int_equal(b64_test_dec("Zm9v\vZg==", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zm9v\fZg==", MIME, out, sizeof out), -EINVAL);
	/* padding is still required and still ends the data */
	assert_int_equal(b64_test_dec("Zg", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zg=\r\n", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zg==\r\nZg==", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zg== =", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Z===", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zm9-", MIME, out, sizeof out), -EINVAL);
	assert_int_equal(b64_test_dec("Zm9v\0", MIME, out, sizeof out), 3); /* strlen stops */
	assert_int_equal(base64_decode_opt("Zm9v\0AAA", 8, MIME, out, sizeof out), -EINVAL);
}

static void test_out_of_room(void **state)
{
	unsigned char out[8];

	assert_int_equal(b64_test_dec("Zm9vYg==", 0, out, 3), -ENOSPC);
	assert_int_equal(b64_test_dec("Zm9vYg==", 0, out, 4), 4);
	assert_int_equal(b64_test_dec("Zm9v", 0, out, 2), -ENOSPC);
	assert_int_equal(b64_test_dec("Zm9v", MIME, out, 2), -ENOSPC);
	assert_int_equal(b64_test_dec("Zm8=", 0, out, 2), 2);
	assert_int_equal(b64_test_dec("Zm8=", 0, out, 1), -ENOSPC);
	/* bad input after the room ran out: the first problem met is reported */
	assert_int_equal(b64_test_dec("Zm9vZm9v!", MIME, out, 3), -ENOSPC);
	/* ... but a length that is not a multiple of 4 is refused before any decoding */
	assert_int_equal(b64_test_dec("Zm9vZm9v!", 0, out, 3), -EINVAL);
}

static void test_client_wrapper(void **state)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(client_b64_decode(&b, "Zm9v\r\nYmFy\r\n", 12), 0);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.ptr, "foobar", 6);
	/* appends; an error leaves what was there untouched */
	assert_int_equal(client_b64_decode(&b, "Zh==", 4), 0);
	assert_int_equal(b.len, 7);
	assert_int_equal(client_b64_decode(&b, "Zm9vZg==Zg==", 12), -EINVAL);
	assert_int_equal(client_b64_decode(&b, "Zm9", 3), -EINVAL);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.ptr, "foobarf", 7);
	assert_int_equal(client_b64_decode(&b, " \r\n", 3), 0);
	assert_int_equal(b.len, 7);
	buf_free(&b);

	/* the buffer's max still holds */
	buf_init(&b, 4);
	assert_int_equal(client_b64_decode(&b, "Zm9vYmFy", 8), -ENOSPC);
	assert_int_equal(b.len, 0);
	assert_int_equal(client_b64_decode(&b, "Zm9v\r\n\r\n\r\n", 10), 0);
	assert_int_equal(b.len, 3);
	buf_free(&b);
}

/* ---- the decoders this one replaced, kept here as references ---- */

static int ref_val(unsigned char c)
{
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != '\0' ? strchr(alpha, c) : NULL;

	return p != NULL ? (int)(p - alpha) : -1;
}

/* src/util/base64.c before the merge (strict, for SASL). */
static int ref_strict(const char *in, size_t n, unsigned char *out, size_t outsz)
{
	size_t o = 0;

	if (n % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 4) {
		int a = ref_val((unsigned char)in[i]), b = ref_val((unsigned char)in[i + 1]);
		int c = ref_val((unsigned char)in[i + 2]), d = ref_val((unsigned char)in[i + 3]);
		size_t pad = 0;

		if (a < 0 || b < 0)
			return -EINVAL;
		if (in[i + 3] == '=') {
			if (i + 4 != n)
				return -EINVAL;
			pad = in[i + 2] == '=' ? 2 : 1;
			if (pad == 1 && c < 0)
				return -EINVAL;
		} else if (c < 0 || d < 0) {
			return -EINVAL;
		}
		unsigned v = ((unsigned)a << 18) | ((unsigned)b << 12);

		if (pad < 2)
			v |= (unsigned)c << 6;
		if (pad < 1)
			v |= (unsigned)d;
		if ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff)))
			return -EINVAL;
		if (o + 3 - pad > outsz)
			return -ENOSPC;
		out[o++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)v;
	}
	return (int)o;
}

/* src/client/client_codec.c's client_b64_decode before the merge (MIME), writing to
 * an array; returns the length or -EINVAL. */
static int ref_mime(const char *p, size_t n, unsigned char *out)
{
	unsigned long acc = 0;
	int bits = 0, pad = 0;
	size_t nsym = 0, o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			nsym++;
			continue;
		}
		int v = ref_val(c);
		if (v < 0 || pad > 0)
			return -EINVAL;
		nsym++;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	if (pad > 2 || nsym % 4 != 0)
		return -EINVAL;
	return (int)o;
}

/* Every string of up to 8 characters over an alphabet that reaches each branch:
 * two symbols that leave pad bits zero or not, '=', the skipped blanks and a bad byte. */
static void test_same_as_before(void **state)
{
	static const char alpha[] = "Agh=\n !";
	const size_t na = sizeof(alpha) - 1, maxlen = 8;
	char s[8];
	size_t idx[8];
	unsigned long checked = 0, accepted_strict = 0, accepted_mime = 0;

	for (size_t len = 0; len <= maxlen; len++) {
		memset(idx, 0, sizeof(idx));
		for (;;) {
			unsigned char a[8], b[8];
			int ra, rb;
			struct buf cb;

			for (size_t i = 0; i < len; i++)
				s[i] = alpha[idx[i]];
			/* strict, with room and with one byte too little */
			for (size_t room = 0; room <= 6; room += 6) {
				ra = ref_strict(s, len, a, room);
				rb = base64_decode_opt(s, len, 0, b, room);
				assert_int_equal(ra, rb);
				if (ra > 0)
					assert_memory_equal(a, b, (size_t)ra);
				if (ra > 1) {
					ra = ref_strict(s, len, a, (size_t)ra - 1);
					rb = base64_decode_opt(s, len, 0, b, (size_t)rb - 1);
					assert_int_equal(ra, rb);
				}
			}
			accepted_strict += ref_strict(s, len, a, sizeof a) >= 0;
			/* MIME, through the client's wrapper */
			ra = ref_mime(s, len, a);
			buf_init(&cb, 0);
			rb = client_b64_decode(&cb, s, len);
			assert_int_equal(ra < 0 ? -EINVAL : 0, rb);
			if (ra >= 0) {
				accepted_mime++;
				assert_int_equal(cb.len, (size_t)ra);
				if (ra > 0)
					assert_memory_equal(cb.ptr, a, (size_t)ra);
			}
			buf_free(&cb);
			checked++;

			size_t i = 0;
			while (i < len && ++idx[i] == na)
				idx[i++] = 0;
			if (i == len)
				break;
		}
	}
	/* the walk reached both outcomes in both modes */
	assert_true(checked > 6000000);
	assert_true(accepted_strict > 100);
	assert_true(accepted_mime > accepted_strict);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strict_good),
		cmocka_unit_test(test_strict_refuses),
		cmocka_unit_test(test_each_flag_alone),
		cmocka_unit_test(test_mime_blanks_and_errors),
		cmocka_unit_test(test_out_of_room),
		cmocka_unit_test(test_client_wrapper),
		cmocka_unit_test(test_same_as_before),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
