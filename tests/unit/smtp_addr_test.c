/* smtp_addr_test.c - unit tests for the RFC 5321 path parser (smtp_addr.c):
 * valid and invalid paths, quoting, literals, source routes, limits, UTF-8.
 * Does not test the engine's mapping of errors to replies (smtp_server_test.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/smtp_addr.h"

/* Parse NUL-terminated s; returns the result and sets *used. */
static int addr_test_parse(struct smtp_addr *a, const char *s, size_t *used, bool allow_null,
                           bool allow_utf8, bool lenient)
{
	return smtp_addr_parse(a, s, strlen(s), used, allow_null, allow_utf8, lenient);
}

static void addr_test_ok(const char *s, const char *local, const char *domain)
{
	struct smtp_addr a;
	size_t used = 0;
	int rc = addr_test_parse(&a, s, &used, true, false, false);

	if (rc != 0)
		fail_msg("expected ok for '%s', got %d", s, rc);
	assert_string_equal(a.local, local);
	assert_string_equal(a.domain, domain);
	assert_int_equal(used, strlen(s));
}

static void addr_test_err(const char *s, int want)
{
	struct smtp_addr a;
	size_t used = 0;
	int rc = addr_test_parse(&a, s, &used, true, false, false);

	if (rc != want)
		fail_msg("expected %d for '%s', got %d", want, s, rc);
}

static void test_simple(void **st)
{
	addr_test_ok("<user@example.com>", "user", "example.com");
	addr_test_ok("<a.b.c@x-y.example>", "a.b.c", "x-y.example");
	addr_test_ok("<!#$%&'*+-/=?^_`{|}~@d>", "!#$%&'*+-/=?^_`{|}~", "d");
	addr_test_ok("<User@EXAMPLE.com>", "User", "EXAMPLE.com");
}

static void test_used_stops_at_bracket(void **st)
{
	struct smtp_addr a;
	size_t used;
	const char *s = "<a@b> SIZE=10";

	assert_int_equal(addr_test_parse(&a, s, &used, true, false, false), 0);
	assert_int_equal(used, 5);
}

static void test_quoted(void **st)
{
	char out[80];

	addr_test_ok("<\"john doe\"@example.com>", "\"john doe\"", "example.com");
	addr_test_ok("<\"a\\\"b\"@d>", "\"a\\\"b\"", "d");
	addr_test_ok("<\"\"@d>", "\"\"", "d");
	addr_test_ok("<\"a@b\"@d>", "\"a@b\"", "d");
	addr_test_err("<\"unterminated@d>", SMTP_ADDR_SYNTAX);
	addr_test_err("<\"bad\\\x01\"@d>", SMTP_ADDR_SYNTAX);
	addr_test_err("<\"tab\there\"@d>", SMTP_ADDR_SYNTAX);

	struct smtp_addr a;
	size_t used;
	assert_int_equal(addr_test_parse(&a, "<\"a\\\"b c\"@d>", &used, false, false, false), 0);
	assert_int_equal(smtp_addr_unquote_local(&a, out, sizeof out), 5);
	assert_string_equal(out, "a\"b c");
	assert_int_equal(addr_test_parse(&a, "<plain@d>", &used, false, false, false), 0);
	assert_int_equal(smtp_addr_unquote_local(&a, out, sizeof out), 5);
	assert_string_equal(out, "plain");
	assert_int_equal(smtp_addr_unquote_local(&a, out, 3), -1);
}

