/* smtp_dsn_test.c - unit tests of the RFC 3461 helpers in smtp/smtp_dsn.c: NOTIFY
 * words to bits and back, xtext encoding of what a user types for ENVID, and that
 * what the formatters produce is accepted by the server's own parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/smtp_dsn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int notify(const char *v, unsigned *bits)
{
	return smtp_dsn_notify_parse(v, strlen(v), bits);
}

static void dsn_t_notify(void **state)
{
	(void)state;
	unsigned b = 0;
	char out[64];

	assert_int_equal(notify("never", &b), 0);
	assert_int_equal(b, SMTP_DSN_NEVER);
	assert_int_equal(notify("Delay,SUCCESS", &b), 0);
	assert_int_equal(b, SMTP_DSN_DELAY | SMTP_DSN_SUCCESS);
	assert_int_equal(notify("", &b), -EINVAL);
	assert_int_equal(notify("never,failure", &b), -EINVAL);
	assert_int_equal(notify("failure,failure", &b), -EINVAL);
	assert_int_equal(notify("failure,", &b), -EINVAL);
	assert_int_equal(notify("sometimes", &b), -EINVAL);

	assert_int_equal(smtp_dsn_notify_format(SMTP_DSN_DELAY | SMTP_DSN_SUCCESS | SMTP_DSN_FAILURE,
	                                        out, sizeof out), 0);
	assert_string_equal(out, "SUCCESS,FAILURE,DELAY");
	assert_int_equal(smtp_dsn_notify_format(SMTP_DSN_NEVER, out, sizeof out), 0);
	assert_string_equal(out, "NEVER");
	assert_int_equal(smtp_dsn_notify_format(0, out, sizeof out), -EINVAL);
	assert_int_equal(smtp_dsn_notify_format(SMTP_DSN_NEVER | SMTP_DSN_DELAY, out, sizeof out),
	                 -EINVAL);
	assert_int_equal(smtp_dsn_notify_format(64, out, sizeof out), -EINVAL);
	assert_int_equal(smtp_dsn_notify_format(SMTP_DSN_SUCCESS | SMTP_DSN_FAILURE, out, 15),
	                 -ENOSPC); /* "SUCCESS,FAILURE" needs 16 */
	assert_int_equal(smtp_dsn_notify_format(SMTP_DSN_SUCCESS | SMTP_DSN_FAILURE, out, 16), 0);

	/* ORCPT's addr-type is an atom: nothing that could end up as a control byte or
	 * a line break in the report's Original-Recipient field (found by
	 * fuzz/smtp_dsn_fuzz.c) */
	struct smtp_rcpt_dsn o;
	static const char *const bad_types[] = {" ORCPT=rf\x01c;x", " ORCPT=rfc\r;x",
	                                        " ORCPT=r.c;x"};
	assert_int_equal(smtp_dsn_rcpt_params(" ORCPT=utf-8;x", strlen(" ORCPT=utf-8;x"), &o), 0);
	assert_string_equal(o.orcpt, "utf-8;x");
	for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++)
		assert_int_equal(smtp_dsn_rcpt_params(bad_types[i], strlen(bad_types[i]), &o), -EINVAL);

	/* what we format, the server parses back to the same bits */
	struct smtp_rcpt_dsn d;
	char param[80];
	smtp_dsn_notify_format(SMTP_DSN_FAILURE | SMTP_DSN_DELAY, out, sizeof out);
	snprintf(param, sizeof param, "NOTIFY=%s", out);
	assert_int_equal(smtp_dsn_rcpt_params(param, strlen(param), &d), 0);
	assert_int_equal(d.notify, SMTP_DSN_FAILURE | SMTP_DSN_DELAY);
}

static void dsn_t_xtext(void **state)
{
	(void)state;
	char out[SMTP_DSN_ENVID_MAX + 1], envid[SMTP_DSN_ENVID_MAX + 1] = "";
	int ret = 0;
	const char *raw = "job 42+a=b";

	assert_int_equal(smtp_dsn_xtext_encode(raw, strlen(raw), out, sizeof out), 0);
	assert_string_equal(out, "job+2042+2Ba+3Db");
	assert_int_equal(smtp_dsn_mail_param("ENVID", 5, out, strlen(out), &ret, envid), 1);
	assert_string_equal(envid, out);
	assert_int_equal(smtp_dsn_xtext_encode("a\tb", 3, out, sizeof out), -EINVAL);
	assert_int_equal(smtp_dsn_xtext_encode("caf\xc3\xa9", 5, out, sizeof out), -EINVAL);
	assert_int_equal(smtp_dsn_xtext_encode("abc", 3, out, 3), -ENOSPC);
	assert_int_equal(smtp_dsn_xtext_encode("abc", 3, out, 4), 0);
	assert_int_equal(smtp_dsn_xtext_encode("a+", 2, out, 4), -ENOSPC); /* "a+2B" */
	assert_int_equal(smtp_dsn_xtext_encode("", 0, out, 1), 0);
	assert_string_equal(out, "");
}

static int mail(const char *p, int *ret, char *envid)
{
	*ret = 0;
	envid[0] = '\0';
	return smtp_dsn_mail_params(p, strlen(p), ret, envid);
}

static void dsn_t_mail_params(void **state)
{
	(void)state;
	int ret;
	char envid[SMTP_DSN_ENVID_MAX + 1];

	assert_int_equal(mail("", &ret, envid), 0);
	assert_int_equal(ret, 0);
	assert_int_equal(mail(" RET=hdrs  ENVID=a+2Bb", &ret, envid), 0);
	assert_int_equal(ret, 2);
	assert_string_equal(envid, "a+2Bb");
	assert_int_equal(mail(" RET=FULL", &ret, envid), 0);
	assert_int_equal(ret, 1);
	assert_int_equal(mail(" RET=FULL RET=HDRS", &ret, envid), -EINVAL);  /* twice */
	assert_int_equal(mail(" SIZE=10", &ret, envid), -EINVAL);            /* not DSN */
	assert_int_equal(mail(" RET", &ret, envid), -EINVAL);                /* no '=' */
	assert_int_equal(mail(" ENVID=a=b", &ret, envid), -EINVAL);          /* not xtext */
	assert_int_equal(mail(" ENVID=", &ret, envid), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dsn_t_notify),
	    cmocka_unit_test(dsn_t_xtext),
	    cmocka_unit_test(dsn_t_mail_params),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
