/* smtp_server_test.c - unit tests for the inbound SMTP engine (smtp_server.c) with
 * fake ops that record every call: each command in each relevant state, reply codes,
 * pipelining, the DATA decoder (whole and one byte at a time), smuggling sequences,
 * lenient mode, line limits, BDAT, error limits, commit paths, and the transcripts
 * in tests/unit/transcripts/. Does not test the daemon glue or real sockets.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp/smtp_reply.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"

/* ---- fake glue ------------------------------------------------------------- */

struct fake {
	struct smtp_server *s;
	struct buf log;  /* "MAIL <a@b> " "RCPT <c@d> " "BEGIN 1 " "COMMIT " "ABORT " */
	struct buf data; /* everything data_write received */
	unsigned writes, begins, commits, aborts;
	int begin_rc, write_rc;
	bool defer_commit;
	int commit_err;
	const char *qid;
	bool open;
	char out[1 << 17];
};

static struct fake F;

static void fake_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fake_log(const char *fmt, ...)
{
	char tmp[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	assert_int_equal(buf_append_str(&F.log, tmp), 0);
}

static void fake_set(struct smtp_reply *r, int code, const char *enh, const char *text)
{
	r->code = code;
	snprintf(r->enh, sizeof r->enh, "%s", enh);
	snprintf(r->text, sizeof r->text, "%s", text);
}

static void fake_mail(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                      struct smtp_reply *r)
{
	char a[400];

	smtp_addr_format(from, a, sizeof a);
	fake_log("MAIL <%s> size=%llu body=%d utf8=%d ", a, (unsigned long long)p->size, (int)p->body,
	         (int)p->smtputf8);
	if (strcmp(from->local, "reject") == 0)
		fake_set(r, 550, "5.7.1", "Sender rejected");
}

static void fake_rcpt(void *ctx, const struct smtp_addr *to, struct smtp_reply *r)
{
	char a[400];

	smtp_addr_format(to, a, sizeof a);
	fake_log("RCPT <%s> ", a);
	if (strcmp(to->local, "unknown") == 0)
		fake_set(r, 550, "5.1.1", "User unknown");
	else if (strcmp(to->local, "evil") == 0)
		fake_set(r, 250, "2.1.5", "fine\r\x1b[31m");
	else if (strcmp(to->local, "buggy") == 0)
		fake_set(r, 99, "", "bad code");
}

static void fake_vrfy(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	fake_log("VRFY %.*s ", (int)n, arg);
	fake_set(r, 250, "2.1.5", "User <u@example.org>");
}

static void fake_expn(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	fake_log("EXPN %.*s ", (int)n, arg);
	fake_set(r, 250, "2.1.5", "<a@example.org>\n<b@example.org>");
}

static int fake_begin(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                      const struct smtp_addr *rcpts, size_t nrcpts)
{
	F.begins++;
	fake_log("BEGIN %zu ", nrcpts);
	assert_false(F.open);
	if (F.begin_rc == 0)
		F.open = true;
	return F.begin_rc;
}

static int fake_write(void *ctx, const char *p, size_t n)
{
	assert_true(F.open);
	assert_true(n > 0);
	F.writes++;
	assert_int_equal(buf_append(&F.data, p, n), 0);
	return F.write_rc;
}

static void fake_commit(void *ctx)
{
	assert_true(F.open);
	F.open = false;
	F.commits++;
	fake_log("COMMIT ");
	if (!F.defer_commit)
		smtp_server_commit_done(F.s, F.commit_err, F.qid);
}

static void fake_abort(void *ctx)
{
	assert_true(F.open);
	F.open = false;
	F.aborts++;
	fake_log("ABORT ");
}

static const struct smtp_server_ops fake_ops = {
	.mail = fake_mail, .rcpt = fake_rcpt, .vrfy = fake_vrfy, .expn = fake_expn,
	.data_begin = fake_begin, .data_write = fake_write, .data_commit = fake_commit,
	.data_abort = fake_abort,
};

static struct smtp_server_opts t_opts(void)
{
	struct smtp_server_opts o = {
		.hostname = "mx.test", .max_msg_size = 10000, .max_rcpts = 5, .max_errors = 10,
	};
	return o;
}

/* Fresh session, greeted, output cleared. */
static void t_start(const struct smtp_server_opts *o)
{
	buf_free(&F.log);
	buf_free(&F.data);
	memset(&F, 0, sizeof F);
	buf_init(&F.log, 0);
	buf_init(&F.data, 0);
	F.qid = "Q1";
	F.s = smtp_server_new(o, &fake_ops, NULL);
	assert_non_null(F.s);
	smtp_server_greet(F.s);
	size_t len;
	smtp_server_output(F.s, &len);
	smtp_server_output_done(F.s, len);
}

static void t_start_default(void)
{
	struct smtp_server_opts o = t_opts();
	t_start(&o);
}

static void t_end(void)
{
	smtp_server_free(F.s);
	F.s = NULL;
	assert_false(F.open);
	buf_free(&F.log);
	buf_free(&F.data);
}

static size_t t_feedn(const char *p, size_t n)
{
	return smtp_server_feed(F.s, p, n);
}

static size_t t_feed(const char *p)
{
	return t_feedn(p, strlen(p));
}

/* Feed everything, one byte per call; returns total consumed (stops when refused). */
static size_t t_feed_bytes(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t_feedn(p + i, 1) != 1)
			break;
	return i;
}

/* Pending output as a string; clears it. */
static const char *t_out(void)
{
	size_t len;
	const char *o = smtp_server_output(F.s, &len);

	assert_true(len < sizeof F.out);
	memcpy(F.out, o, len);
	F.out[len] = '\0';
	smtp_server_output_done(F.s, len);
	return F.out;
}

static const char *t_log(void)
{
	return buf_cstr(&F.log) ? F.log.ptr : "";
}

static const char *t_data(void)
{
	return buf_cstr(&F.data) ? F.data.ptr : "";
}

#define T_EQ(cmd, want)                                  \
	do {                                             \
		t_feed(cmd);                             \
		assert_string_equal(t_out(), (want));   \
	} while (0)

static void t_envelope(void)
{
	T_EQ("EHLO c.test\r\n", "250-mx.test greets c.test\r\n250-SIZE 10000\r\n250-PIPELINING\r\n"
	                        "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n"
	                        "250-CHUNKING\r\n250 HELP\r\n");
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RCPT TO:<c@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
}

/* ---- greeting, HELO/EHLO --------------------------------------------------- */

static void test_greeting(void **st)
{
	struct smtp_server_opts o = t_opts();
	struct smtp_server *s = smtp_server_new(&o, &fake_ops, NULL);
	size_t len;
	const char *out;

	assert_int_equal(smtp_server_state(s), SMTP_ST_CONNECTED);
	smtp_server_greet(s);
	out = smtp_server_output(s, &len);
	assert_int_equal(len, strlen("220 mx.test ESMTP tern\r\n"));
	assert_memory_equal(out, "220 mx.test ESMTP tern\r\n", len);
	assert_int_equal(smtp_server_state(s), SMTP_ST_READY);
	assert_string_equal(smtp_server_protocol(s), "SMTP");
	assert_string_equal(smtp_server_helo(s), "");
	smtp_server_output_done(s, 4);
	out = smtp_server_output(s, &len);
	assert_memory_equal(out, "mx.test", 7);
	smtp_server_free(s);
	smtp_server_free(NULL);

	o.greeting = "Welcome";
	t_start(&o);
	t_end();
	s = smtp_server_new(&o, NULL, NULL);
	smtp_server_greet(s);
	out = smtp_server_output(s, &len);
	assert_memory_equal(out, "220 mx.test Welcome\r\n", len);
	smtp_server_free(s);
}

