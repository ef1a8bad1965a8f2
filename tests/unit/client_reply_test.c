/* client_reply_test.c - the tern client's reply parser (multi-line, malformed,
 * over-long, control characters), explanations, sysexits mapping, and the
 * SCRAM-SHA-256 computation (RFC 7677 test vector). Each reply is fed whole-line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <sysexits.h>

#include "client/client_reply.h"
#include "client/client_scram.h"

static int client_test_feed(struct client_reply *r, const char *line)
{
	return client_reply_feed_line(r, line, strlen(line));
}

static void test_single_line(void **state)
{
	struct client_reply r;
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, "250 2.1.0 Sender ok"), 0);
	assert_true(r.done);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.1.0");
	assert_string_equal(r.text, "2.1.0 Sender ok");
	char sum[100];
	client_reply_summary(&r, sum, sizeof sum);
	assert_string_equal(sum, "250 2.1.0 Sender ok");
}

static void test_multi_line(void **state)
{
	struct client_reply r;
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, "250-mx.example greets you"), 0);
	assert_false(r.done);
	assert_int_equal(client_test_feed(&r, "250-PIPELINING"), 0);
	assert_int_equal(client_test_feed(&r, "250 8BITMIME"), 0);
	assert_true(r.done);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.text, "mx.example greets you\nPIPELINING\n8BITMIME");
	assert_string_equal(r.enh, "");
	/* a line after the end is a protocol error */
	assert_int_equal(client_test_feed(&r, "250 more"), -EPROTO);
	/* bare code is a complete reply */
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, "354"), 0);
	assert_true(r.done);
	assert_int_equal(r.code, 354);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {"", "25", "abc def", "250x ok", "199 low", "600 high",
	                                  "2500 ok", "260 second digit"};
	struct client_reply r;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		client_reply_init(&r);
		assert_int_equal(client_test_feed(&r, bad[i]), -EPROTO);
	}
	/* the code must not change inside a multi-line reply */
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, "250-first"), 0);
	assert_int_equal(client_test_feed(&r, "251 second"), -EPROTO);
	/* an enhanced code of another class is text, not an enhanced code */
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, "550 2.1.0 odd"), 0);
	assert_string_equal(r.enh, "");
}

static void test_overlong_and_ctl(void **state)
{
	char line[700];
	struct client_reply r;
	memset(line, 'a', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250 ", 4);
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, line), -EMSGSIZE);
	line[510] = '\0'; /* 510 + CRLF = 512: the limit itself is fine */
	client_reply_init(&r);
	assert_int_equal(client_test_feed(&r, line), 0);

	client_reply_init(&r);
	assert_int_equal(client_reply_feed_line(&r, "550 bad\x1b[31m\0x", 14), 0);
	assert_null(memchr(r.text, 0x1b, r.text_len));
	assert_string_equal(r.text, "bad?[31m?x");

	client_reply_init(&r);
	for (int i = 0; i < CLIENT_REPLY_LINES_MAX; i++)
		assert_int_equal(client_test_feed(&r, "250-x"), 0);
	assert_int_equal(client_test_feed(&r, "250-x"), -EMSGSIZE);
}

static void test_explain(void **state)
{
	char e[256];
	client_reply_explain(250, "2.1.0", "MAIL", e, sizeof e);
	assert_string_equal(e, "OK: sender accepted");
	client_reply_explain(250, "2.1.5", "rcpt", e, sizeof e);
	assert_string_equal(e, "OK: recipient accepted");
	client_reply_explain(550, "5.1.1", "RCPT", e, sizeof e);
	assert_string_equal(e, "permanent failure: mailbox unavailable or action refused "
	                       "(bad destination mailbox address)");
	client_reply_explain(451, "", "DATA", e, sizeof e);
	assert_string_equal(e, "temporary failure, try again later: local error in processing");
	client_reply_explain(220, "", NULL, e, sizeof e);
	assert_string_equal(e, "OK: server ready, say EHLO");
	client_reply_explain(299, "", NULL, e, sizeof e);
	assert_string_equal(e, "OK");
}

static void test_sysexits(void **state)
{
	assert_int_equal(client_exit_for_reply(421), EX_TEMPFAIL);
	assert_int_equal(client_exit_for_reply(452), EX_TEMPFAIL);
	assert_int_equal(client_exit_for_reply(550), EX_UNAVAILABLE);
	assert_int_equal(client_exit_for_reply(354), EX_PROTOCOL);
	assert_int_equal(client_exit_for_errno(-ECONNREFUSED), EX_TEMPFAIL);
	assert_int_equal(client_exit_for_errno(-ETIMEDOUT), EX_TEMPFAIL);
	assert_int_equal(client_exit_for_errno(-ENOENT), EX_NOINPUT);
	assert_int_equal(client_exit_for_errno(-EILSEQ), EX_DATAERR);
	assert_int_equal(client_exit_for_errno(-EPROTO), EX_PROTOCOL);
	assert_int_equal(client_exit_for_errno(0), EX_OK);
}

/* RFC 7677 section 3. */
static void test_scram_rfc7677(void **state)
{
	struct client_scram sc;
	char final[512];
	assert_int_equal(client_scram_start(&sc, "user", "rOprNGfwEbeRWgbNEkqO"), 0);
	assert_string_equal(sc.client_first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
	const char *sf = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	                 "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	assert_int_equal(client_scram_final(&sc, "pencil", sf, final, sizeof final), 0);
	assert_string_equal(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	                           "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	assert_int_equal(client_scram_verify(&sc, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), 0);
	assert_int_equal(client_scram_verify(&sc, "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
	                 -EPROTO);
	/* a server nonce that does not extend ours is refused */
	assert_int_equal(client_scram_final(&sc, "pencil", "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
	                                    final, sizeof final), -EPROTO);
	assert_int_equal(client_scram_start(&sc, "a,b=c", "n"), 0);
	assert_string_equal(sc.client_first, "n,,n=a=2Cb=3Dc,r=n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_multi_line),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_overlong_and_ctl),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_sysexits),
		cmocka_unit_test(test_scram_rfc7677),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
