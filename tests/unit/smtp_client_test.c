/* smtp_client_test.c - the outbound engine without I/O: a whole transaction (EHLO
 * extensions, one refused and one accepted recipient, DATA, results), HELO
 * fallback, STARTTLS decision, SIZE refusal, and hostile replies (over-long line,
 * 1000 continuations, code change, control bytes, EOF mid-reply) -> FAILED with an
 * escaped text. Each server script is fed whole and again one byte at a time.
 * Dot-stuffing is checked on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "smtp/smtp_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Drain the output and return it as a string (static buffer). */
static const char *t_out(struct smtp_client *c)
{
	static char s[4096];
	size_t n;
	const char *p = smtp_client_output(c, &n);
	if (n >= sizeof s)
		n = sizeof s - 1;
	memcpy(s, p, n);
	s[n] = '\0';
	smtp_client_output_done(c, n);
	return s;
}

static void t_feed(struct smtp_client *c, const char *s, bool bytewise)
{
	size_t n = strlen(s);
	if (!bytewise) {
		smtp_client_feed(c, s, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		smtp_client_feed(c, s + i, 1);
}

static void t_transaction(bool bytewise)
{
	struct smtp_client_opts o = {.helo = "me.test"};
	struct smtp_client *c = smtp_client_new(&o);
	const char *rc[] = {"a@x.test", "b@x.test"};
	struct smtp_client_msg m = {.from = "s@me.test", .rcpts = rc, .nrcpts = 2, .size = 10,
	                            .eightbit = true};
	t_feed(c, "220 hi\r\n", bytewise);
	assert_string_equal(t_out(c), "EHLO me.test\r\n");
	t_feed(c, "250-x.test\r\n250-8BITMIME\r\n250 SIZE 1000\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);
	assert_true(smtp_client_has_ext(c, "8BITMIME"));
	assert_false(smtp_client_has_ext(c, "STARTTLS"));
	assert_int_equal(smtp_client_send_msg(c, &m), 0);
	assert_string_equal(t_out(c), "MAIL FROM:<s@me.test> SIZE=10 BODY=8BITMIME\r\n");
	t_feed(c, "250 ok\r\n", bytewise);
	assert_string_equal(t_out(c), "RCPT TO:<a@x.test>\r\n");
	t_feed(c, "550 5.1.1 no such user\r\n", bytewise);
	assert_string_equal(t_out(c), "RCPT TO:<b@x.test>\r\n");
	t_feed(c, "250 ok\r\n", bytewise);
	assert_string_equal(t_out(c), "DATA\r\n");
	t_feed(c, "354 go\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_BODY);
	smtp_client_body_done(c);
	t_feed(c, "250 2.0.0 queued\r\n", bytewise);
	assert_true(smtp_client_msg_finished(c));
	assert_int_equal(smtp_client_rcpt_result(c, 0)->code, 550);
	assert_string_equal(smtp_client_rcpt_result(c, 0)->text, "550 5.1.1 no such user");
	assert_int_equal(smtp_client_rcpt_result(c, 1)->code, 250);
	smtp_client_quit(c);
	assert_string_equal(t_out(c), "QUIT\r\n");
	smtp_client_eof(c, NULL);
	assert_int_equal(smtp_client_state(c), SMTP_CL_DONE);
	smtp_client_free(c);
}

static void t_transaction_whole(void **state)
{
	t_transaction(false);
}

static void t_transaction_bytes(void **state)
{
	t_transaction(true);
}

/* PIPELINING offered: MAIL + RCPTs + DATA in one output, replies matched in order;
 * three messages on one connection: partly accepted, MAIL refused (the RCPT and
 * DATA replies are still consumed), and every RCPT refused while DATA says 354
 * (an empty message is ended at once, RFC 2920 3.1). */
static void t_pipelined(bool bytewise)
{
	struct smtp_client_opts o = {.helo = "me.test"};
	struct smtp_client *c = smtp_client_new(&o);
	const char *rc[] = {"a@x.test", "b@x.test", "c@x.test"};
	const char *dsn[] = {" NOTIFY=NEVER", NULL, NULL};
	struct smtp_client_msg m = {.from = "s@me.test", .rcpts = rc, .nrcpts = 3, .size = 10,
	                            .dsn_rcpt = dsn};
	t_feed(c, "220 hi\r\n", bytewise);
	assert_string_equal(t_out(c), "EHLO me.test\r\n");
	t_feed(c, "250-x.test\r\n250-PIPELINING\r\n250-DSN\r\n250 SIZE 1000\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);

	assert_int_equal(smtp_client_send_msg(c, &m), 0);
	assert_string_equal(t_out(c), "MAIL FROM:<s@me.test> SIZE=10\r\n"
	                              "RCPT TO:<a@x.test> NOTIFY=NEVER\r\n"
	                              "RCPT TO:<b@x.test>\r\n"
	                              "RCPT TO:<c@x.test>\r\n"
	                              "DATA\r\n");
	t_feed(c, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_DATA);
	assert_string_equal(t_out(c), ""); /* nothing more until DATA's reply */
	t_feed(c, "354 go\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_BODY);
	smtp_client_body_done(c);
	t_feed(c, "250 2.0.0 queued\r\n", bytewise);
	assert_true(smtp_client_msg_finished(c));
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);
	assert_int_equal(smtp_client_rcpt_result(c, 0)->code, 250);
	assert_string_equal(smtp_client_rcpt_result(c, 0)->text, "250 2.0.0 queued");
	assert_int_equal(smtp_client_rcpt_result(c, 1)->code, 550);
	assert_int_equal(smtp_client_rcpt_result(c, 2)->code, 250);

	/* second message, same connection: MAIL refused */
	assert_int_equal(smtp_client_send_msg(c, &m), 0);
	assert_non_null(strstr(t_out(c), "RCPT TO:<c@x.test>\r\nDATA\r\n"));
	assert_false(smtp_client_msg_finished(c));
	t_feed(c, "550 5.7.1 sender refused\r\n503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first\r\n"
	          "503 5.5.1 MAIL first\r\n554 5.5.1 no valid recipients\r\n",
	       bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_RSET);
	assert_string_equal(t_out(c), "RSET\r\n");
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(smtp_client_rcpt_result(c, i)->text, "550 5.7.1 sender refused");
	t_feed(c, "250 ok\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);

	/* third: every RCPT refused but the server says 354 anyway */
	assert_int_equal(smtp_client_send_msg(c, &m), 0);
	t_out(c);
	t_feed(c, "250 ok\r\n550 a\r\n551 b\r\n552 c\r\n354 go\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_DOT);
	assert_string_equal(t_out(c), ".\r\n");
	t_feed(c, "554 empty\r\n", bytewise);
	assert_string_equal(t_out(c), "RSET\r\n");
	assert_int_equal(smtp_client_rcpt_result(c, 0)->code, 550);
	assert_int_equal(smtp_client_rcpt_result(c, 1)->code, 551);
	assert_int_equal(smtp_client_rcpt_result(c, 2)->code, 552);
	t_feed(c, "250 ok\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);
	smtp_client_quit(c);
	assert_string_equal(t_out(c), "QUIT\r\n");
	t_feed(c, "221 bye\r\n", bytewise);
	assert_int_equal(smtp_client_state(c), SMTP_CL_DONE);
	smtp_client_free(c);
}

static void t_pipelined_whole(void **state)
{
	t_pipelined(false);
}

static void t_pipelined_bytes(void **state)
{
	t_pipelined(true);
}

/* A connection drop in the middle of the pipelined replies: every rcpt gets the
 * connection's error (accepted at RCPT is not delivered). */
static void t_pipelined_drop(void **state)
{
	struct smtp_client_opts o = {.helo = "me.test"};
	struct smtp_client *c = smtp_client_new(&o);
	const char *rc[] = {"a@x.test", "b@x.test"};
	struct smtp_client_msg m = {.from = "", .rcpts = rc, .nrcpts = 2, .size = 1};
	t_feed(c, "220 hi\r\n250-x\r\n250 PIPELINING\r\n", false);
	t_out(c);
	assert_int_equal(smtp_client_send_msg(c, &m), 0);
	t_out(c);
	t_feed(c, "250 ok\r\n250 ok\r\n25", false);
	smtp_client_eof(c, NULL);
	assert_int_equal(smtp_client_state(c), SMTP_CL_FAILED);
	assert_true(smtp_client_msg_finished(c));
	assert_int_equal(smtp_client_rcpt_result(c, 0)->code, 0);
	assert_int_equal(smtp_client_rcpt_result(c, 1)->code, 0);
	assert_non_null(strstr(smtp_client_rcpt_result(c, 1)->text, "middle of a reply"));
	smtp_client_free(c);
}

static void t_helo_fallback_and_size(void **state)
{
	struct smtp_client_opts o = {.helo = "me.test", .starttls = true};
	struct smtp_client *c = smtp_client_new(&o);
	t_feed(c, "220 old\r\n", false);
	t_out(c);
	t_feed(c, "502 what\r\n", false);
	assert_string_equal(t_out(c), "HELO me.test\r\n");
	t_feed(c, "250 ok\r\n", false);
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);
	smtp_client_free(c);

	c = smtp_client_new(&o);
	t_feed(c, "220 x\r\n", false);
	t_out(c);
	t_feed(c, "250-x\r\n250-STARTTLS\r\n250 SIZE 5\r\n", false);
	assert_string_equal(t_out(c), "STARTTLS\r\n");
	t_feed(c, "220 go ahead\r\n", false);
	assert_int_equal(smtp_client_state(c), SMTP_CL_TLS);
	smtp_client_tls_done(c, true);
	assert_string_equal(t_out(c), "EHLO me.test\r\n");
	t_feed(c, "250-x\r\n250 SIZE 5\r\n", false);
	const char *rc[] = {"a@x"};
	struct smtp_client_msg m = {.from = "", .rcpts = rc, .nrcpts = 1, .size = 6};
	assert_int_equal(smtp_client_send_msg(c, &m), 0);
	assert_true(smtp_client_msg_finished(c));
	assert_int_equal(smtp_client_rcpt_result(c, 0)->code, 552);
	smtp_client_free(c);
}

static void t_auth(void **state)
{
	struct smtp_client_opts o = {.helo = "me", .starttls = true, .auth_user = "u",
	                             .auth_pass = "p"};
	struct smtp_client *c = smtp_client_new(&o);
	t_feed(c, "220 x\r\n250-x\r\n250 AUTH LOGIN PLAIN\r\n", false);
	/* no STARTTLS offered: credentials are never sent in the clear */
	assert_int_equal(smtp_client_state(c), SMTP_CL_FAILED);
	assert_non_null(strstr(smtp_client_error(c)->text, "without TLS"));
	assert_null(strstr(t_out(c), "AUTH"));
	smtp_client_free(c);

	o.tls_active = true; /* implicit TLS */
	c = smtp_client_new(&o);
	t_feed(c, "220 x\r\n", false);
	t_out(c);
	t_feed(c, "250-x\r\n250 AUTH LOGIN PLAIN\r\n", false);
	assert_string_equal(t_out(c), "AUTH PLAIN AHUAcA==\r\n"); /* "\0u\0p" */
	t_feed(c, "235 ok\r\n", false);
	assert_int_equal(smtp_client_state(c), SMTP_CL_READY);
	smtp_client_free(c);

	c = smtp_client_new(&o);
	t_feed(c, "220 x\r\n", false);
	t_out(c);
	t_feed(c, "250-x\r\n250 AUTH LOGIN\r\n", false);
	assert_string_equal(t_out(c), "AUTH LOGIN\r\n");
	t_feed(c, "334 VXNlcm5hbWU6\r\n", false);
	assert_string_equal(t_out(c), "dQ==\r\n");
	t_feed(c, "334 UGFzc3dvcmQ6\r\n", false);
	assert_string_equal(t_out(c), "cA==\r\n");
	t_feed(c, "334 again\r\n", false); /* a third challenge is not answered */
	assert_int_equal(smtp_client_state(c), SMTP_CL_FAILED);
	smtp_client_free(c);
}

static void t_hostile_one(const char *script, const char *want, bool bytewise)
{
	struct smtp_client_opts o = {.helo = "me.test"};
	struct smtp_client *c = smtp_client_new(&o);
	t_feed(c, script, bytewise);
	if (smtp_client_state(c) != SMTP_CL_FAILED)
		smtp_client_eof(c, NULL);
	assert_int_equal(smtp_client_state(c), SMTP_CL_FAILED);
	const char *t = smtp_client_error(c)->text;
	if (strstr(t, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", t, want);
	for (const char *p = t; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	smtp_client_free(c);
}

static void t_hostile(void **state)
{
	char *longline = malloc(100000);
	memset(longline, 'x', 99990);
	memcpy(longline, "220 ", 4);
	memcpy(longline + 99990, "\r\n", 3);
	char *many = malloc(1001 * 10 + 16);
	size_t o = 0;
	for (int i = 0; i < 1000; i++)
		o += (size_t)snprintf(many + o, 11, "220-line\r\n");
	snprintf(many + o, 16, "220 ok\r\n");
	for (int bw = 0; bw < 2; bw++) {
		t_hostile_one(longline, "reply line too long", bw);
		t_hostile_one(many, "too many reply lines", bw);
		t_hostile_one("220-a\r\n250 b\r\n", "code changed", bw);
		t_hostile_one("220-first\r\n220-sec", "in the middle of a reply", bw);
		t_hostile_one("2\r\n", "malformed reply", bw);
		t_hostile_one("554 go \x1b[31maway\x07\r\n", "\\x1B[31maway\\x07", bw);
	}
	free(longline);
	free(many);
}

static void t_stuff(void **state)
{
	/* fed in pieces of 1 to 14 octets (14: whole) */
	const char *msg = ".a\r\nb\r\n..c\r\nd.";
	const char *want = "..a\r\nb\r\n...c\r\nd.\r\n.\r\n";
	for (size_t piece = 1; piece <= strlen(msg); piece++) {
		struct smtp_client_stuffer st;
		struct buf b;
		buf_init(&b, 0);
		smtp_client_stuff_init(&st);
		for (size_t i = 0; i < strlen(msg); i += piece) {
			size_t k = strlen(msg) - i < piece ? strlen(msg) - i : piece;
			assert_int_equal(smtp_client_stuff(&st, msg + i, k, &b), 0);
		}
		assert_int_equal(smtp_client_stuff_end(&st, &b), 0);
		assert_int_equal(b.len, strlen(want));
		assert_memory_equal(b.ptr, want, b.len);
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_transaction_whole),
		cmocka_unit_test(t_transaction_bytes),
		cmocka_unit_test(t_pipelined_whole),
		cmocka_unit_test(t_pipelined_bytes),
		cmocka_unit_test(t_pipelined_drop),
		cmocka_unit_test(t_helo_fallback_and_size),
		cmocka_unit_test(t_auth),
		cmocka_unit_test(t_hostile),
		cmocka_unit_test(t_stuff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
