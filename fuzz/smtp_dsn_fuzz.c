/* smtp_dsn_fuzz.c - libFuzzer target for the RFC 3461 parameter parsers and
 * formatters (smtp_dsn.c), which read what SMTP clients and maildrop files (written
 * by any local user through sendmail) say after MAIL FROM and RCPT TO.
 *
 * The first byte picks the parser: even, the RCPT list (NOTIFY, ORCPT); odd, the
 * MAIL list (RET, ENVID). Checks: a stored ORCPT or ENVID is within its limit,
 * NUL-terminated and free of spaces and control bytes; what the server stores goes
 * back out through the client's formatters (smtp_dsn_notify_format, " RET=..
 * ENVID=..") and parses again to the same values, so a parameter passed on by
 * `tern sendmail -bs` or kept in a maildrop file means what was accepted. The rest
 * of the input, taken as raw ENVID text, encodes to xtext that the parser accepts
 * (or is refused as non-printable or too long). Does no I/O.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_dsn.h"

static void fuzz_dsn_clean(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

static void fuzz_dsn_rcpt(const char *p, size_t n)
{
	struct smtp_rcpt_dsn d, e;
	char words[64], again[SMTP_DSN_ORCPT_MAX + 96];

	if (smtp_dsn_rcpt_params(p, n, &d) < 0)
		return;
	fuzz_dsn_clean(d.orcpt, SMTP_DSN_ORCPT_MAX);
	int w = 0;
	if (d.notify != 0) {
		if (smtp_dsn_notify_format(d.notify, words, sizeof words) < 0)
			abort(); /* accepted bits must format */
		w = snprintf(again, sizeof again, " NOTIFY=%s", words);
	}
	if (d.orcpt[0] != '\0')
		snprintf(again + w, sizeof again - (size_t)w, " ORCPT=%s", d.orcpt);
	else
		again[w] = '\0';
	if (smtp_dsn_rcpt_params(again, strlen(again), &e) < 0 || e.notify != d.notify ||
	    strcmp(e.orcpt, d.orcpt) != 0)
		abort();
}

static void fuzz_dsn_mail(const char *p, size_t n)
{
	char envid[SMTP_DSN_ENVID_MAX + 1] = "", envid2[SMTP_DSN_ENVID_MAX + 1] = "";
	char again[SMTP_DSN_ENVID_MAX + 32];
	int ret = 0, ret2 = 0;

	if (smtp_dsn_mail_params(p, n, &ret, envid) < 0)
		return;
	if (ret < 0 || ret > 2)
		abort();
	fuzz_dsn_clean(envid, SMTP_DSN_ENVID_MAX);
	int w = snprintf(again, sizeof again, "%s", ret == 0 ? "" : ret == 1 ? " RET=FULL" : " RET=HDRS");
	if (envid[0] != '\0')
		snprintf(again + w, sizeof again - (size_t)w, " ENVID=%s", envid);
	if (smtp_dsn_mail_params(again, strlen(again), &ret2, envid2) < 0 || ret2 != ret ||
	    strcmp(envid, envid2) != 0)
		abort();
}

static void fuzz_dsn_xtext(const char *p, size_t n)
{
	char x[SMTP_DSN_ENVID_MAX + 1], envid[SMTP_DSN_ENVID_MAX + 1] = "";
	int ret = 0;

	int r = smtp_dsn_xtext_encode(p, n, x, sizeof x);
	if (r == -EINVAL || r == -ENOSPC)
		return;
	if (r != 0 || strlen(x) > SMTP_DSN_ENVID_MAX)
		abort();
	if (x[0] != '\0' && smtp_dsn_mail_param("ENVID", 5, x, strlen(x), &ret, envid) != 1)
		abort(); /* what tern send --envid encodes, ternd accepts */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] & 1)
		fuzz_dsn_mail(p, n);
	else
		fuzz_dsn_rcpt(p, n);
	fuzz_dsn_xtext(p, n);
	return 0;
}