static void test_ehlo_helo(void **st)
{
	t_start_default();
	t_envelope();
	assert_string_equal(smtp_server_protocol(F.s), "ESMTP");
	assert_string_equal(smtp_server_helo(F.s), "c.test");
	/* HELO resets the transaction */
	T_EQ("HELO other.test\r\n", "250 mx.test\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	assert_string_equal(smtp_server_protocol(F.s), "SMTP");
	assert_string_equal(smtp_server_helo(F.s), "other.test");
	T_EQ("RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	T_EQ("HELO\r\n", "501 5.5.4 Syntax: HELO/EHLO hostname\r\n");
	T_EQ("EHLO   \r\n", "501 5.5.4 Syntax: HELO/EHLO hostname\r\n");
	T_EQ("ehlo [127.0.0.1]\r\n", "250-mx.test greets [127.0.0.1]\r\n250-SIZE 10000\r\n"
	                             "250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n"
	                             "250-SMTPUTF8\r\n250-CHUNKING\r\n250 HELP\r\n");
	T_EQ("HeLo x\r\n", "250 mx.test\r\n");
	T_EQ("HELO a\xc3\xa9\r\n", "501 5.5.4 Invalid HELO/EHLO hostname\r\n");
	t_end();
}

static void test_ehlo_aborts_bdat(void **st)
{
	t_start_default();
	t_envelope();
	T_EQ("BDAT 3\r\nabc", "250 2.0.0 3 octets received\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_BDAT_WAIT);
	T_EQ("EHLO again\r\n", "250-mx.test greets again\r\n250-SIZE 10000\r\n250-PIPELINING\r\n"
	                       "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n"
	                       "250-CHUNKING\r\n250 HELP\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	t_end();
}

/* ---- MAIL ------------------------------------------------------------------- */

static void test_mail(void **st)
{
	t_start_default();
	/* without HELO: accepted (require_helo off) */
	T_EQ("mail from:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_MAIL);
	T_EQ("MAIL FROM:<x@y.test>\r\n", "503 5.5.1 Error: nested MAIL command\r\n");
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	T_EQ("MAIL FROM: <a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	T_EQ("MAIL FROM:<>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	T_EQ("MAIL FROM:<@r.test:a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	assert_string_equal(t_log(), "MAIL <a@b.test> size=0 body=0 utf8=0 "
	                             "MAIL <a@b.test> size=0 body=0 utf8=0 "
	                             "MAIL <> size=0 body=0 utf8=0 "
	                             "MAIL <a@b.test> size=0 body=0 utf8=0 ");
	T_EQ("MAIL TO:<a@b.test>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	T_EQ("MAIL\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	T_EQ("MAIL FROM:a@b.test\r\n", "501 5.1.7 Bad sender address syntax\r\n");
	T_EQ("MAIL FROM:<a@@b.test>\r\n", "501 5.1.7 Bad sender address syntax\r\n");
	T_EQ("MAIL FROM:<Postmaster>\r\n", "501 5.1.7 Bad sender address syntax\r\n");
	T_EQ("MAIL FROM:<a@b.test>junk\r\n",
	     "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n");
	char line[400];
	memset(line, 0, sizeof line);
	memcpy(line, "MAIL FROM:<", 11);
	memset(line + 11, 'x', 65);
	memcpy(line + 76, "@b.test>\r\n", 10);
	T_EQ(line, "501 5.1.7 Bad sender address: too long\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	t_end();
}

static void test_mail_lenient_brackets(void **st)
{
	struct smtp_server_opts o = t_opts();

	o.lenient_lf = true;
	t_start(&o);
	T_EQ("MAIL FROM:a@b.test SIZE=5\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RCPT TO:c@d.test\r\n", "250 2.1.5 Recipient ok\r\n");
	t_end();
}

static void test_mail_require_helo(void **st)
{
	struct smtp_server_opts o = t_opts();

	o.require_helo = true;
	t_start(&o);
	T_EQ("MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n");
	T_EQ("HELO c\r\n", "250 mx.test\r\n");
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	t_end();
}

static void test_mail_params(void **st)
{
	static const struct {
		const char *params;
		const char *reply;
	} cases[] = {
		{ " SIZE=100", "250 2.1.0 Sender ok\r\n" },
		{ " size=10000", "250 2.1.0 Sender ok\r\n" },
		{ " SIZE=10001", "552 5.3.4 Message size exceeds fixed limit\r\n" },
		{ " SIZE=abc", "501 5.5.4 Bad SIZE parameter\r\n" },
		{ " SIZE=", "501 5.5.4 Bad SIZE parameter\r\n" },
		{ " SIZE", "501 5.5.4 Bad SIZE parameter\r\n" },
		{ " SIZE=99999999999999999999", "501 5.5.4 Bad SIZE parameter\r\n" },
		{ " SIZE=123456789012345678901", "501 5.5.4 Bad SIZE parameter\r\n" },
		{ " SIZE=1 SIZE=2", "555 5.5.4 Duplicate MAIL parameter\r\n" },
		{ " BODY=8BITMIME", "250 2.1.0 Sender ok\r\n" },
		{ " BODY=7bit", "250 2.1.0 Sender ok\r\n" },
		{ " BODY=BINARYMIME", "555 5.5.4 BODY=BINARYMIME not supported\r\n" },
		{ " BODY=9BIT", "501 5.5.4 Bad BODY parameter\r\n" },
		{ " BODY=7BIT BODY=7BIT", "555 5.5.4 Duplicate MAIL parameter\r\n" },
		{ " SMTPUTF8", "250 2.1.0 Sender ok\r\n" },
		{ " SMTPUTF8=yes", "501 5.5.4 SMTPUTF8 takes no value\r\n" },
		{ " SMTPUTF8 smtputf8", "555 5.5.4 Duplicate MAIL parameter\r\n" },
		{ " FOO=1", "555 5.5.4 Unsupported MAIL parameter\r\n" },
		{ " RET=HDRS ENVID=a+2Bb", "250 2.1.0 Sender ok\r\n" },  /* RFC 3461 */
		{ " RET=MAYBE", "501 5.5.4 Bad or repeated RET/ENVID parameter\r\n" },
		{ " ENVID=a=b", "501 5.5.4 Bad or repeated RET/ENVID parameter\r\n" },
		{ " ENVID=x+00y", "501 5.5.4 Bad or repeated RET/ENVID parameter\r\n" },
		{ "  SIZE=1   BODY=8BITMIME  SMTPUTF8", "250 2.1.0 Sender ok\r\n" },
	};
	size_t i;
	char line[200];

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		t_start_default();
		T_EQ("EHLO c\r\n", "250-mx.test greets c\r\n250-SIZE 10000\r\n250-PIPELINING\r\n"
		                   "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n"
		                   "250-CHUNKING\r\n250 HELP\r\n");
		snprintf(line, sizeof line, "MAIL FROM:<a@b.test>%s\r\n", cases[i].params);
		t_feed(line);
		const char *got = t_out();
		if (strcmp(got, cases[i].reply) != 0)
			fail_msg("params '%s': got '%s' want '%s'", cases[i].params, got,
			         cases[i].reply);
		t_end();
	}
	t_start_default();
	T_EQ("MAIL FROM:<a@b.test> SIZE=77 BODY=8BITMIME SMTPUTF8\r\n", "250 2.1.0 Sender ok\r\n");
	assert_string_equal(t_log(), "MAIL <a@b.test> size=77 body=1 utf8=1 ");
	t_end();
}

static void test_mail_utf8(void **st)
{
	t_start_default();
	T_EQ("MAIL FROM:<j\xc3\xb6rg@b.test>\r\n", "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n");
	T_EQ("MAIL FROM:<j\xc3\xb6rg@b.test> SMTPUTF8\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RCPT TO:<\xe2\x82\xac@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("RCPT TO:<\xe2\x82@d.test>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RCPT TO:<\xe2\x82\xac@d.test>\r\n",
	     "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n");
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	T_EQ("MAIL FROM:<\xff@b.test> SMTPUTF8\r\n", "501 5.1.7 Bad sender address syntax\r\n");
	t_end();
}

static void test_policy_replies(void **st)
{
	t_start_default();
	T_EQ("HELO c\r\n", "250 mx.test\r\n");
	T_EQ("MAIL FROM:<reject@b.test>\r\n", "550 5.7.1 Sender rejected\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RCPT TO:<unknown@d.test>\r\n", "550 5.1.1 User unknown\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_MAIL);
	/* control characters from a callback never reach the wire */
	T_EQ("RCPT TO:<buggy@d.test>\r\n", "451 4.3.0 Local error in processing\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_MAIL);
	T_EQ("RCPT TO:<evil@d.test>\r\n", "250 2.1.5 fine??[31m\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_RCPT);
	t_end();
}

/* ---- RCPT ------------------------------------------------------------------- */

static void test_rcpt(void **st)
{
	t_start_default();
	T_EQ("RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	T_EQ("HELO c\r\n", "250 mx.test\r\n");
	T_EQ("RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("RCPT TO:<>\r\n", "501 5.1.3 Null recipient not allowed\r\n");
	T_EQ("RCPT TO:c@d.test\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
	T_EQ("RCPT TO:<c@d..test>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
	T_EQ("RCPT FROM:<c@d.test>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	T_EQ("RCPT TO:<c@d.test> NOTIFY=NEVER,DELAY\r\n",
	     "555 5.5.4 Unsupported or bad RCPT parameter\r\n");
	T_EQ("RCPT TO:<c@d.test> FOO=1\r\n", "555 5.5.4 Unsupported or bad RCPT parameter\r\n");
	T_EQ("RCPT TO:<c@[1.2.3.999]>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
	T_EQ("RCPT TO:<Postmaster>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("rcpt to: <c@[IPv6:::1]>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("RCPT TO:<\"q x\"@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("RCPT TO:<@x,@y:c@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("RCPT TO:<e@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
	/* max_rcpts = 5 */
	T_EQ("RCPT TO:<f@d.test>\r\n", "452 4.5.3 Too many recipients\r\n");
	assert_string_equal(t_log(), "MAIL <a@b.test> size=0 body=0 utf8=0 "
	                             "RCPT <Postmaster> RCPT <c@[IPv6:::1]> RCPT <\"q x\"@d.test> "
	                             "RCPT <c@d.test> RCPT <e@d.test> ");
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_string_equal(t_log(), "MAIL <a@b.test> size=0 body=0 utf8=0 "
	                             "RCPT <Postmaster> RCPT <c@[IPv6:::1]> RCPT <\"q x\"@d.test> "
	                             "RCPT <c@d.test> RCPT <e@d.test> BEGIN 5 ");
	T_EQ(".\r\n", "250 2.0.0 Ok: queued as Q1\r\n");
	t_end();
}

/* ---- DATA ------------------------------------------------------------------- */

static void test_data_sequence(void **st)
{
	t_start_default();
	T_EQ("DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_MAIL);
	T_EQ("RCPT TO:<c@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("DATA now\r\n", "501 5.5.4 Syntax error: no arguments allowed\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_RCPT);
	assert_int_equal(F.begins, 0);
	t_end();
}

static void test_data_basic(void **st)
{
	t_start_default();
	t_envelope();
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_DATA);
	T_EQ("Subject: hi\r\n\r\n..leading dot\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n");
	assert_string_equal(t_data(), "Subject: hi\r\n\r\n.leading dot\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	assert_string_equal(t_log(), "MAIL <a@b.test> size=0 body=0 utf8=0 RCPT <c@d.test> "
	                             "BEGIN 1 COMMIT ");
	/* a second transaction in the same session */
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	     "354 End data with <CR><LF>.<CR><LF>\r\n");
	F.qid = "Q2";
	T_EQ(".\r\n", "250 2.0.0 Ok: queued as Q2\r\n");
	assert_int_equal(F.commits, 2);
	t_end();
}

/* Content inputs for the decoder: raw (after 354) -> decoded, and final reply. */
static const struct {
	const char *raw;
	const char *decoded; /* NULL: rejected, nothing expected */
	const char *reply;
	bool lenient;
} data_cases[] = {
	{ ".\r\n", "", "250 2.0.0 Ok: queued as Q1\r\n", false },
	{ "a\r\n.\r\n", "a\r\n", "250 2.0.0 Ok: queued as Q1\r\n", false },
	{ "..\r\n.\r\n", ".\r\n", "250 2.0.0 Ok: queued as Q1\r\n", false },
	{ "...x\r\n..\r\n.\r\n", "..x\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n", false },
	{ "a.\r\nb\r\n .\r\n.\r\n", "a.\r\nb\r\n .\r\n", "250 2.0.0 Ok: queued as Q1\r\n", false },
	{ "\xc3\xa9\xff\x00z\r\n.\r\n", "\xc3\xa9\xff", "250 2.0.0 Ok: queued as Q1\r\n", false },
	{ "a\nb\r\n.\r\n", NULL, "550 5.6.0 bare LF in message content not allowed\r\n", false },
	{ "a\rb\r\n.\r\n", NULL, "550 5.6.0 bare CR in message content not allowed\r\n", false },
	{ "a\r\r\n.\r\n", NULL, "550 5.6.0 bare CR in message content not allowed\r\n", false },
	{ ".\rx\r\n.\r\n", NULL, "550 5.6.0 bare CR in message content not allowed\r\n", false },
	{ "a\n.\nb\r\n.\r\n", NULL, "550 5.6.0 bare LF in message content not allowed\r\n", false },
	{ "a\nb\n.\n", "a\r\nb\r\n", "250 2.0.0 Ok: queued as Q1\r\n", true },
	{ "a\r\nb\n.\r\n", "a\r\nb\r\n", "250 2.0.0 Ok: queued as Q1\r\n", true },
	{ "..a\n.\n", ".a\r\n", "250 2.0.0 Ok: queued as Q1\r\n", true },
	{ "a\rb\n.\n", NULL, "550 5.6.0 bare CR in message content not allowed\r\n", true },
	{ "a\r\n.\rMAIL\n.\n", NULL, "550 5.6.0 bare CR in message content not allowed\r\n", true },
	{ "\n.\n", "\r\n", "250 2.0.0 Ok: queued as Q1\r\n", true },
};

static void test_data_decoder(void **st)
{
	size_t i;
	int mode;

	for (i = 0; i < sizeof data_cases / sizeof data_cases[0]; i++) {
		for (mode = 0; mode < 2; mode++) {
			struct smtp_server_opts o = t_opts();
			const char *raw = data_cases[i].raw;
			size_t n = strlen(raw), used;

			if (i == 5)
				n = 10; /* contains a NUL */
			o.lenient_lf = data_cases[i].lenient;
			t_start(&o);
			t_envelope();
			T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
			used = mode ? t_feed_bytes(raw, n) : t_feedn(raw, n);
			assert_int_equal(used, n);
			const char *got = t_out();
			if (strcmp(got, data_cases[i].reply) != 0)
				fail_msg("case %zu mode %d: reply '%s'", i, mode, got);
			if (data_cases[i].decoded) {
				size_t dl = strlen(data_cases[i].decoded);
				if (i == 5)
					dl = 7;
				if (i == 5)
					assert_memory_equal(F.data.ptr, "\xc3\xa9\xff\x00z\r\n", 7);
				else
					assert_string_equal(t_data(), data_cases[i].decoded);
				assert_int_equal(F.data.len, dl);
				assert_int_equal(F.commits, 1);
			} else {
				assert_int_equal(F.commits, 0);
				assert_int_equal(F.aborts, 1);
			}
			assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
			t_end();
		}
	}
}

/* ---- the decoder, however the input is split ------------------------------
 * smtp_server_data_lines takes runs of ordinary lines at once and leaves everything
 * else to the octet-at-a-time decoder: whatever the split, the stored bytes, the
 * replies and the octets consumed must be the same. */

static uint32_t t_rnd;

static uint32_t t_rand(void)
{
	t_rnd ^= t_rnd << 13;
	t_rnd ^= t_rnd >> 17;
	t_rnd ^= t_rnd << 5;
	return t_rnd;
}

/* Random content made of what the decoder must tell apart: text (sometimes lines
 * over 1000 octets), CRLF, dots at line starts, lone CRs and LFs, "\n.\n", and now
 * and then the end of the data in the middle (the rest is then commands). */
static size_t t_random_content(char *p, size_t max)
{
	static const char *const toks[] = {"\r\n", "\r\n", "\r\n", "\r\n.", "\r\n..", ".",
	                                   "\r", "\n", "\n.\n", "\r.\r", "\r\n.\r\n", "\r\r\n"};
	size_t n = 0;
	while (n + 1100 < max && t_rand() % 64 != 0) {
		uint32_t r = t_rand() % 100;
		if (r < 55) {
			size_t len = t_rand() % 8 == 0 ? t_rand() % 1100 : t_rand() % 80;
			for (size_t i = 0; i < len; i++)
				p[n++] = (char)('a' + t_rand() % 26);
		} else {
			size_t k = t_rand() % (sizeof toks / sizeof toks[0]);
			if (k == sizeof toks / sizeof toks[0] - 2 && t_rand() % 8 != 0)
				k = 0; /* the end in the middle: rarely */
			memcpy(p + n, toks[k], strlen(toks[k]));
			n += strlen(toks[k]);
		}
	}
	memcpy(p + n, "\r\n.\r\nNOOP\r\n", 11);
	return n + 11;
}

/* Feed in (after DATA) whole (how 0), an octet at a time (1), or in random pieces
 * of up to 7 (2) or 3000 (3) octets; returns the octets consumed. */
static size_t t_decode(const char *in, size_t n, bool lenient, int how, char *reply,
                       size_t rsz, struct buf *data)
{
	struct smtp_server_opts o = t_opts();
	o.lenient_lf = lenient;
	t_start(&o);
	t_envelope();
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	size_t i = 0;
	while (i < n) {
		size_t k = how == 0 ? n - i : how == 1 ? 1 : 1 + t_rand() % (how == 2 ? 7 : 3000);
		if (k > n - i)
			k = n - i;
		size_t used = t_feedn(in + i, k);
		i += used;
		if (used < k)
			break;
	}
	snprintf(reply, rsz, "%s", t_out());
	buf_free(data);
	buf_init(data, 0);
	assert_int_equal(buf_append(data, F.data.ptr ? F.data.ptr : "", F.data.len), 0);
	F.open = false;
	t_end();
	return i;
}

static void test_data_decoder_splits(void **st)
{
	static char in[16384];
	static char r0[8192], r1[8192];
	struct buf d0, d1;
	buf_init(&d0, 0);
	buf_init(&d1, 0);
	for (uint32_t seed = 1; seed <= 400; seed++) {
		t_rnd = seed * 2654435761u;
		size_t n = t_random_content(in, sizeof in);
		for (int lenient = 0; lenient < 2; lenient++) {
			size_t u0 = t_decode(in, n, lenient, 0, r0, sizeof r0, &d0);
			for (int how = 1; how < 4; how++) {
				size_t u1 = t_decode(in, n, lenient, how, r1, sizeof r1, &d1);
				if (u0 != u1 || strcmp(r0, r1) != 0 || d0.len != d1.len ||
				    (d0.len > 0 && memcmp(d0.ptr, d1.ptr, d0.len) != 0))
					fail_msg("seed %u lenient %d split %d: consumed %zu/%zu, replies "
					         "'%s' / '%s', stored %zu/%zu octets",
					         seed, lenient, how, u0, u1, r0, r1, d0.len, d1.len);
			}
		}
	}
	buf_free(&d0);
	buf_free(&d1);
}

/* Well-formed content against an independent model: lines (some starting with a
 * dot, some empty) stuffed and sent with CRLF come back as they were. */
static void test_data_decoder_model(void **st)
{
	static char in[16384], want[16384];
	static char reply[8192];
	struct buf got;
	buf_init(&got, 0);
	for (uint32_t seed = 1; seed <= 300; seed++) {
		t_rnd = seed * 40503u + 7;
		size_t n = 0, w = 0, lines = t_rand() % 120;
		for (size_t l = 0; l < lines; l++) {
			size_t len = t_rand() % 4 == 0 ? 0 : t_rand() % 70, at = w;
			for (size_t i = 0; i < len; i++)
				want[w++] = t_rand() % 6 == 0 ? '.' : (char)('A' + t_rand() % 26);
			if (len > 0 && want[at] == '.')
				in[n++] = '.'; /* stuffed (RFC 5321 4.5.2) */
			memcpy(in + n, want + at, len), n += len;
			memcpy(in + n, "\r\n", 2), n += 2;
			memcpy(want + w, "\r\n", 2), w += 2;
		}
		memcpy(in + n, ".\r\n", 3), n += 3;
		for (int how = 0; how < 4; how++) {
			assert_int_equal(t_decode(in, n, false, how, reply, sizeof reply, &got), n);
			assert_string_equal(reply, "250 2.0.0 Ok: queued as Q1\r\n");
			assert_int_equal(got.len, w);
			assert_memory_equal(got.ptr, want, w);
		}
	}
	buf_free(&got);
}

static void test_data_batching(void **st)
{
	size_t n = 100000, i;
	char *msg = malloc(n + 5);

	for (i = 0; i < n; i++)
		msg[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'a' + (char)(i % 26);
	memcpy(msg + n - 2, "\r\n.\r\n", 5);
	struct smtp_server_opts o = t_opts();
	o.max_msg_size = 1000000;
	t_start(&o);
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n");
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(t_feedn(msg, n + 3), n + 3);
	assert_string_equal(t_out(), "250 2.0.0 Ok: queued as Q1\r\n");
	assert_int_equal(F.data.len, n);
	assert_memory_equal(F.data.ptr, msg, n);
	assert_true(F.writes <= 8);
	t_end();
	free(msg);
}

static void test_data_too_big(void **st)
{
	struct smtp_server_opts o = t_opts();
	char body[300];

	o.max_msg_size = 100;
	t_start(&o);
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	     "354 End data with <CR><LF>.<CR><LF>\r\n");
	memset(body, 'x', 60);
	memcpy(body + 60, "\r\n", 2);
	memcpy(body + 62, body, 62);
	memcpy(body + 124, ".\r\nQUIT\r\n", 10);
	T_EQ(body, "552 5.3.4 Message size exceeds fixed limit\r\n221 2.0.0 Bye\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(F.commits, 0);
	assert_true(F.data.len <= 100);
	t_end();
	/* exactly at the limit is fine */
	t_start(&o);
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	     "354 End data with <CR><LF>.<CR><LF>\r\n");
	memset(body, 'x', 98);
	memcpy(body + 98, "\r\n.\r\n", 6);
	T_EQ(body, "250 2.0.0 Ok: queued as Q1\r\n");
	assert_int_equal(F.data.len, 100);
	t_end();
}

static void test_data_long_line(void **st)
{
	char body[1100];
	int k;

	for (k = 0; k < 2; k++) {
		t_start_default();
		t_envelope();
		T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
		memset(body, 'y', sizeof body);
		/* 998 + CRLF = 1000 octets: allowed; 999 + CRLF: not */
		memcpy(body + 998 + k, "\r\n.\r\n", 6);
		t_feed(body);
		if (k == 0) {
			assert_string_equal(t_out(), "250 2.0.0 Ok: queued as Q1\r\n");
		} else {
			assert_string_equal(t_out(),
			                    "550 5.6.0 Message line longer than 1000 octets\r\n");
			assert_int_equal(F.aborts, 1);
		}
		t_end();
	}
	/* a leading dot counts as transmitted */
	t_start_default();
	t_envelope();
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	memset(body, 'y', sizeof body);
	body[0] = '.';
	memcpy(body + 998, "\r\n.\r\n", 6);
	T_EQ(body, "250 2.0.0 Ok: queued as Q1\r\n");
	assert_int_equal(F.data.len, 999);
	t_end();
}

static void test_data_begin_fails(void **st)
{
	t_start_default();
	t_envelope();
	F.begin_rc = -EIO;
	T_EQ("DATA\r\n", "451 4.3.0 Local error in processing\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_RCPT);
	F.begin_rc = 0;
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	T_EQ("x\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n");
	t_end();
}

static void test_data_write_fails(void **st)
{
	t_start_default();
	t_envelope();
	F.write_rc = -EIO;
	T_EQ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	T_EQ("x\r\n.\r\nNOOP\r\n", "451 4.3.0 Local error in processing\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(F.commits, 0);
	t_end();
}

/* ---- smuggling -------------------------------------------------------------- */

static void test_smuggling(void **st)
{
	static const char *const seqs[] = { "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r\n.\r",
		                            "\r.\r\n", "\n.\r", "\r\n.\r\r\n" };
	size_t i;
	int mode;
	char msg[512];

	for (i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
		for (mode = 0; mode < 2; mode++) {
			int n = snprintf(msg, sizeof msg,
			                 "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
			                 "DATA\r\nSubject: one\r\n\r\nhello%s"
			                 "MAIL FROM:<evil@b.test>\r\nRCPT TO:<victim@d.test>\r\n"
			                 "DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n",
			                 seqs[i]);
			size_t used;

			t_start_default();
			used = mode ? t_feed_bytes(msg, (size_t)n) : t_feedn(msg, (size_t)n);
			assert_int_equal(used, (size_t)n);
			const char *out = t_out();
			const char *rej = strstr(out, "354 End data with <CR><LF>.<CR><LF>\r\n550 5.6.0 bare ");
			if (rej == NULL)
				fail_msg("seq %zu mode %d: %s", i, mode, out);
			assert_non_null(strstr(out, "not allowed\r\n221 2.0.0 Bye\r\n"));
			assert_null(strstr(out, "2.1.0 Sender ok\r\n250 2.1.0"));
			assert_int_equal(F.begins, 1);
			assert_int_equal(F.commits, 0);
			assert_int_equal(F.aborts, 1);
			assert_null(strstr(t_log(), "evil"));
			assert_true(smtp_server_is_closing(F.s));
			t_end();
		}
	}
}

static void test_lenient_java_dialogue(void **st)
{
	struct smtp_server_opts o = t_opts();
	const char *d = "HELO java\nMAIL FROM:<a@b.test>\nRCPT TO:<c@d.test>\nDATA\n"
	                "Subject: x\n\nline1\n..dot\n.\nQUIT\n";
	int mode;

	o.lenient_lf = true;
	for (mode = 0; mode < 2; mode++) {
		t_start(&o);
		if (mode)
			assert_int_equal(t_feed_bytes(d, strlen(d)), strlen(d));
		else
			assert_int_equal(t_feed(d), strlen(d));
		assert_string_equal(t_out(), "250 mx.test\r\n250 2.1.0 Sender ok\r\n"
		                             "250 2.1.5 Recipient ok\r\n"
		                             "354 End data with <CR><LF>.<CR><LF>\r\n"
		                             "250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n");
		assert_string_equal(t_data(), "Subject: x\r\n\r\nline1\r\n.dot\r\n");
		t_end();
	}
	/* bare CR in a command stays refused in lenient mode */
	t_start(&o);
	T_EQ("NO\rOP\n", "500 5.5.2 bare CR not allowed, lines must end with CRLF\r\n");
	T_EQ("NOOP\r\n", "250 2.0.0 Ok\r\n");
	t_end();
}

/* ---- command lines ---------------------------------------------------------- */

static void test_bare_lf_cr_commands(void **st)
{
	t_start_default();
	T_EQ("NOOP\nNOOP\r\n", "500 5.5.2 bare LF not allowed, lines must end with CRLF\r\n"
	                       "250 2.0.0 Ok\r\n");
	T_EQ("MAIL FROM:<a@b.test>\n", "500 5.5.2 bare LF not allowed, lines must end with CRLF\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	assert_string_equal(t_log(), "");
	T_EQ("NO\rOP\r\n", "500 5.5.2 bare CR not allowed, lines must end with CRLF\r\n");
	T_EQ("NOOP\r\r\n", "500 5.5.2 bare CR not allowed, lines must end with CRLF\r\n");
	T_EQ("QUIT\rNOOP\r\n", "500 5.5.2 bare CR not allowed, lines must end with CRLF\r\n");
	assert_false(smtp_server_is_closing(F.s));
	/* CR and LF in separate feeds are still one CRLF */
	T_EQ("NOOP\r", "");
	T_EQ("\n", "250 2.0.0 Ok\r\n");
	t_end();
}

static void test_long_line(void **st)
{
	char line[700];

	t_start_default();
	/* 510 octets + CRLF = 512: allowed */
	memset(line, ' ', sizeof line);
	memcpy(line, "NOOP", 4);
	line[509] = 'x';
	memcpy(line + 510, "\r\n", 3);
	T_EQ(line, "250 2.0.0 Ok\r\n");
	line[510] = 'x';
	memcpy(line + 511, "\r\n", 3);
	T_EQ(line, "500 5.5.2 Line too long\r\n");
	/* the tail of a long line is never executed */
	memset(line, 'A', 600);
	memcpy(line + 510, "QUIT\r\nNOOP\r\n", 13);
	T_EQ(line, "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
	assert_false(smtp_server_is_closing(F.s));
	t_end();
}

static void test_huge_line_memory(void **st)
{
	char chunk[4096];
	size_t i, before, after;
	struct mallinfo2 mi;

	t_start_default();
	memset(chunk, 'A', sizeof chunk);
	mi = mallinfo2();
	before = mi.uordblks;
	for (i = 0; i < 256; i++) /* 1 MiB, no newline */
		assert_int_equal(t_feedn(chunk, sizeof chunk), sizeof chunk);
	mi = mallinfo2();
	after = mi.uordblks;
	assert_true(after < before + 4096);
	assert_string_equal(t_out(), "");
	T_EQ("\r\nNOOP\r\n", "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
	t_end();
}

static void test_bad_commands(void **st)
{
	t_start_default();
	T_EQ("FOO\r\n", "500 5.5.2 Error: command not recognized\r\n");
	T_EQ("\r\n", "500 5.5.2 Error: bad syntax\r\n");
	T_EQ(" NOOP\r\n", "500 5.5.2 Error: bad syntax\r\n");
	T_EQ("NOOPX\r\n", "500 5.5.2 Error: command not recognized\r\n");
	t_feedn("NO\0OP\r\n", 7);
	assert_string_equal(t_out(), "500 5.5.2 Error: invalid character in command\r\n");
	T_EQ("NOOP \x1b[2J\r\n", "500 5.5.2 Error: invalid character in command\r\n");
	T_EQ("STARTTLS\r\n", "502 5.5.1 Command not implemented\r\n");
	T_EQ("noop whatever\r\n", "250 2.0.0 Ok\r\n");
	T_EQ("NOOP\t \r\n", "250 2.0.0 Ok\r\n");
	T_EQ("RSET x\r\n", "501 5.5.4 Syntax error: no arguments allowed\r\n");
	t_end();
}

static void test_http_guard(void **st)
{
	static const char *const verbs[] = { "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		                             "POST /x HTTP/1.0\r\n", "CONNECT a:25 HTTP/1.1\r\n",
		                             "HEAD / HTTP/1.1\r\n", "put / HTTP/1.1\r\n" };
	size_t i;

	for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		t_start_default();
		size_t used = t_feed(verbs[i]);
		assert_string_equal(t_out(), "500 5.5.1 Error: this is an SMTP server, not HTTP\r\n");
		assert_true(smtp_server_is_closing(F.s));
		assert_true(used <= strlen(verbs[i]));
		assert_int_equal(t_feed("NOOP\r\n"), 0);
		t_end();
	}
}

static void test_max_errors(void **st)
{
	struct smtp_server_opts o = t_opts();
	const char *in = "FOO\r\nNOOP\r\nBAR\r\nBAZ\r\nNOOP\r\n";
	size_t used;

	o.max_errors = 3;
	t_start(&o);
	used = t_feed(in);
	assert_string_equal(t_out(), "500 5.5.2 Error: command not recognized\r\n250 2.0.0 Ok\r\n"
	                             "500 5.5.2 Error: command not recognized\r\n"
	                             "500 5.5.2 Error: command not recognized\r\n"
	                             "421 4.7.0 mx.test Error: too many errors\r\n");
	assert_int_equal(used, strlen(in) - 6);
	assert_true(smtp_server_is_closing(F.s));
	t_end();
	/* policy refusals and sequence errors count too */
	t_start(&o);
	T_EQ("RCPT TO:<a@b.test>\r\nMAIL FROM:<reject@b.test>\r\nDATA\r\n",
	     "503 5.5.1 Error: need MAIL command\r\n550 5.7.1 Sender rejected\r\n"
	     "503 5.5.1 Error: need MAIL command\r\n421 4.7.0 mx.test Error: too many errors\r\n");
	t_end();
}

/* ---- VRFY EXPN HELP NOOP RSET QUIT ---------------------------------------- */

static void test_vrfy_expn(void **st)
{
	struct smtp_server_opts o = t_opts();

	t_start(&o);
	T_EQ("VRFY root\r\n", "252 2.5.2 Cannot VRFY user, but will accept message\r\n");
	T_EQ("EXPN staff\r\n", "502 5.5.1 EXPN disabled\r\n");
	T_EQ("VRFY\r\n", "501 5.5.4 Syntax: command requires an argument\r\n");
	T_EQ("EXPN\r\n", "501 5.5.4 Syntax: command requires an argument\r\n");
	assert_string_equal(t_log(), "");
	t_end();
	o.vrfy_enabled = true;
	o.expn_enabled = true;
	t_start(&o);
	T_EQ("VRFY root\r\n", "250 2.1.5 User <u@example.org>\r\n");
	T_EQ("expn staff list\r\n", "250-2.1.5 <a@example.org>\r\n250 2.1.5 <b@example.org>\r\n");
	assert_string_equal(t_log(), "VRFY root EXPN staff list ");
	/* VRFY inside a transaction keeps it */
	T_EQ("MAIL FROM:<a@b.test>\r\nVRFY x\r\nRCPT TO:<c@d.test>\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 User <u@example.org>\r\n250 2.1.5 Recipient ok\r\n");
	t_end();
}

static void test_help_noop_rset_quit(void **st)
{
	t_start_default();
	T_EQ("HELP\r\n", "214-2.0.0 tern SMTP server; commands:\r\n"
	                 "214-2.0.0 HELO EHLO MAIL RCPT DATA BDAT\r\n"
	                 "214-2.0.0 RSET NOOP QUIT VRFY EXPN HELP\r\n"
	                 "214 2.0.0 HELP <command> for its syntax\r\n");
	T_EQ("HELP mail\r\n",
	     "214 2.0.0 MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]\r\n");
	T_EQ("HELP BDAT\r\n", "214 2.0.0 BDAT <size> [LAST], then exactly <size> octets\r\n");
	T_EQ("HELP FOO\r\n", "504 5.5.4 HELP topic unknown\r\n");
	T_EQ("NOOP\r\n", "250 2.0.0 Ok\r\n");
	t_envelope();
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	T_EQ("RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	assert_int_equal(t_feed("QUIT\r\nNOOP\r\n"), 6);
	assert_string_equal(t_out(), "221 2.0.0 Bye\r\n");
	assert_true(smtp_server_is_closing(F.s));
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_CLOSING);
	t_end();
}

/* ---- commit ----------------------------------------------------------------- */

static void test_commit_deferred(void **st)
{
	const char *in = "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nhi\r\n.\r\n"
	                 "MAIL FROM:<e@b.test>\r\nRCPT TO:<f@d.test>\r\nDATA\r\nyo\r\n.\r\n"
	                 "QUIT\r\n";
	size_t used, first;

	t_start_default();
	F.defer_commit = true;
	used = t_feed(in);
	first = (size_t)(strstr(in, "hi\r\n.\r\n") - in) + 7;
	assert_int_equal(used, first);
	assert_true(smtp_server_is_waiting(F.s));
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_COMMIT);
	assert_string_equal(t_out(), "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	                             "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(t_feed(in + used), 0);
	smtp_server_commit_done(F.s, 0, "QA");
	assert_false(smtp_server_is_waiting(F.s));
	assert_string_equal(t_out(), "250 2.0.0 Ok: queued as QA\r\n");
	/* late or duplicate commit_done is ignored */
	smtp_server_commit_done(F.s, 0, "QX");
	assert_string_equal(t_out(), "");
	used += t_feed(in + used);
	assert_true(smtp_server_is_waiting(F.s));
	smtp_server_commit_done(F.s, -ENOSPC, NULL);
	assert_string_equal(t_out(), "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	                             "354 End data with <CR><LF>.<CR><LF>\r\n"
	                             "452 4.3.1 Insufficient system storage\r\n");
	used += t_feed(in + used);
	assert_int_equal(used, strlen(in));
	assert_string_equal(t_out(), "221 2.0.0 Bye\r\n");
	assert_string_equal(t_data(), "hi\r\nyo\r\n");
	t_end();
}

static void test_commit_errors(void **st)
{
	t_start_default();
	F.commit_err = -EIO;
	t_envelope();
	T_EQ("DATA\r\nx\r\n.\r\n",
	     "354 End data with <CR><LF>.<CR><LF>\r\n451 4.3.0 Local error in processing\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	F.commit_err = -ENOSPC;
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	     "354 End data with <CR><LF>.<CR><LF>\r\n452 4.3.1 Insufficient system storage\r\n");
	t_end();
	/* without HELO the session returns to READY */
	t_start_default();
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	     "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as Q1\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	t_end();
}

/* The glue's own verdict after the dot (tern sendmail -bs passing on ternd's 5xx);
 * a 2xx cannot slip through it. */
static void test_commit_reply(void **st)
{
	struct smtp_reply r = {550, "5.1.1", "Refused by ternd: no such user"};
	const char *msg = "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n";
	const char *start = "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	                    "354 End data with <CR><LF>.<CR><LF>\r\n";
	char want[300];

	t_start_default();
	F.defer_commit = true;
	t_feed(msg);
	assert_string_equal(t_out(), start);
	smtp_server_commit_reply(F.s, &r);
	assert_string_equal(t_out(), "550 5.1.1 Refused by ternd: no such user\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	smtp_server_commit_reply(F.s, &r); /* not in COMMIT: ignored */
	assert_string_equal(t_out(), "");
	r = (struct smtp_reply){250, "2.0.0", "looks fine"};
	t_feed(msg);
	smtp_server_commit_reply(F.s, &r);
	snprintf(want, sizeof want, "%s451 4.3.0 Local error in processing\r\n", start);
	assert_string_equal(t_out(), want);
	r = (struct smtp_reply){0, "", ""};
	t_feed(msg);
	smtp_server_commit_reply(F.s, &r);
	assert_string_equal(t_out(), want);
	t_end();
}

static void test_pipelining(void **st)
{
	const char *in = "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
	                 "RCPT TO:<unknown@d.test>\r\nRCPT TO:<e@d.test>\r\nDATA\r\n"
	                 "body\r\n.\r\nRSET\r\nMAIL FROM:<x@b.test>\r\nRSET\r\nNOOP\r\nQUIT\r\n";
	const char *want = "250-mx.test greets c\r\n250-SIZE 10000\r\n250-PIPELINING\r\n"
	                   "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n"
	                   "250-CHUNKING\r\n250 HELP\r\n250 2.1.0 Sender ok\r\n"
	                   "250 2.1.5 Recipient ok\r\n550 5.1.1 User unknown\r\n"
	                   "250 2.1.5 Recipient ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	                   "250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n250 2.1.0 Sender ok\r\n"
	                   "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n";
	int mode;

	for (mode = 0; mode < 2; mode++) {
		t_start_default();
		if (mode)
			assert_int_equal(t_feed_bytes(in, strlen(in)), strlen(in));
		else
			assert_int_equal(t_feed(in), strlen(in));
		assert_string_equal(t_out(), want);
		assert_string_equal(t_log(), "MAIL <a@b.test> size=0 body=0 utf8=0 RCPT <c@d.test> "
		                             "RCPT <unknown@d.test> RCPT <e@d.test> BEGIN 2 COMMIT "
		                             "MAIL <x@b.test> size=0 body=0 utf8=0 ");
		t_end();
	}
}

/* ---- BDAT ------------------------------------------------------------------- */

static void test_bdat(void **st)
{
	int mode;
	const char *in = "BDAT 8\r\nhel\r\n.\r\nBDAT 6 LAST\r\n world";
	/* a bare LF (or CR) in BDAT content is refused as in DATA: relayed onward with
	 * DATA, "\n.\r\n" would be the smuggling sequence for the next hop */
	const char *bare = "BDAT 7\r\nhel\n.\r\nBDAT 6 LAST\r\n world";

	for (mode = 0; mode < 2; mode++) {
		t_start_default();
		t_envelope();
		if (mode)
			assert_int_equal(t_feed_bytes(in, strlen(in)), strlen(in));
		else
			assert_int_equal(t_feed(in), strlen(in));
		assert_string_equal(t_out(), "250 2.0.0 8 octets received\r\n"
		                             "250 2.0.0 Ok: queued as Q1\r\n");
		assert_string_equal(t_data(), "hel\r\n.\r\n world");
		assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
		t_end();
		t_start_default();
		t_envelope();
		if (mode)
			assert_int_equal(t_feed_bytes(bare, strlen(bare)), strlen(bare));
		else
			assert_int_equal(t_feed(bare), strlen(bare));
		assert_string_equal(t_out(), "250 2.0.0 7 octets received\r\n"
		                             "550 5.6.0 bare LF in message content not allowed\r\n");
		assert_int_equal(F.commits, 0);
		assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
		t_end();
	}
	t_start_default();
	t_envelope();
	T_EQ("BDAT 0 LAST\r\n", "250 2.0.0 Ok: queued as Q1\r\n");
	assert_int_equal(F.data.len, 0);
	assert_string_equal(t_log(), "MAIL <a@b.test> size=0 body=0 utf8=0 RCPT <c@d.test> "
	                             "BEGIN 1 COMMIT ");
	t_envelope();
	T_EQ("bdat 0\r\nBDAT 2 last\r\nokNOOP\r\n",
	     "250 2.0.0 0 octets received\r\n250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n");
	t_end();
}

static void test_bdat_sequence(void **st)
{
	t_start_default();
	/* no transaction: 503, but the octets are still read */
	T_EQ("BDAT 10\r\nQUIT\r\nRSETNOOP\r\n", "503 5.5.1 Error: need MAIL command\r\n"
	                                       "250 2.0.0 Ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	T_EQ("MAIL FROM:<a@b.test>\r\n", "250 2.1.0 Sender ok\r\n");
	T_EQ("BDAT 4 LAST\r\nQUITNOOP\r\n", "503 5.5.1 Error: need RCPT command\r\n"
	                                   "250 2.0.0 Ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_MAIL);
	T_EQ("RCPT TO:<c@d.test>\r\n", "250 2.1.5 Recipient ok\r\n");
	T_EQ("BDAT 3\r\nabc", "250 2.0.0 3 octets received\r\n");
	T_EQ("DATA\r\n", "503 5.5.1 Error: DATA not allowed after BDAT\r\n");
	T_EQ("MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Error: nested MAIL command\r\n");
	T_EQ("RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: RCPT not allowed after BDAT\r\n");
	T_EQ("NOOP\r\n", "250 2.0.0 Ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_BDAT_WAIT);
	T_EQ("RSET\r\n", "250 2.0.0 Ok\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	t_end();
}

static void test_bdat_bad_size(void **st)
{
	static const char *const bad[] = { "BDAT\r\n", "BDAT x\r\n", "BDAT -1\r\n", "BDAT 5 FOO\r\n",
		                           "BDAT 123456789012345678901\r\n",
		                           "BDAT 99999999999999999999\r\n", "BDAT 5 LAST x\r\n" };
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t_start_default();
		t_envelope();
		T_EQ(bad[i], "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
		assert_true(smtp_server_is_closing(F.s));
		t_end();
	}
}

static void test_bdat_too_big(void **st)
{
	struct smtp_server_opts o = t_opts();

	o.max_msg_size = 10;
	t_start(&o);
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n");
	T_EQ("BDAT 6\r\n123456", "250 2.0.0 6 octets received\r\n");
	T_EQ("BDAT 6 LAST\r\n123456NOOP\r\n",
	     "552 5.3.4 Message size exceeds fixed limit\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(F.commits, 0);
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	/* first chunk already too big: data_begin is never called */
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 11\r\n12345678901",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n"
	     "552 5.3.4 Message size exceeds fixed limit\r\n");
	assert_int_equal(F.begins, 1);
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_READY);
	/* exactly at the limit */
	T_EQ("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 10 LAST\r\n1234567890",
	     "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n250 2.0.0 Ok: queued as Q1\r\n");
	t_end();
}

static void test_bdat_begin_write_fail(void **st)
{
	t_start_default();
	t_envelope();
	F.begin_rc = -EIO;
	T_EQ("BDAT 3\r\nabcNOOP\r\n", "451 4.3.0 Local error in processing\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(smtp_server_state(F.s), SMTP_ST_HELO);
	F.begin_rc = 0;
	t_envelope();
	F.write_rc = -EIO;
	T_EQ("BDAT 3\r\nabc", "451 4.3.0 Local error in processing\r\n");
	assert_int_equal(F.aborts, 1);
	t_end();
}

/* ---- timeouts, shutdown, refuse, free ------------------------------------- */

static void test_timeout_shutdown_refuse(void **st)
{
	t_start_default();
	t_envelope();
	T_EQ("DATA\r\npartial", "354 End data with <CR><LF>.<CR><LF>\r\n");
	smtp_server_timeout(F.s);
	assert_string_equal(t_out(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
	assert_true(smtp_server_is_closing(F.s));
	assert_int_equal(F.aborts, 1);
	smtp_server_shutdown(F.s); /* already closing: nothing more */
	assert_string_equal(t_out(), "");
	t_end();

	t_start_default();
	smtp_server_shutdown(F.s);
	assert_string_equal(t_out(), "421 4.3.2 mx.test Service shutting down, closing channel\r\n");
	assert_true(smtp_server_is_closing(F.s));
	t_end();

	struct smtp_server_opts o = t_opts();
	struct smtp_server *s = smtp_server_new(&o, &fake_ops, NULL);
	size_t len;
	smtp_server_refuse(s, "4.7.1", "mx.test too many connections");
	const char *out = smtp_server_output(s, &len);
	assert_int_equal(len, strlen("421 4.7.1 mx.test too many connections\r\n"));
	assert_memory_equal(out, "421 4.7.1 mx.test too many connections\r\n", len);
	assert_true(smtp_server_is_closing(s));
	smtp_server_greet(s); /* no greeting after a refusal */
	smtp_server_output(s, &len);
	assert_int_equal(len, strlen("421 4.7.1 mx.test too many connections\r\n"));
	smtp_server_free(s);
}

static void test_free_mid_data(void **st)
{
	t_start_default();
	t_envelope();
	T_EQ("DATA\r\nabc\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	smtp_server_free(F.s);
	F.s = NULL;
	assert_int_equal(F.aborts, 1);
	buf_free(&F.log);
	buf_free(&F.data);
}

static void test_quit_mid_bdat(void **st)
{
	t_start_default();
	t_envelope();
	T_EQ("BDAT 2\r\nabQUIT\r\n", "250 2.0.0 2 octets received\r\n221 2.0.0 Bye\r\n");
	assert_int_equal(F.aborts, 1);
	t_end();
}

/* ---- reply formatter -------------------------------------------------------- */

static void test_reply_format(void **st)
{
	struct buf b;
	char text[1200];

	buf_init(&b, 0);
	assert_int_equal(smtp_reply_format(&b, 250, "2.0.0", "a\nb\nc"), 0);
	assert_string_equal(buf_cstr(&b), "250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n");
	buf_reset(&b);
	assert_int_equal(smtp_reply_format(&b, 220, "", "x\r\x01\x7f\xc3"), 0);
	assert_string_equal(buf_cstr(&b), "220 x????\r\n");
	buf_reset(&b);
	memset(text, 'z', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	assert_int_equal(smtp_reply_format(&b, 550, "5.0.0", text), 0);
	assert_int_equal(b.len, 512);
	assert_memory_equal(b.ptr + 510, "\r\n", 2);
	buf_reset(&b);
	assert_int_equal(smtp_reply_format(&b, 99, "", "x"), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	/* a 255-octet EHLO argument: every line stays within 512 octets */
	char line[300];
	t_start_default();
	memcpy(line, "EHLO ", 5);
	memset(line + 5, 'h', 255);
	memcpy(line + 260, "\r\n", 3);
	t_feed(line);
	const char *out = t_out();
	assert_non_null(strstr(out, "250 HELP\r\n"));
	t_end();
}

/* ---- transcripts -------------------------------------------------------------- */

/* Decode C-style escapes (\r \n \t \\ \xHH) from src into dst; returns length. */
static size_t tr_unescape(const char *src, char *dst, size_t cap)
{
	size_t o = 0;

	while (*src && o + 1 < cap) {
		if (src[0] == '\\' && src[1]) {
			src++;
			switch (*src) {
			case 'r': dst[o++] = '\r'; src++; break;
			case 'n': dst[o++] = '\n'; src++; break;
			case 't': dst[o++] = '\t'; src++; break;
			case 'x': {
				unsigned v = 0;
				int k;
				src++;
				for (k = 0; k < 2 && *src; k++, src++)
					v = v * 16 + (unsigned)(*src <= '9' ? *src - '0' : (*src | 32) - 'a' + 10);
				dst[o++] = (char)v;
				break;
			}
			default: dst[o++] = *src++; break;
			}
		} else {
			dst[o++] = *src++;
		}
	}
	return o;
}

/* Run one transcript. Lines: "O: option" (lenient_lf, require_helo, vrfy, expn,
 * max_errors=N, max_rcpts=N, max_msg_size=N) before the first C line; "C: text"
 * is sent followed by CRLF; "C! text" is sent as is (escapes allowed in both);
 * "S: prefix" must match the start of the next reply line; "E: closed" asserts
 * the session is closing; '#' and empty lines are ignored. Client lines are
 * buffered and fed together when the next S or E line comes (pipelining). */
static void tr_run(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096], tmp[4096];
	struct buf pend, outb;
	struct smtp_server_opts o = t_opts();
	bool started = false;
	size_t opos = 0;
	unsigned lineno = 0;

	assert_non_null(f);
	buf_init(&pend, 0);
	buf_init(&outb, 0);
	while (fgets(line, sizeof line, f)) {
		size_t n = strlen(line);

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (strcmp(line, "C:") == 0) /* an empty client line */
			memcpy(line, "C: ", 4);
		if (strncmp(line, "O: ", 3) == 0) {
			const char *opt = line + 3;
			if (strcmp(opt, "lenient_lf") == 0)
				o.lenient_lf = true;
			else if (strcmp(opt, "require_helo") == 0)
				o.require_helo = true;
			else if (strcmp(opt, "vrfy") == 0)
				o.vrfy_enabled = true;
			else if (strcmp(opt, "expn") == 0)
				o.expn_enabled = true;
			else if (strncmp(opt, "max_errors=", 11) == 0)
				o.max_errors = (unsigned)strtoul(opt + 11, NULL, 10);
			else if (strncmp(opt, "max_rcpts=", 10) == 0)
				o.max_rcpts = (unsigned)strtoul(opt + 10, NULL, 10);
			else if (strncmp(opt, "max_msg_size=", 13) == 0)
				o.max_msg_size = strtoull(opt + 13, NULL, 10);
			else
				fail_msg("%s:%u: unknown option", path, lineno);
			continue;
		}
		if (!started) {
			t_start(&o);
			buf_append_str(&outb, "220 mx.test ESMTP tern\r\n");
			started = true;
		}
		if (strncmp(line, "C: ", 3) == 0 || strncmp(line, "C! ", 3) == 0) {
			size_t k = tr_unescape(line + 3, tmp, sizeof tmp);
			buf_append(&pend, tmp, k);
			if (line[1] == ':')
				buf_append(&pend, "\r\n", 2);
			continue;
		}
		if (pend.len > 0) {
			size_t used = t_feedn(pend.ptr, pend.len);
			(void)used;
			buf_reset(&pend);
			size_t len;
			const char *out = smtp_server_output(F.s, &len);
			buf_append(&outb, out, len);
			smtp_server_output_done(F.s, len);
		}
		if (strncmp(line, "S: ", 3) == 0) {
			size_t k = tr_unescape(line + 3, tmp, sizeof tmp);
			const char *nl;
			buf_cstr(&outb);
			nl = opos < outb.len ? strstr(outb.ptr + opos, "\r\n") : NULL;
			if (nl == NULL)
				fail_msg("%s:%u: expected '%s', no more replies", path, lineno, line + 3);
			if ((size_t)(nl - (outb.ptr + opos)) < k ||
			    memcmp(outb.ptr + opos, tmp, k) != 0)
				fail_msg("%s:%u: expected '%s', got '%.*s'", path, lineno, line + 3,
				         (int)(nl - (outb.ptr + opos)), outb.ptr + opos);
			opos = (size_t)(nl - outb.ptr) + 2;
		} else if (strcmp(line, "E: closed") == 0) {
			if (!smtp_server_is_closing(F.s))
				fail_msg("%s:%u: session not closing", path, lineno);
		} else {
			fail_msg("%s:%u: bad transcript line", path, lineno);
		}
	}
	if (started && opos != outb.len) {
		buf_cstr(&outb);
		fail_msg("%s: unexpected extra replies: %s", path, outb.ptr + opos);
	}
	fclose(f);
	buf_free(&pend);
	buf_free(&outb);
	if (started)
		t_end();
}

static void test_transcripts(void **st)
{
	const char *dir = getenv("TERN_TRANSCRIPTS");
	DIR *d;
	struct dirent *de;
	unsigned count = 0;
	char path[1024];

	if (dir == NULL)
		dir = "tests/unit/transcripts";
	d = opendir(dir);
	if (d == NULL) {
		print_message("no transcripts in %s (run from the repository root)\n", dir);
		skip();
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".txt") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		tr_run(path);
		count++;
	}
	closedir(d);
	assert_true(count > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_ehlo_helo),
		cmocka_unit_test(test_ehlo_aborts_bdat),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_mail_lenient_brackets),
		cmocka_unit_test(test_mail_require_helo),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_mail_utf8),
		cmocka_unit_test(test_policy_replies),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_data_sequence),
		cmocka_unit_test(test_data_basic),
		cmocka_unit_test(test_data_decoder),
		cmocka_unit_test(test_data_decoder_splits),
		cmocka_unit_test(test_data_decoder_model),
		cmocka_unit_test(test_data_batching),
		cmocka_unit_test(test_data_too_big),
		cmocka_unit_test(test_data_long_line),
		cmocka_unit_test(test_data_begin_fails),
		cmocka_unit_test(test_data_write_fails),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_lenient_java_dialogue),
		cmocka_unit_test(test_bare_lf_cr_commands),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_huge_line_memory),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_http_guard),
		cmocka_unit_test(test_max_errors),
		cmocka_unit_test(test_vrfy_expn),
		cmocka_unit_test(test_help_noop_rset_quit),
		cmocka_unit_test(test_commit_deferred),
		cmocka_unit_test(test_commit_errors),
		cmocka_unit_test(test_commit_reply),
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_sequence),
		cmocka_unit_test(test_bdat_bad_size),
		cmocka_unit_test(test_bdat_too_big),
		cmocka_unit_test(test_bdat_begin_write_fail),
		cmocka_unit_test(test_timeout_shutdown_refuse),
		cmocka_unit_test(test_free_mid_data),
		cmocka_unit_test(test_quit_mid_bdat),
		cmocka_unit_test(test_reply_format),
		cmocka_unit_test(test_transcripts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
