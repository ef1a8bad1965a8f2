/* smtp_harden_test.c - engine behaviour under hostile clients (issue 3): protocol
 * synchronization (content before the 354, talk before the greeting), backpressure
 * on replies the client never reads, bare CR refused in lenient mode too.
 * Each input is fed whole and again one byte at a time where that matters.
 * Does not test sockets or deadlines (tests/e2e/test_attack.py does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_server.h"

static int h_begins, h_commits;

static int h_begin(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                   const struct smtp_addr *rcpts, size_t nrcpts)
{
	h_begins++;
	return 0;
}

static int h_write(void *ctx, const char *p, size_t n)
{
	return 0;
}

static void h_commit(void *ctx)
{
	h_commits++;
	smtp_server_commit_done(*(struct smtp_server **)ctx, 0, "Q1");
}

static const struct smtp_server_ops h_ops = {
	.data_begin = h_begin, .data_write = h_write, .data_commit = h_commit,
};

static struct smtp_server *h_s;
static char h_out[1 << 20];

static void h_start(bool strict_sync, bool lenient)
{
	struct smtp_server_opts o = {
		.hostname = "mx.test", .max_msg_size = 10000, .max_rcpts = 100, .max_errors = 10,
		.strict_sync = strict_sync, .lenient_lf = lenient,
	};
	h_begins = h_commits = 0;
	h_s = smtp_server_new(&o, &h_ops, &h_s);
	assert_non_null(h_s);
	smtp_server_greet(h_s);
}

static const char *h_take(void)
{
	size_t len;
	const char *o = smtp_server_output(h_s, &len);
	assert_true(len < sizeof h_out);
	memcpy(h_out, o, len);
	h_out[len] = '\0';
	smtp_server_output_done(h_s, len);
	return h_out;
}

static size_t h_feed(const char *p, bool bytewise)
{
	size_t n = strlen(p), i;
	if (!bytewise)
		return smtp_server_feed(h_s, p, n);
	for (i = 0; i < n; i++)
		if (smtp_server_feed(h_s, p + i, 1) != 1)
			break;
	return i;
}

static const char h_env[] = "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n";

static void test_content_before_354(void **st)
{
	h_start(true, false);
	h_feed(h_env, false);
	h_feed("DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<evil@x.test>\r\n", false);
	const char *out = h_take();
	assert_non_null(strstr(out, "554 5.5.0 Error: SMTP protocol synchronization\r\n"));
	assert_null(strstr(out, "354"));
	assert_true(smtp_server_is_closing(h_s));
	assert_int_equal(h_begins, 0);
	assert_int_equal(h_commits, 0);
	smtp_server_free(h_s);

	/* DATA alone, then content: the normal dialogue, fed whole and bytewise */
	for (int bw = 0; bw < 2; bw++) {
		h_start(true, false);
		h_feed(h_env, bw);
		h_feed("DATA\r\n", bw);
		assert_non_null(strstr(h_take(), "354 "));
		h_feed("Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n", bw);
		const char *o2 = h_take();
		assert_non_null(strstr(o2, "250 2.0.0 Ok: queued as Q1\r\n"));
		assert_non_null(strstr(o2, "221 "));
		assert_int_equal(h_commits, 1);
		smtp_server_free(h_s);
	}

	/* without strict_sync (lenient listeners) the burst is accepted */
	h_start(false, true);
	h_feed(h_env, false);
	h_feed("DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n", false);
	assert_non_null(strstr(h_take(), "250 2.0.0 Ok"));
	smtp_server_free(h_s);
}

static void test_sync_error(void **st)
{
	struct smtp_server_opts o = {.hostname = "mx.test"};
	h_s = smtp_server_new(&o, &h_ops, &h_s);
	smtp_server_sync_error(h_s);
	assert_string_equal(h_take(), "554 5.5.0 Error: SMTP protocol synchronization\r\n");
	assert_true(smtp_server_is_closing(h_s));
	assert_int_equal(smtp_server_feed(h_s, "EHLO x\r\n", 8), 0);
	smtp_server_sync_error(h_s); /* once only */
	assert_string_equal(h_take(), "");
	smtp_server_free(h_s);
}

