/* client_codec_test.c - base64, quoted-printable and RFC 2047 encoders of the tern
 * client (src/client/client_codec.c), with RFC 4648 vectors and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_codec.h"

static char *client_test_b64(const char *in, size_t n, size_t wrap)
{
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(client_b64_encode(&b, in, n, wrap), 0);
	char *s = strndup(b.ptr != NULL ? b.ptr : "", b.len);
	buf_free(&b);
	return s;
}

static void test_b64_rfc4648(void **state)
{
	static const char *const v[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
	                                   {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
	                                   {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *e = client_test_b64(v[i][0], strlen(v[i][0]), 0);
		assert_string_equal(e, v[i][1]);
		free(e);
		struct buf d;
		buf_init(&d, 0);
		assert_int_equal(client_b64_decode(&d, v[i][1], strlen(v[i][1])), 0);
		assert_int_equal(d.len, strlen(v[i][0]));
		if (d.len > 0)
			assert_memory_equal(d.ptr, v[i][0], d.len);
		buf_free(&d);
	}
}

static void test_b64_wrap_roundtrip(void **state)
{
	char all[1000];
	for (size_t i = 0; i < sizeof all; i++)
		all[i] = (char)(i * 7);
	char *e = client_test_b64(all, sizeof all, 76);
	/* every line at most 76 characters and ends in CRLF */
	for (char *p = e; *p != '\0';) {
		char *crlf = strstr(p, "\r\n");
		assert_non_null(crlf);
		assert_true(crlf - p <= 76);
		p = crlf + 2;
	}
	struct buf d;
	buf_init(&d, 0);
	assert_int_equal(client_b64_decode(&d, e, strlen(e)), 0);
	assert_int_equal(d.len, sizeof all);
	assert_memory_equal(d.ptr, all, sizeof all);
	buf_free(&d);
	free(e);
}

static void test_b64_decode_bad(void **state)
{
	struct buf d;
	buf_init(&d, 0);
	assert_int_equal(client_b64_decode(&d, "Zm9v!", 5), -EINVAL);
	assert_int_equal(client_b64_decode(&d, "Zm9", 3), -EINVAL);
	assert_int_equal(client_b64_decode(&d, "Zg==Zg==", 8), -EINVAL);
	buf_free(&d);
}

static char *client_test_qp(const char *in)
{
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(client_qp_encode(&b, in, strlen(in)), 0);
	char *s = strndup(b.ptr != NULL ? b.ptr : "", b.len);
	buf_free(&b);
	return s;
}

