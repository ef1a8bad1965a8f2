/* tls_sni_test.c - unit tests for choosing a listener's certificate by the client's
 * SNI server name (src/server/tls.c: tls_sni_match, tls_sni_pick) and for the
 * all-or-nothing loading of a certificate set with its "FILE:LINE" errors.
 * No sockets; the handshake itself is tested end to end (tests/e2e/test_sni.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "server/tls.h"

static void test_match_exact(void **state)
{
	assert_true(tls_sni_match("mx.example.org", "mx.example.org"));
	assert_true(tls_sni_match("mx.example.org", "MX.Example.ORG"));
	assert_false(tls_sni_match("mx.example.org", "mx.example.org.evil"));
	assert_false(tls_sni_match("mx.example.org", "x.example.org"));
	assert_false(tls_sni_match("mx.example.org", "amx.example.org"));
	assert_false(tls_sni_match("mx.example.org", ""));
	assert_false(tls_sni_match("mx.example.org", "mx.example.or"));
}

static void test_match_wildcard(void **state)
{
	assert_true(tls_sni_match("*.example.org", "mail.example.org"));
	assert_true(tls_sni_match("*.example.org", "MAIL.EXAMPLE.ORG"));
	assert_true(tls_sni_match("*.example.org", "a.example.org"));
	/* the wildcard is one whole label: not the bare domain, not two labels */
	assert_false(tls_sni_match("*.example.org", "example.org"));
	assert_false(tls_sni_match("*.example.org", ".example.org"));
	assert_false(tls_sni_match("*.example.org", "a.b.example.org"));
	assert_false(tls_sni_match("*.example.org", "aexample.org"));
	assert_false(tls_sni_match("*.example.org", "a.example.org.net"));
	assert_false(tls_sni_match("*.example.org", "a.xexample.org"));
	/* a '*' in the name is no wildcard */
	assert_false(tls_sni_match("mx.example.org", "*.example.org"));
	assert_true(tls_sni_match("*.example.org", "*.example.org")); /* one label "*" */
}

static void test_pick(void **state)
{
	const char *lists[] = {
		"*.example.org",
		"example.org mx.example.org",
		"*.example.net other.example",
		"mx.example.net",
	};
	const size_t n = sizeof lists / sizeof lists[0];

	assert_int_equal(tls_sni_pick(lists, n, NULL), -1);
	assert_int_equal(tls_sni_pick(lists, n, ""), -1);
	assert_int_equal(tls_sni_pick(lists, n, "."), -1);
	assert_int_equal(tls_sni_pick(lists, n, "unknown.test"), -1);
	assert_int_equal(tls_sni_pick(lists, n, "example.org"), 1);
	/* an exact name wins over an earlier wildcard */
	assert_int_equal(tls_sni_pick(lists, n, "mx.example.org"), 1);
	assert_int_equal(tls_sni_pick(lists, n, "MX.EXAMPLE.ORG"), 1);
	assert_int_equal(tls_sni_pick(lists, n, "smtp.example.org"), 0);
	assert_int_equal(tls_sni_pick(lists, n, "a.b.example.org"), -1);
	assert_int_equal(tls_sni_pick(lists, n, "other.example"), 2);
	assert_int_equal(tls_sni_pick(lists, n, "mx.example.net"), 3);
	assert_int_equal(tls_sni_pick(lists, n, "mx2.example.net"), 2);
	/* one trailing dot is the same name; a space never matches */
	assert_int_equal(tls_sni_pick(lists, n, "mx.example.net."), 3);
	assert_int_equal(tls_sni_pick(lists, n, "mx.example.net.."), -1);
	assert_int_equal(tls_sni_pick(lists, n, "example.org mx.example.org"), -1);
	assert_int_equal(tls_sni_pick(lists, n, "example.org "), -1);
	/* a name that is a prefix of a listed one */
	assert_int_equal(tls_sni_pick(lists, n, "example.or"), -1);
	assert_int_equal(tls_sni_pick(lists, n, "mx"), -1);
	assert_int_equal(tls_sni_pick(lists, 0, "mx.example.net"), -1);
}

static void test_load_errors(void **state)
{
	struct tls_keypair kp[2] = {
		{NULL, "/nonexistent/cert.pem", "/nonexistent/key.pem", "t.conf:3: tls_cert"},
		{"a.example *.a.example", "/nonexistent/a.pem", "/nonexistent/a.key", "t.conf:7"},
	};
	struct tls_ctx *t = (struct tls_ctx *)&kp; /* must be reset to NULL */
	char err[600];

	assert_int_equal(tls_ctx_new(&t, kp, 2, err, sizeof err), -EINVAL);
	assert_null(t);
	assert_true(strncmp(err, "t.conf:3: tls_cert: /nonexistent/cert.pem / "
	                         "/nonexistent/key.pem: ",
	                    strlen("t.conf:3: tls_cert: /nonexistent/cert.pem / "
	                           "/nonexistent/key.pem: ")) == 0);
	/* the default first: an SNI pair without a default is refused */
	assert_int_equal(tls_ctx_new(&t, kp + 1, 1, err, sizeof err), -EINVAL);
	assert_null(t);
	assert_int_equal(tls_ctx_count(NULL), 0);
	tls_ctx_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_exact),
		cmocka_unit_test(test_match_wildcard),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests_name("tls_sni", tests, NULL, NULL);
}
