/* smtp_data_fuzz.c - libFuzzer target for the DATA and BDAT content decoders.
 *
 * The first byte picks DATA or BDAT, strict or lenient line ends, a small size
 * limit; the rest is what the client sends after the 354 (DATA) or is cut into
 * BDAT chunks by its own bytes. The same input is run twice, fed whole and one byte
 * at a time, and both runs must agree exactly (replies, decoded bytes, commits):
 * the decoder's result cannot depend on how TCP splits the stream - the property
 * SMTP smuggling breaks. Also checked on every committed message: only CRLF line
 * ends (never a bare CR or LF), no DATA line over 1000 octets, size within the
 * limit; and in strict DATA mode the content ended exactly at a CRLF.CRLF.
 * Does no I/O.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_server.h"
#include "util/buf.h"
#include "util/limits.h"

struct fuzz_data {
	struct smtp_server *s;
	int open;
	unsigned commits;
	struct buf msg;  /* content of the message being received */
	struct buf log;  /* replies + one line per commit, compared between runs */
	bool bdat, lenient;
	uint64_t max;
};

static int fuzz_data_begin(void *ctx, const struct smtp_addr *from,
                           const struct smtp_mail_params *p, const struct smtp_addr *rcpts,
                           size_t nrcpts)
{
	struct fuzz_data *c = ctx;
	if (c->open)
		abort();
	c->open = 1;
	buf_reset(&c->msg);
	return 0;
}

static int fuzz_data_write(void *ctx, const char *p, size_t n)
{
	struct fuzz_data *c = ctx;
	if (!c->open || n == 0)
		abort();
	if (buf_append(&c->msg, p, n) < 0)
		abort();
	return 0;
}

static void fuzz_data_drain(struct fuzz_data *c)
{
	size_t len;
	const char *o = smtp_server_output(c->s, &len);
	buf_append(&c->log, o, len);
	smtp_server_output_done(c->s, len);
}

static void fuzz_data_commit(void *ctx)
{
	struct fuzz_data *c = ctx;
	const char *m = c->msg.ptr;
	size_t n = c->msg.len, line = 0;
	if (!c->open)
		abort();
	c->open = 0;
	c->commits++;
	if (n > c->max)
		abort();
	for (size_t i = 0; i < n; i++) {
		line++;
		if (m[i] == '\r' && (i + 1 >= n || m[i + 1] != '\n'))
			abort(); /* bare CR stored */
		if (m[i] == '\n') {
			if (i == 0 || m[i - 1] != '\r')
				abort(); /* bare LF stored */
			if (!c->bdat && line > TERN_TEXT_LINE_MAX)
				abort();
			line = 0;
		}
	}
	if (n > 0 && !c->bdat && (n < 2 || m[n - 2] != '\r' || m[n - 1] != '\n'))
		abort(); /* DATA content always ends with a line end */
	fuzz_data_drain(c); /* replies so far, then the commit: the log keeps their order */
	buf_printf(&c->log, "COMMIT %zu\n", n);
	smtp_server_commit_done(c->s, 0, "Q");
}

static void fuzz_data_abort(void *ctx)
{
	struct fuzz_data *c = ctx;
	if (!c->open)
		abort();
	c->open = 0;
}

static const struct smtp_server_ops fuzz_data_ops = {
	.data_begin = fuzz_data_begin, .data_write = fuzz_data_write,
	.data_commit = fuzz_data_commit, .data_abort = fuzz_data_abort,
};


/* Run the session over p[0..n) in pieces of `step`; returns 0. */
static void fuzz_data_run(struct fuzz_data *c, const uint8_t mode, const char *p, size_t n,
                          size_t step)
{
	struct smtp_server_opts o = {.hostname = "fuzz.example", .max_errors = 1000};
	char hdr[64];
	o.lenient_lf = c->lenient;
	o.max_msg_size = c->max;
	c->s = smtp_server_new(&o, &fuzz_data_ops, c);
	if (c->s == NULL)
		abort();
	smtp_server_greet(c->s);
	const char *env = "EHLO f\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n";
	smtp_server_feed(c->s, env, strlen(env));
	if (!c->bdat) {
		smtp_server_feed(c->s, "DATA\r\n", 6);
		fuzz_data_drain(c);
		buf_reset(&c->log);
		for (size_t i = 0; i < n && !smtp_server_is_closing(c->s);) {
			size_t k = n - i < step ? n - i : step;
			unsigned before = c->commits;
			size_t used = smtp_server_feed(c->s, p + i, k);
			if (used > k)
				abort();
			/* strict: the first commit's content ended exactly at CRLF.CRLF */
			if (step == 1 && !c->lenient && before == 0 && c->commits == 1) {
				size_t e = i + used;
				bool at_start = e == 3 && memcmp(p, ".\r\n", 3) == 0;
				if (!at_start && (e < 5 || memcmp(p + e - 5, "\r\n.\r\n", 5) != 0))
					abort();
			}
			fuzz_data_drain(c);
			if (used == 0)
				break;
			i += used;
		}
	} else {
		/* BDAT: chunk sizes come from the input, 0..31 octets each */
		fuzz_data_drain(c);
		buf_reset(&c->log);
		size_t i = 0;
		while (i < n && !smtp_server_is_closing(c->s)) {
			size_t sz = (unsigned char)p[i] & 31;
			bool last = (unsigned char)p[i] & 32;
			i++;
			if (sz > n - i)
				sz = n - i;
			int hl = snprintf(hdr, sizeof hdr, "BDAT %zu%s\r\n", sz, last ? " LAST" : "");
			smtp_server_feed(c->s, hdr, (size_t)hl);
			for (size_t j = 0; j < sz;) {
				size_t k = sz - j < step ? sz - j : step;
				size_t used = smtp_server_feed(c->s, p + i + j, k);
				if (used == 0)
					break;
				j += used;
			}
			i += sz;
			fuzz_data_drain(c);
			if (last) {
				const char *again = "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n";
				smtp_server_feed(c->s, again, strlen(again));
			}
			fuzz_data_drain(c);
		}
	}
	smtp_server_free(c->s);
	c->s = NULL;
	if (c->open)
		abort();
	(void)mode;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_data a = {0}, b = {0};
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	a.bdat = b.bdat = mode & 1;
	a.lenient = b.lenient = mode & 2;
	a.max = b.max = (mode & 4) ? 64 : 1 << 20;
	buf_init(&a.msg, 0);
	buf_init(&b.msg, 0);
	buf_init(&a.log, 0);
	buf_init(&b.log, 0);
	fuzz_data_run(&a, mode, p, n, n ? n : 1);
	fuzz_data_run(&b, mode, p, n, 1);
	if (a.commits != b.commits || a.log.len != b.log.len ||
	    (a.log.len && memcmp(a.log.ptr, b.log.ptr, a.log.len) != 0)) {
		fprintf(stderr, "whole:\n%.*s\nbyte by byte:\n%.*s\n", (int)a.log.len,
		        a.log.ptr ? a.log.ptr : "", (int)b.log.len, b.log.ptr ? b.log.ptr : "");
		abort(); /* the result depends on how the stream was split */
	}
	buf_free(&a.msg);
	buf_free(&b.msg);
	buf_free(&a.log);
	buf_free(&b.log);
	return 0;
}