/* 200,000 pipelined NOOPs from a client that never reads: the engine stops consuming
 * once 64 KiB of replies are pending; reading them lets it go on. */
static void test_backpressure(void **st)
{
	static char in[200000 * 6 + 1];
	size_t n = 0, used = 0, len;
	for (int i = 0; i < 200000; i++) {
		memcpy(in + n, "NOOP\r\n", 6);
		n += 6;
	}
	h_start(false, false);
	h_take();
	used = smtp_server_feed(h_s, in, n);
	assert_true(used < n);
	smtp_server_output(h_s, &len);
	assert_true(len >= 64 * 1024 && len < 64 * 1024 + 512);
	assert_int_equal(smtp_server_feed(h_s, in + used, n - used), 0); /* still full */
	size_t replies = 0;
	while (used < n) {
		const char *o = smtp_server_output(h_s, &len);
		for (size_t i = 0; i < len; i++)
			replies += o[i] == '\n';
		smtp_server_output_done(h_s, len);
		used += smtp_server_feed(h_s, in + used, n - used);
	}
	const char *o = smtp_server_output(h_s, &len);
	for (size_t i = 0; i < len; i++)
		replies += o[i] == '\n';
	assert_int_equal(replies, 200000);
	assert_false(smtp_server_is_closing(h_s));
	smtp_server_free(h_s);
}

static void test_bare_cr_lenient(void **st)
{
	static const char *const cases[] = {
	    "a\rb\n.\n", "x\r.\rMAIL FROM:<e@x>\r\n.\r\n", "x\r\n.\rRSET\r\n.\r\n", "\r.\r\n.\r\n",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int bw = 0; bw < 2; bw++) {
			h_start(false, true);
			h_feed(h_env, bw);
			h_feed("DATA\r\n", bw);
			h_take();
			h_feed(cases[i], bw);
			assert_string_equal(h_take(),
			                    "550 5.6.0 bare CR in message content not allowed\r\n");
			assert_int_equal(h_commits, 0);
			smtp_server_free(h_s);
		}
	}
}

/* BDAT: CRLF split across chunks is fine; a bare CR/LF anywhere, or a CR as the
 * very last octet, is refused after the LAST chunk. */
static void test_bdat_bare(void **st)
{
	static const struct {
		const char *in;
		const char *last_reply;
	} cases[] = {
		{"BDAT 2\r\na\rBDAT 2 LAST\r\n\nb", "250 2.0.0 Ok: queued as Q1\r\n"},
		{"BDAT 3 LAST\r\na\r\n", "250 2.0.0 Ok: queued as Q1\r\n"},
		{"BDAT 2 LAST\r\na\r", "550 5.6.0 bare CR in message content not allowed\r\n"},
		{"BDAT 2\r\na\rBDAT 1 LAST\r\nb", "550 5.6.0 bare CR in message content not allowed\r\n"},
		{"BDAT 4 LAST\r\n\n.\r\n", "550 5.6.0 bare LF in message content not allowed\r\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int bw = 0; bw < 2; bw++) {
			h_start(false, bw);
			h_feed(h_env, false);
			h_take();
			h_feed(cases[i].in, bw);
			const char *out = h_take();
			size_t ol = strlen(out), rl = strlen(cases[i].last_reply);
			if (ol < rl || strcmp(out + ol - rl, cases[i].last_reply) != 0)
				fail_msg("case %zu: %s", i, out);
			smtp_server_free(h_s);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_before_354),
		cmocka_unit_test(test_sync_error),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_bare_cr_lenient),
		cmocka_unit_test(test_bdat_bare),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
