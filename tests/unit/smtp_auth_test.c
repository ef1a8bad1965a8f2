/* smtp_auth_test.c - unit tests for the engine's STARTTLS and AUTH states
 * (smtp_server.c, RFC 3207 and RFC 4954): what EHLO offers before and after TLS,
 * the STARTTLS injection boundary (input after the STARTTLS line is not consumed),
 * require_tls / submission refusals, AUTH framing (initial response, challenge
 * lines, '*', bad base64, unknown mechanism, over-long lines), every
 * smtp_server_auth_answer result, and the Received protocol word. The SASL
 * mechanisms themselves are in sasl_test.c; the glue is tested end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/smtp_server.h"
#include "util/limits.h"

struct auth_fake {
	struct smtp_server *s;
	unsigned auths, aborts, mails;
	char mech[32];
	unsigned char resp[TERN_SASL_LINE_MAX];
	size_t resp_n;
	bool has_resp;
	char out[8192];
};

static struct auth_fake A;

static void af_mail(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                    struct smtp_reply *r)
{
	A.mails++;
}

static void af_rcpt(void *ctx, const struct smtp_addr *to, struct smtp_reply *r) {}

static void af_auth(void *ctx, const char *mech, const unsigned char *resp, size_t n,
                    bool has_resp)
{
	A.auths++;
	snprintf(A.mech, sizeof A.mech, "%s", mech);
	assert_true(n <= sizeof A.resp);
	memcpy(A.resp, resp, n);
	A.resp_n = n;
	A.has_resp = has_resp;
}

static void af_auth_abort(void *ctx)
{
	A.aborts++;
}

static const struct smtp_server_ops af_ops = {
	.mail = af_mail, .rcpt = af_rcpt, .auth = af_auth, .auth_abort = af_auth_abort,
};

static struct smtp_server_opts af_opts(void)
{
	struct smtp_server_opts o = {
		.hostname = "mx.test", .max_msg_size = 10000, .max_rcpts = 5, .max_errors = 50,
		.starttls = true, .auth = true, .auth_mechs = "PLAIN LOGIN SCRAM-SHA-256",
	};
	return o;
}

static const char *af_out(void)
{
	size_t len;
	const char *o = smtp_server_output(A.s, &len);

	assert_true(len < sizeof A.out);
	memcpy(A.out, o, len);
	A.out[len] = '\0';
	smtp_server_output_done(A.s, len);
	return A.out;
}

static void af_start(const struct smtp_server_opts *o)
{
	memset(&A, 0, sizeof A);
	A.s = smtp_server_new(o, &af_ops, NULL);
	assert_non_null(A.s);
	smtp_server_greet(A.s);
	af_out();
}

static void af_end(void)
{
	smtp_server_free(A.s);
	A.s = NULL;
}

static size_t af_feed(const char *p)
{
	return smtp_server_feed(A.s, p, strlen(p));
}

/* Feed one command; the reply must start with prefix ("250", "535 5.7.8"). */
static const char *af_cmd(const char *line, const char *prefix)
{
	size_t n = strlen(line);

	assert_int_equal(af_feed(line), n);
	const char *o = af_out();
	if (strncmp(o, prefix, strlen(prefix)) != 0)
		fail_msg("after %s expected %s, got %s", line, prefix, o);
	return o;
}

/* The session after STARTTLS and the handshake, EHLO sent again. */
static void af_start_tls(const struct smtp_server_opts *o)
{
	af_start(o);
	af_cmd("EHLO c\r\n", "250");
	af_cmd("STARTTLS\r\n", "220 2.0.0");
	assert_true(smtp_server_wants_tls(A.s));
	smtp_server_tls_started(A.s);
	af_cmd("EHLO c\r\n", "250");
}