/* Minimal QP decoder for round trips (soft breaks and =XX). */
static char *client_test_unqp(const char *s)
{
	char *out = malloc(strlen(s) + 1);
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '=' && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (s[i] == '=') {
			char hex[3] = {s[i + 1], s[i + 2], 0};
			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void test_qp_basic(void **state)
{
	char *e = client_test_qp("a=b caf\xc3\xa9 \nend\t\nx");
	assert_string_equal(e, "a=3Db caf=C3=A9=20\r\nend=09\r\nx");
	free(e);
	e = client_test_qp("lone\rcr\r\nok\r\n");
	assert_string_equal(e, "lone=0Dcr\r\nok\r\n");
	free(e);
}

static void test_qp_long_lines(void **state)
{
	char in[3001];
	memset(in, 'x', 3000);
	in[3000] = '\0';
	in[1000] = '\xc3'; /* some 3-octet tokens near break points */
	in[1001] = '\xa9';
	in[75] = '=';
	char *e = client_test_qp(in);
	for (char *p = e; *p != '\0';) {
		char *crlf = strstr(p, "\r\n");
		size_t len = crlf != NULL ? (size_t)(crlf - p) : strlen(p);
		assert_true(len <= 76);
		p += len + (crlf != NULL ? 2 : 0);
	}
	char *d = client_test_unqp(e);
	assert_string_equal(d, in);
	free(d);
	free(e);
}

static char *client_test_2047(const char *in, size_t col, int want)
{
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(client_rfc2047_encode(&b, in, strlen(in), col), want);
	char *s = strndup(b.ptr != NULL ? b.ptr : "", b.len);
	buf_free(&b);
	return s;
}

static void test_2047_ascii_unchanged(void **state)
{
	char *e = client_test_2047("Hello world", 9, 0);
	assert_string_equal(e, "Hello world");
	free(e);
}

static void test_2047_q_word(void **state)
{
	/* mostly ASCII: Q is shorter; mostly non-ASCII: B is shorter */
	char *e = client_test_2047("Caf\xc3\xa9 au lait today", 9, 0);
	assert_string_equal(e, "=?UTF-8?Q?Caf=C3=A9_au_lait_today?=");
	free(e);
	e = client_test_2047("Gr\xc3\xbc\xc3\x9f" "e", 9, 0);
	assert_string_equal(e, "=?UTF-8?B?R3LDvMOfZQ==?=");
	free(e);
	/* "=?" in plain ASCII must be encoded so it is not read as an encoded-word */
	e = client_test_2047("a =?x?= b", 9, 0);
	assert_non_null(strstr(e, "=?UTF-8?"));
	free(e);
}

/* Long non-ASCII text: lines <= 76, words <= 75, no character split. */
static void test_2047_long_folds(void **state)
{
	char in[600] = "";
	for (int i = 0; i < 40; i++) /* euro sign, e-acute, space */
		memcpy(in + i * 6, "\xe2\x82\xac\xc3\xa9 ", 7);
	char *e = client_test_2047(in, 9, 0);
	size_t col = 9;
	struct buf dec;
	buf_init(&dec, 0);
	for (char *p = e; *p != '\0';) {
		char *crlf = strstr(p, "\r\n");
		size_t len = crlf != NULL ? (size_t)(crlf - p) : strlen(p);
		assert_true(col + len <= 76);
		col = 0;
		char *w = strstr(p, "=?UTF-8?");
		assert_non_null(w);
		char *end = strstr(w + 10, "?=");
		assert_true(end - w + 2 <= 75);
		char mode = w[8];
		if (mode == 'B') {
			struct buf chunk;
			buf_init(&chunk, 0);
			assert_int_equal(client_b64_decode(&chunk, w + 10, (size_t)(end - (w + 10))), 0);
			/* each word holds whole UTF-8 characters */
			assert_true(client_is_utf8(chunk.ptr, chunk.len));
			buf_free(&chunk);
		}
		p += len + (crlf != NULL ? 2 : 0);
	}
	buf_free(&dec);
	free(e);
}

static void test_2047_rejects_bad_input(void **state)
{
	free(client_test_2047("bad \xc3", 0, -EILSEQ));
	free(client_test_2047("ctl \x01 char", 0, -EILSEQ));
	free(client_test_2047("overlong \xc0\xaf", 0, -EILSEQ));
	free(client_test_2047("surrogate \xed\xa0\x80", 0, -EILSEQ));
}

static void test_2047_phrase(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(client_rfc2047_phrase(&b, "Doe, \"J\"", 8, 6), 0);
	assert_int_equal(b.len, strlen("\"Doe, \\\"J\\\"\""));
	assert_memory_equal(b.ptr, "\"Doe, \\\"J\\\"\"", b.len);
	buf_reset(&b);
	assert_int_equal(client_rfc2047_phrase(&b, "\xc3\x84nne", 5, 6), 0);
	assert_memory_equal(b.ptr, "=?UTF-8?B?w4RubmU=?=", b.len);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_rfc4648),
		cmocka_unit_test(test_b64_wrap_roundtrip),
		cmocka_unit_test(test_b64_decode_bad),
		cmocka_unit_test(test_qp_basic),
		cmocka_unit_test(test_qp_long_lines),
		cmocka_unit_test(test_2047_ascii_unchanged),
		cmocka_unit_test(test_2047_q_word),
		cmocka_unit_test(test_2047_long_folds),
		cmocka_unit_test(test_2047_rejects_bad_input),
		cmocka_unit_test(test_2047_phrase),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
