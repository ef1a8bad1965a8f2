/* smtp_server_fuzz.c - libFuzzer target for the inbound SMTP engine.
 *
 * The first input byte picks options (lenient_lf, require_helo, VRFY/EXPN, small
 * limits) and how the rest is split into feeds; the rest is client bytes. Fake ops
 * accept everything and commit immediately (every third commit fails). Checks the
 * engine's own invariants: feed never consumes more than given, the session always
 * makes progress unless it is closing, and output lines end with CRLF and stay
 * within 512 octets. Does not exercise the daemon glue.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_server.h"
#include "util/limits.h"

struct fuzz_ctx {
	struct smtp_server *s;
	unsigned commits;
	int open;
};

static void fuzz_mail(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                      struct smtp_reply *r)
{
	if (strcmp(from->local, "reject") == 0) {
		r->code = 550;
		memcpy(r->enh, "5.7.1", 6);
		memcpy(r->text, "no\nreally no", 13);
	}
}

static void fuzz_rcpt(void *ctx, const struct smtp_addr *to, struct smtp_reply *r)
{
	if (strcmp(to->local, "unknown") == 0) {
		r->code = 550;
		memcpy(r->enh, "5.1.1", 6);
		memcpy(r->text, "unknown user", 13);
	}
}

static void fuzz_vrfy(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	r->code = 252;
	memcpy(r->text, "maybe", 6);
}

static int fuzz_begin(void *ctx, const struct smtp_addr *from, const struct smtp_mail_params *p,
                      const struct smtp_addr *rcpts, size_t nrcpts)
{
	struct fuzz_ctx *c = ctx;

	if (nrcpts == 0 || c->open)
		abort();
	c->open = 1;
	return 0;
}

static int fuzz_write(void *ctx, const char *p, size_t n)
{
	struct fuzz_ctx *c = ctx;

	if (!c->open || n == 0)
		abort();
	return 0;
}

static void fuzz_commit(void *ctx)
{
	struct fuzz_ctx *c = ctx;

	if (!c->open)
		abort();
	c->open = 0;
	c->commits++;
	smtp_server_commit_done(c->s, c->commits % 3 == 0 ? -EIO : 0, "FUZZQID");
}

static void fuzz_abort(void *ctx)
{
	struct fuzz_ctx *c = ctx;

	if (!c->open)
		abort();
	c->open = 0;
}

static const struct smtp_server_ops fuzz_ops = {
	.mail = fuzz_mail, .rcpt = fuzz_rcpt, .vrfy = fuzz_vrfy, .expn = fuzz_vrfy,
	.data_begin = fuzz_begin, .data_write = fuzz_write, .data_commit = fuzz_commit,
	.data_abort = fuzz_abort,
};

static void fuzz_check_output(struct smtp_server *s)
{
	size_t len, i, start = 0;
	const char *o = smtp_server_output(s, &len);

	for (i = 0; i < len; i++) {
		if (o[i] == '\n') {
			if (i == 0 || o[i - 1] != '\r' || i + 1 - start > TERN_REPLY_LINE_MAX)
				abort();
			start = i + 1;
		}
	}
	if (start != len)
		abort();
	smtp_server_output_done(s, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_server_opts o = { .hostname = "fuzz.example" };
	struct fuzz_ctx c = { 0 };
	const char *p;
	size_t n, step;
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	p = (const char *)data + 1;
	n = size - 1;
	o.lenient_lf = mode & 1;
	o.require_helo = mode & 2;
	o.vrfy_enabled = mode & 4;
	o.expn_enabled = mode & 8;
	o.max_msg_size = (mode & 16) ? 100 : 0;
	o.max_rcpts = (mode & 16) ? 2 : 0;
	o.max_errors = (mode & 16) ? 3 : 0;
	step = (mode & 32) ? 1 : (mode & 64) ? 7 : n;
	if (step == 0)
		step = 1;
	c.s = smtp_server_new(&o, &fuzz_ops, &c);
	if (c.s == NULL)
		return 0;
	smtp_server_greet(c.s);
	fuzz_check_output(c.s);
	while (n > 0 && !smtp_server_is_closing(c.s)) {
		size_t k = n < step ? n : step;
		size_t used = smtp_server_feed(c.s, p, k);

		if (used > k)
			abort();
		fuzz_check_output(c.s);
		if (used == 0 && !smtp_server_is_closing(c.s))
			abort(); /* commits finish at once here, so no waiting */
		p += used;
		n -= used;
	}
	if (mode & 128)
		smtp_server_timeout(c.s);
	fuzz_check_output(c.s);
	smtp_server_free(c.s);
	if (c.open)
		abort();
	return 0;
}