static void test_bad_dot_atom(void **st)
{
	addr_test_err("<.a@b>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a.@b>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a..b@c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a b@c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a(b)@c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<@b>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b..c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@-b.c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b-.c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b_c>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b.>", SMTP_ADDR_SYNTAX);
	addr_test_err("<user>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b>x", 0); /* trailing text is the caller's */
	addr_test_err("", SMTP_ADDR_SYNTAX);
	addr_test_err("<", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@b@c>", SMTP_ADDR_SYNTAX);
}

static void test_label_length(void **st)
{
	char s[200];
	char label[70];

	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(s, sizeof s, "<u@%s.com>", label);
	addr_test_err(s, 0);
	memset(label, 'a', 64);
	label[64] = '\0';
	snprintf(s, sizeof s, "<u@%s.com>", label);
	addr_test_err(s, SMTP_ADDR_SYNTAX);
}

static void test_literals(void **st)
{
	addr_test_ok("<a@[1.2.3.4]>", "a", "[1.2.3.4]");
	addr_test_ok("<a@[255.255.255.255]>", "a", "[255.255.255.255]");
	addr_test_ok("<a@[IPv6:::1]>", "a", "[IPv6:::1]");
	addr_test_ok("<a@[ipv6:2001:db8::1]>", "a", "[ipv6:2001:db8::1]");
	addr_test_ok("<a@[IPv6:::ffff:1.2.3.4]>", "a", "[IPv6:::ffff:1.2.3.4]");
	addr_test_err("<a@[1.2.3.256]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[1.2.3]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[1.2.3.4.5]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[IPv6:]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[IPv6:1::2::3]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[IPv6:12345::]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[::1]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[foo:bar]>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[1.2.3.4>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[1.2.3.4]x>", SMTP_ADDR_SYNTAX);
	addr_test_err("<a@[1.2 .3.4]>", SMTP_ADDR_SYNTAX);
}

static void test_source_route(void **st)
{
	addr_test_ok("<@a.example:u@d.example>", "u", "d.example");
	addr_test_ok("<@a,@b.c,@[1.2.3.4]:u@d>", "u", "d");
	addr_test_err("<@a u@d>", SMTP_ADDR_SYNTAX);
	addr_test_err("<@a,u@d>", SMTP_ADDR_SYNTAX);
	addr_test_err("<@:u@d>", SMTP_ADDR_SYNTAX);
	addr_test_err("<@a,:u@d>", SMTP_ADDR_SYNTAX);
}

static void test_null_and_postmaster(void **st)
{
	struct smtp_addr a;
	size_t used;
	char out[16];

	assert_int_equal(addr_test_parse(&a, "<>", &used, true, false, false), 0);
	assert_true(a.is_null);
	assert_int_equal(used, 2);
	assert_int_equal(smtp_addr_format(&a, out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(addr_test_parse(&a, "<>", &used, false, false, false),
	                 SMTP_ADDR_NULL_RCPT);
	assert_int_equal(addr_test_parse(&a, "<Postmaster>", &used, false, false, false), 0);
	assert_true(a.is_postmaster);
	assert_false(a.is_null);
	assert_string_equal(a.domain, "");
	assert_int_equal(smtp_addr_format(&a, out, sizeof out), 10);
	assert_string_equal(out, "Postmaster");
	assert_int_equal(addr_test_parse(&a, "<postmaster>", &used, false, false, false), 0);
	assert_true(a.is_postmaster);
	assert_int_equal(addr_test_parse(&a, "<postmaster@d>", &used, false, false, false), 0);
	assert_false(a.is_postmaster);
	assert_int_equal(addr_test_parse(&a, "<postmastr>", &used, false, false, false),
	                 SMTP_ADDR_SYNTAX);
}

static void test_format(void **st)
{
	struct smtp_addr a;
	size_t used;
	char out[64];

	assert_int_equal(addr_test_parse(&a, "<@r:u@d.example>", &used, false, false, false), 0);
	assert_int_equal(smtp_addr_format(&a, out, sizeof out), 11);
	assert_string_equal(out, "u@d.example");
	assert_int_equal(smtp_addr_format(&a, out, 11), -1);
	assert_int_equal(smtp_addr_format(&a, out, 12), 11);
}

static void test_brackets(void **st)
{
	struct smtp_addr a;
	size_t used;

	assert_int_equal(addr_test_parse(&a, "a@b", &used, true, false, false), SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "a@b", &used, true, false, true), 0);
	assert_int_equal(used, 3);
	assert_string_equal(a.local, "a");
	assert_int_equal(addr_test_parse(&a, "a@b SIZE=1", &used, true, false, true), 0);
	assert_int_equal(used, 3);
	assert_int_equal(addr_test_parse(&a, "a@b>", &used, true, false, true), SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "", &used, true, false, true), SMTP_ADDR_SYNTAX);
}

/* "<" local "@" domain ">" with the given sizes */
static int addr_test_sized(size_t llen, size_t dlen)
{
	char s[1200];
	struct smtp_addr a;
	size_t used, i = 0, k;

	s[i++] = '<';
	for (k = 0; k < llen; k++)
		s[i++] = 'l';
	s[i++] = '@';
	for (k = 0; k < dlen; k++)
		s[i++] = (k % 10 == 9 && k + 1 != dlen) ? '.' : 'd';
	s[i++] = '>';
	return smtp_addr_parse(&a, s, i, &used, false, false, false);
}

static void test_lengths(void **st)
{
	assert_int_equal(addr_test_sized(64, 10), 0);
	assert_int_equal(addr_test_sized(65, 10), SMTP_ADDR_TOO_LONG);
	/* path = 1 + 64 + 1 + 189 + 1 = 256 */
	assert_int_equal(addr_test_sized(64, 189), 0);
	assert_int_equal(addr_test_sized(64, 190), SMTP_ADDR_TOO_LONG);
	assert_int_equal(addr_test_sized(10, 243), 0);
	assert_int_equal(addr_test_sized(10, 244), SMTP_ADDR_TOO_LONG);
	assert_int_equal(addr_test_sized(1, 256), SMTP_ADDR_TOO_LONG);
	assert_int_equal(addr_test_sized(200, 20), SMTP_ADDR_TOO_LONG);
}

static void test_utf8(void **st)
{
	struct smtp_addr a;
	size_t used;

	assert_int_equal(addr_test_parse(&a, "<j\xc3\xb6rg@b\xc3\xbc" "cher.de>", &used, false,
	                                 false, false),
	                 SMTP_ADDR_UTF8);
	assert_int_equal(addr_test_parse(&a, "<j\xc3\xb6rg@b\xc3\xbc" "cher.de>", &used, false,
	                                 true, false),
	                 0);
	assert_true(a.is_utf8);
	assert_string_equal(a.local, "j\xc3\xb6rg");
	assert_int_equal(addr_test_parse(&a, "<\xe2\x82\xac@d>", &used, false, true, false), 0);
	assert_int_equal(addr_test_parse(&a, "<\xf0\x9f\x98\x80@d>", &used, false, true, false),
	                 0);
	assert_int_equal(addr_test_parse(&a, "<\"\xc3\xa9 x\"@d>", &used, false, true, false), 0);
	assert_int_equal(addr_test_parse(&a, "<plain@d>", &used, false, true, false), 0);
	assert_false(a.is_utf8);
	/* malformed: lone continuation, truncated, overlong, surrogate, > U+10FFFF */
	assert_int_equal(addr_test_parse(&a, "<\x80@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "<\xc3@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "<\xc0\xaf@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "<\xe0\x80\xaf@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "<\xed\xa0\x80@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "<\xf4\x90\x80\x80@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	assert_int_equal(addr_test_parse(&a, "<\xff@d>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
	/* malformed is a syntax error even when UTF-8 is not allowed */
	assert_int_equal(addr_test_parse(&a, "<\xff@d>", &used, false, false, false),
	                 SMTP_ADDR_SYNTAX);
	/* UTF-8 in a domain literal is never allowed */
	assert_int_equal(addr_test_parse(&a, "<a@[\xc3\xa9]>", &used, false, true, false),
	                 SMTP_ADDR_SYNTAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_used_stops_at_bracket),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_bad_dot_atom),
		cmocka_unit_test(test_label_length),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_source_route),
		cmocka_unit_test(test_null_and_postmaster),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_brackets),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