static void test_ehlo_before_and_after_tls(void **state)
{
	struct smtp_server_opts o = af_opts();
	const char *out;

	af_start(&o);
	out = af_cmd("EHLO c\r\n", "250");
	assert_non_null(strstr(out, "STARTTLS\r\n"));
	assert_null(strstr(out, "AUTH"));
	af_cmd("AUTH PLAIN\r\n", "538 5.7.11");
	af_cmd("STARTTLS now\r\n", "501 5.5.4");
	af_cmd("STARTTLS\r\n", "220");
	smtp_server_tls_started(A.s);
	/* the session starts over: EHLO again, then AUTH is offered, STARTTLS not */
	af_cmd("MAIL FROM:<a@b>\r\n", "250"); /* require_helo off: allowed */
	af_cmd("RSET\r\n", "250");
	out = af_cmd("EHLO c\r\n", "250");
	assert_null(strstr(out, "STARTTLS"));
	assert_non_null(strstr(out, "AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
	af_cmd("STARTTLS\r\n", "503 5.5.1");
	af_end();
}

static void test_starttls_stops_at_its_line(void **state)
{
	struct smtp_server_opts o = af_opts();
	const char *inj = "STARTTLS\r\nEHLO x\r\nMAIL FROM:<a@b>\r\n";

	af_start(&o);
	af_cmd("EHLO c\r\n", "250");
	assert_int_equal(af_feed(inj), strlen("STARTTLS\r\n"));
	assert_string_equal(af_out(), "220 2.0.0 Ready to start TLS\r\n");
	assert_true(smtp_server_wants_tls(A.s));
	assert_true(smtp_server_is_waiting(A.s));
	assert_int_equal(af_feed("EHLO x\r\n"), 0); /* nothing more until the handshake */
	smtp_server_tls_started(A.s);
	assert_int_equal(A.mails, 0);
	af_cmd("MAIL FROM:<a@b>\r\n", "250");
	assert_string_equal(smtp_server_helo(A.s), ""); /* the pre-TLS EHLO is forgotten */
	af_end();
}

static void test_require_tls_and_submission(void **state)
{
	struct smtp_server_opts o = af_opts();

	o.require_tls = true;
	o.require_auth = true;
	af_start(&o);
	af_cmd("EHLO c\r\n", "250");
	af_cmd("MAIL FROM:<a@b>\r\n", "530 5.7.0");
	af_cmd("AUTH PLAIN\r\n", "530 5.7.0");
	af_cmd("STARTTLS\r\n", "220");
	smtp_server_tls_started(A.s);
	af_cmd("EHLO c\r\n", "250");
	af_cmd("MAIL FROM:<a@b>\r\n", "530 5.7.0 Authentication required");
	af_cmd("AUTH PLAIN AGFsaWNlAHB3\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_OK, NULL, 0);
	assert_string_equal(af_out(), "235 2.7.0 Authentication successful\r\n");
	af_cmd("MAIL FROM:<a@b>\r\n", "250");
	assert_int_equal(A.mails, 1);
	af_end();
}

static void test_auth_initial_response_ok(void **state)
{
	struct smtp_server_opts o = af_opts();

	af_start_tls(&o);
	af_cmd("AUTH plain AGFsaWNlAHB3\r\n", ""); /* mechanism name in any case */
	assert_int_equal(A.auths, 1);
	assert_string_equal(A.mech, "PLAIN");
	assert_true(A.has_resp);
	assert_int_equal(A.resp_n, 9);
	assert_memory_equal(A.resp, "\0alice\0pw", 9);
	assert_true(smtp_server_is_waiting(A.s));
	assert_int_equal(af_feed("NOOP\r\n"), 0); /* nothing read while the check runs */
	smtp_server_auth_answer(A.s, SMTP_AUTH_OK, NULL, 0);
	assert_true(smtp_server_is_authenticated(A.s));
	assert_string_equal(af_out(), "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_server_protocol(A.s), "ESMTPSA");
	af_cmd("AUTH PLAIN AGFsaWNlAHB3\r\n", "503 5.5.1");
	af_end();
}

static void test_auth_empty_initial_response(void **state)
{
	struct smtp_server_opts o = af_opts();

	af_start_tls(&o);
	af_cmd("AUTH PLAIN =\r\n", "");
	assert_true(A.has_resp);
	assert_int_equal(A.resp_n, 0);
	smtp_server_auth_answer(A.s, SMTP_AUTH_MALFORMED, NULL, 0);
	assert_string_equal(af_out(), "501 5.5.2 Malformed authentication response\r\n");
	af_end();
}

static void test_auth_challenge_lines(void **state)
{
	struct smtp_server_opts o = af_opts();

	af_start_tls(&o);
	af_cmd("AUTH LOGIN\r\n", "");
	assert_false(A.has_resp);
	smtp_server_auth_answer(A.s, SMTP_AUTH_CONTINUE, "Username:", 9);
	assert_string_equal(af_out(), "334 VXNlcm5hbWU6\r\n");
	assert_int_equal(af_feed("Ym9i\r\n"), 6);
	assert_int_equal(A.auths, 2);
	assert_memory_equal(A.resp, "bob", 3);
	smtp_server_auth_answer(A.s, SMTP_AUTH_CONTINUE, "", 0);
	assert_string_equal(af_out(), "334 \r\n");
	af_feed("cHc=\r\n");
	smtp_server_auth_answer(A.s, SMTP_AUTH_FAIL, NULL, 0);
	assert_string_equal(af_out(), "535 5.7.8 Authentication credentials invalid\r\n");
	assert_false(smtp_server_is_authenticated(A.s));
	assert_string_equal(smtp_server_protocol(A.s), "ESMTPS");
	af_end();
}

static void test_auth_abort_and_bad_lines(void **state)
{
	struct smtp_server_opts o = af_opts();
	char *big;

	af_start_tls(&o);
	af_cmd("AUTH LOGIN\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_CONTINUE, "Username:", 9);
	af_out();
	af_cmd("*\r\n", "501 5.7.0");
	assert_int_equal(A.aborts, 1);

	af_cmd("AUTH LOGIN\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_CONTINUE, "Username:", 9);
	af_out();
	af_cmd("not base64!\r\n", "501 5.5.2");
	assert_int_equal(A.aborts, 2);

	af_cmd("AUTH LOGIN\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_CONTINUE, "Username:", 9);
	af_out();
	big = malloc(TERN_SASL_LINE_MAX + 100);
	memset(big, 'A', TERN_SASL_LINE_MAX + 96);
	memcpy(big + TERN_SASL_LINE_MAX + 96, "\r\n", 3);
	assert_int_equal(af_feed(big), strlen(big));
	free(big);
	assert_memory_equal(af_out(), "500 5.5.6", 9);
	assert_int_equal(A.aborts, 3);
	af_cmd("NOOP\r\n", "250"); /* back in command mode */
	af_end();
}

static void test_auth_command_errors(void **state)
{
	struct smtp_server_opts o = af_opts();

	af_start_tls(&o);
	af_cmd("AUTH\r\n", "501 5.5.4");
	af_cmd("AUTH CRAM-MD5\r\n", "504 5.5.4");
	af_cmd("AUTH PLAIN ***\r\n", "501 5.5.2");
	af_cmd("AUTH PLAIN Zg\r\n", "501 5.5.2");   /* padding missing */
	af_cmd("AUTH PLAIN Zg== x\r\n", "501 5.5.2");
	af_cmd("MAIL FROM:<a@b>\r\n", "250");
	af_cmd("AUTH PLAIN AGFsaWNlAHB3\r\n", "503 5.5.1"); /* inside a transaction */
	assert_int_equal(A.auths, 0);
	af_end();

	o = af_opts();
	o.auth = false;
	af_start(&o);
	af_cmd("EHLO c\r\n", "250");
	af_cmd("AUTH PLAIN\r\n", "502 5.5.1"); /* not offered at all */
	af_end();
}

static void test_auth_tempfail_and_plaintext(void **state)
{
	struct smtp_server_opts o = af_opts();
	const char *out;

	o.starttls = false;
	o.auth_plaintext = true;
	af_start(&o);
	af_cmd("AUTH PLAIN\r\n", "503 5.5.1"); /* EHLO first */
	out = af_cmd("EHLO c\r\n", "250");
	assert_non_null(strstr(out, "AUTH PLAIN"));
	af_end();
	af_start(&o);
	af_cmd("EHLO c\r\n", "250");
	af_cmd("AUTH PLAIN AGFsaWNlAHB3\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_TEMPFAIL, NULL, 0);
	assert_string_equal(af_out(), "454 4.7.0 Temporary authentication failure\r\n");
	/* an answer with nothing pending is ignored */
	smtp_server_auth_answer(A.s, SMTP_AUTH_OK, NULL, 0);
	assert_false(smtp_server_is_authenticated(A.s));
	assert_string_equal(af_out(), "");
	af_cmd("AUTH PLAIN AGFsaWNlAHB3\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_OK, NULL, 0);
	assert_string_equal(smtp_server_protocol(A.s), "ESMTPA");
	af_end();
}

static void test_tls_started_forgets_auth(void **state)
{
	struct smtp_server_opts o = af_opts();

	o.auth_plaintext = true;
	af_start(&o);
	af_cmd("EHLO c\r\n", "250");
	af_cmd("AUTH PLAIN AGFsaWNlAHB3\r\n", "");
	smtp_server_auth_answer(A.s, SMTP_AUTH_OK, NULL, 0);
	af_out();
	af_cmd("STARTTLS\r\n", "220");
	smtp_server_tls_started(A.s);
	assert_false(smtp_server_is_authenticated(A.s));
	af_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ehlo_before_and_after_tls),
		cmocka_unit_test(test_starttls_stops_at_its_line),
		cmocka_unit_test(test_require_tls_and_submission),
		cmocka_unit_test(test_auth_initial_response_ok),
		cmocka_unit_test(test_auth_empty_initial_response),
		cmocka_unit_test(test_auth_challenge_lines),
		cmocka_unit_test(test_auth_abort_and_bad_lines),
		cmocka_unit_test(test_auth_command_errors),
		cmocka_unit_test(test_auth_tempfail_and_plaintext),
		cmocka_unit_test(test_tls_started_forgets_auth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
