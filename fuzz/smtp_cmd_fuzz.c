/* smtp_cmd_fuzz.c - libFuzzer target for the engine's command parser: verbs,
 * arguments, MAIL/RCPT parameters, HELO names, VRFY/EXPN/HELP arguments, AUTH
 * lines, in every session state.
 *
 * The first byte picks the state to start from (fresh, after EHLO, after MAIL,
 * after RCPT, between BDAT chunks) and options; the rest is split at LF into
 * command lines, each sent with CRLF (so the input is spent on commands rather than
 * framing). Checks: replies are well-formed (3 digits, CRLF, <= 512 octets, no
 * control bytes); every address handed to the policy callbacks is within limits and
 * free of control bytes; no state is left with content open. Does no I/O.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_server.h"
#include "util/limits.h"

struct fuzz_cmd {
	struct smtp_server *s;
	int open;
};

static void fuzz_cmd_addr(const struct smtp_addr *a)
{
	size_t ll = strnlen(a->local, sizeof a->local), dl = strnlen(a->domain, sizeof a->domain);
	if (ll > TERN_LOCAL_PART_MAX || dl > TERN_DOMAIN_MAX)
		abort();
	for (size_t i = 0; i < ll; i++)
		if ((unsigned char)a->local[i] < 0x20 || a->local[i] == 0x7f)
			abort();
	for (size_t i = 0; i < dl; i++)
		if ((unsigned char)a->domain[i] <= 0x20 || a->domain[i] == 0x7f)
			abort();
}

static void fuzz_cmd_mail(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                          struct smtp_reply *r)
{
	fuzz_cmd_addr(from);
}

static void fuzz_cmd_rcpt(void *ctx, const struct smtp_addr *to, struct smtp_reply *r)
{
	fuzz_cmd_addr(to);
	if (to->is_null)
		abort();
}

static void fuzz_cmd_vrfy(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	for (size_t i = 0; i < n; i++)
		if (arg[i] == '\r' || arg[i] == '\n' || arg[i] == '\0')
			abort();
	r->code = 252;
}

static int fuzz_cmd_begin(void *ctx, const struct smtp_addr *from,
                          const struct smtp_mail_params *p, const struct smtp_addr *rcpts,
                          size_t nrcpts)
{
	struct fuzz_cmd *c = ctx;
	if (nrcpts == 0 || c->open)
		abort();
	for (size_t i = 0; i < nrcpts; i++)
		fuzz_cmd_addr(&rcpts[i]);
	c->open = 1;
	return 0;
}

static int fuzz_cmd_write(void *ctx, const char *p, size_t n)
{
	return 0;
}

static void fuzz_cmd_commit(void *ctx)
{
	struct fuzz_cmd *c = ctx;
	c->open = 0;
	smtp_server_commit_done(c->s, 0, "Q");
}

static void fuzz_cmd_abort(void *ctx)
{
	struct fuzz_cmd *c = ctx;
	c->open = 0;
}

static void fuzz_cmd_auth(void *ctx, const char *mech, const unsigned char *resp, size_t n,
                          bool has_resp)
{
	struct fuzz_cmd *c = ctx;
	static const enum smtp_auth_result res[] = {SMTP_AUTH_OK, SMTP_AUTH_FAIL,
	                                            SMTP_AUTH_MALFORMED, SMTP_AUTH_TEMPFAIL,
	                                            SMTP_AUTH_CONTINUE};
	smtp_server_auth_answer(c->s, res[n % 5], resp, n);
}

static const struct smtp_server_ops fuzz_cmd_ops = {
	.mail = fuzz_cmd_mail, .rcpt = fuzz_cmd_rcpt, .vrfy = fuzz_cmd_vrfy,
	.expn = fuzz_cmd_vrfy, .data_begin = fuzz_cmd_begin, .data_write = fuzz_cmd_write,
	.data_commit = fuzz_cmd_commit, .data_abort = fuzz_cmd_abort, .auth = fuzz_cmd_auth,
};

static void fuzz_cmd_output(struct smtp_server *s)
{
	size_t len, start = 0;
	const char *o = smtp_server_output(s, &len);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)o[i];
		if (o[i] == '\n') {
			if (i == 0 || o[i - 1] != '\r' || i + 1 - start > TERN_REPLY_LINE_MAX ||
			    i - start < 5)
				abort();
			for (size_t k = start; k < start + 3; k++)
				if (o[k] < '0' || o[k] > '9')
					abort();
			if (o[start + 3] != ' ' && o[start + 3] != '-')
				abort();
			start = i + 1;
		} else if ((ch < 0x20 && o[i] != '\r') || ch == 0x7f) {
			abort();
		}
	}
	if (start != len)
		abort();
	smtp_server_output_done(s, len);
}

static void fuzz_cmd_feed(struct fuzz_cmd *c, const char *p, size_t n)
{
	while (n > 0 && !smtp_server_is_closing(c->s)) {
		size_t used = smtp_server_feed(c->s, p, n);
		if (used > n)
			abort();
		fuzz_cmd_output(c->s);
		if (used == 0)
			break; /* STARTTLS / AUTH waiting: the rest is not for us */
		p += used;
		n -= used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const setup[] = {
		"",
		"EHLO fuzz.example\r\n",
		"EHLO fuzz.example\r\nMAIL FROM:<a@b.example>\r\n",
		"EHLO fuzz.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n",
		("EHLO fuzz.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
		 "BDAT 3\r\nabc"),
	};
	struct smtp_server_opts o = {.hostname = "fuzz.example"};
	struct fuzz_cmd c = {0};
	char line[1200];

	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	o.lenient_lf = mode & 8;
	o.require_helo = mode & 16;
	o.vrfy_enabled = o.expn_enabled = mode & 32;
	o.auth = o.auth_plaintext = mode & 64;
	o.auth_mechs = (mode & 64) ? "PLAIN LOGIN" : NULL;
	o.strict_sync = mode & 128;
	o.max_rcpts = 3;
	o.max_errors = 1000;
	c.s = smtp_server_new(&o, &fuzz_cmd_ops, &c);
	if (c.s == NULL)
		return 0;
	smtp_server_greet(c.s);
	const char *su = setup[(mode & 7) % 5];
	fuzz_cmd_feed(&c, su, strlen(su));
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	while (p < end && !smtp_server_is_closing(c.s)) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t m = k < sizeof line - 2 ? k : sizeof line - 2;
		memcpy(line, p, m);
		line[m] = '\r';
		line[m + 1] = '\n';
		fuzz_cmd_feed(&c, line, m + 2);
		p += k + (nl ? 1 : 0);
	}
	smtp_server_free(c.s);
	return 0;
}
