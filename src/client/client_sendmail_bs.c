/* client_sendmail_bs.c - `tern sendmail -bs`: speak SMTP on stdin/stdout, as
 * Postfix's and Exim's `sendmail -bs` do, for programs that talk SMTP to a local
 * command instead of a socket.
 *
 * Does: run ternd's own protocol engine (src/smtp/smtp_server.c: the same command
 * table, parsers, DATA decoder, replies and error limits) over the two pipes, and
 * hand each message over at its final dot the way `tern sendmail` does: submitted
 * to ternd over SMTP, or, when ternd cannot be reached or answers 4xx, written into
 * the maildrop. The 250 after the dot comes only after one of the two succeeded
 * (ternd's own 250, or the maildrop file fsynced into new/); a 5xx from ternd is
 * passed on; anything else is 451, so the caller keeps the message.
 * Does not: TLS or AUTH (the pipe is local), answer VRFY/EXPN (252), apply relay or
 * recipient policy (ternd does when the message reaches it), or time out (the caller
 * owns both pipes). DSN parameters (RET, ENVID, NOTIFY, ORCPT) are passed on to ternd
 * or written into the maildrop file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/client_reply.h"
#include "client/client_send.h"
#include "client/client_sendmail.h"
#include "smtp/smtp_dsn.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"
#include "util/limits.h"

struct client_bs {
	struct smtp_server *s;
	const struct client_send_opts *o;
	const char *maildrop;     /* NULL: $TERN_MAILDROP or the default */
	const char *fullname;     /* -F, for an added From: header */
	char from[TERN_PATH_MAX]; /* "" for <> */
	char **rcpts;             /* the accepted envelope of this message */
	size_t nrcpts;
	unsigned *rnotify;        /* per recipient NOTIFY bits (0: none) */
	char **rorcpt;            /* per recipient ORCPT or NULL */
	char envid[SMTP_DSN_ENVID_MAX + 1];
	struct client_dsn dsn;
	struct buf msg; /* content, CRLF, dot-unstuffed */
};

/* The engine refuses a message over SIZE itself; this is the memory bound. */
#define CLIENT_BS_MSG_MAX (TERN_MSG_SIZE_DEFAULT + 1024 * 1024)

/* An empty message buffer (fix_headers may have swapped in one without a bound). */
static void client_bs_msg_reset(struct client_bs *b)
{
	buf_free(&b->msg);
	buf_init(&b->msg, CLIENT_BS_MSG_MAX);
}

static void client_bs_envelope_free(struct client_bs *b)
{
	for (size_t i = 0; i < b->nrcpts; i++) {
		free(b->rcpts[i]);
		free(b->rorcpt[i]);
	}
	free(b->rcpts);
	free(b->rorcpt);
	free(b->rnotify);
	b->rcpts = b->rorcpt = NULL;
	b->rnotify = NULL;
	b->nrcpts = 0;
	memset(&b->dsn, 0, sizeof b->dsn);
	b->envid[0] = '\0';
	b->from[0] = '\0';
}

/* ---- engine callbacks ---- */

static void client_bs_vrfy(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	r->code = 252;
	snprintf(r->enh, sizeof r->enh, "2.5.2");
	snprintf(r->text, sizeof r->text, "Cannot VRFY user, but will accept message");
}

static int client_bs_data_begin(void *ctx, const struct smtp_addr *from,
                                const struct smtp_mail_params *p, const struct smtp_addr *rcpts,
                                size_t nrcpts)
{
	struct client_bs *b = ctx;
	char addr[TERN_PATH_MAX];

	client_bs_envelope_free(b);
	client_bs_msg_reset(b);
	if (smtp_addr_format(from, b->from, sizeof b->from) < 0)
		return -ENAMETOOLONG;
	b->rcpts = calloc(nrcpts, sizeof *b->rcpts);
	b->rorcpt = calloc(nrcpts, sizeof *b->rorcpt);
	b->rnotify = calloc(nrcpts, sizeof *b->rnotify);
	if (b->rcpts == NULL || b->rorcpt == NULL || b->rnotify == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nrcpts; i++) {
		if (smtp_addr_format(&rcpts[i], addr, sizeof addr) < 0)
			return -ENAMETOOLONG;
		b->rcpts[i] = strdup(addr);
		if (b->rcpts[i] == NULL)
			return -ENOMEM;
		b->nrcpts = i + 1;
		const struct smtp_rcpt_dsn *d = smtp_server_rcpt_dsn(b->s, i);
		if (d != NULL) {
			b->rnotify[i] = d->notify;
			if (d->orcpt[0] != '\0' && (b->rorcpt[i] = strdup(d->orcpt)) == NULL)
				return -ENOMEM;
		}
	}
	/* as the caller sent them, already checked by the engine */
	snprintf(b->envid, sizeof b->envid, "%s", p->dsn_envid);
	b->dsn.ret = p->dsn_ret;
	b->dsn.envid = b->envid;
	b->dsn.rnotify = b->rnotify;
	b->dsn.rorcpt = b->rorcpt;
	return 0;
}

static int client_bs_data_write(void *ctx, const char *p, size_t n)
{
	struct client_bs *b = ctx;

	return buf_append(&b->msg, p, n);
}

static void client_bs_data_abort(void *ctx)
{
	struct client_bs *b = ctx;

	client_bs_envelope_free(b);
	client_bs_msg_reset(b);
}

/* "Ok: queued as QID" -> QID (the text after the last "queued as "), else "". */
static void client_bs_qid(const struct client_reply *r, char *out, size_t outsz)
{
	const char *q = NULL;

	for (const char *h = r->text; (h = strstr(h, "queued as ")) != NULL; h++)
		q = h + strlen("queued as ");
	snprintf(out, outsz, "%.*s", q != NULL ? (int)strcspn(q, " \n") : 0, q != NULL ? q : "");
}

/* ternd refused the message for good: pass its verdict on as a reply that RFC 5321
 * 4.3.2 allows after the end of data (550, 552 or 554). */
static void client_bs_refused(struct client_bs *b, const struct client_reply *last, const char *err)
{
	struct smtp_reply r;

	memset(&r, 0, sizeof r);
	r.code = last->code == 550 || last->code == 552 ? last->code : 554;
	snprintf(r.enh, sizeof r.enh, "%s", last->enh[0] == '5' ? last->enh : "5.0.0");
	/* cut to fit one reply line (the engine's limit is 512 octets) */
	snprintf(r.text, sizeof r.text, "Refused by ternd: %.360s", err);
	for (char *c = r.text; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
			*c = '?';
	}
	smtp_server_commit_reply(b->s, &r);
}

static void client_bs_data_commit(void *ctx)
{
	struct client_bs *b = ctx;
	struct client_send_opts o = *b->o;
	struct client_reply last;
	char err[1024], qid[300] = "", path[1300];
	int ex, rc;

	client_reply_init(&last);
	o.last_reply = &last;
	o.err_out = err;
	o.err_out_sz = sizeof err;
	o.quiet = !o.verbose;
	o.dsn = &b->dsn;
	ex = client_sendmail_handover(&o, b->maildrop, b->fullname, b->from, b->rcpts, b->nrcpts,
	                              &b->msg, path, sizeof path, &rc);
	if (ex == EX_OSERR) {
		smtp_server_commit_done(b->s, -ENOMEM, NULL);
	} else if (ex == EX_OK && path[0] != '\0') {
		const char *name = strrchr(path, '/');
		snprintf(qid, sizeof qid, "maildrop/%.200s", name != NULL ? name + 1 : path);
		smtp_server_commit_done(b->s, 0, qid);
	} else if (ex == EX_OK) {
		client_bs_qid(&last, qid, sizeof qid);
		smtp_server_commit_done(b->s, 0, qid);
	} else if (ex == EX_TEMPFAIL && rc < 0) {
		smtp_server_commit_done(b->s, rc, NULL); /* the maildrop failed: 451/452 */
	} else if (ex == EX_UNAVAILABLE && last.code >= 500 && last.code <= 599) {
		client_bs_refused(b, &last, err);
	} else {
		if (b->o->verbose)
			fprintf(stderr, "tern sendmail: %s\n", err);
		smtp_server_commit_done(b->s, -EIO, NULL);
	}
	client_bs_envelope_free(b);
	client_bs_msg_reset(b);
}

static const struct smtp_server_ops client_bs_ops = {
    .vrfy = client_bs_vrfy,
    .data_begin = client_bs_data_begin,
    .data_write = client_bs_data_write,
    .data_commit = client_bs_data_commit,
    .data_abort = client_bs_data_abort,
};

/* ---- the loop ---- */

/* Write what the engine produced. 0, or -errno (EPIPE: the caller went away). */
static int client_bs_flush(struct smtp_server *s)
{
	size_t len;
	const char *out = smtp_server_output(s, &len);

	while (len > 0) {
		ssize_t w = write(STDOUT_FILENO, out, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		smtp_server_output_done(s, (size_t)w);
		out = smtp_server_output(s, &len);
	}
	return 0;
}

int client_sendmail_bs(const struct client_send_opts *o, const char *maildrop, const char *fullname)
{
	struct smtp_server_opts so;
	struct client_bs b;
	char host[256] = "", in[16384];
	int ex = EX_OK, rc;

	memset(&b, 0, sizeof b);
	b.o = o;
	b.maildrop = maildrop;
	b.fullname = fullname;
	buf_init(&b.msg, CLIENT_BS_MSG_MAX);
	if (gethostname(host, sizeof host - 1) < 0 || host[0] == '\0')
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	memset(&so, 0, sizeof so);
	so.hostname = host;
	so.greeting = "ESMTP tern sendmail -bs";
	so.max_msg_size = TERN_MSG_SIZE_DEFAULT;
	so.max_rcpts = TERN_RCPTS_DEFAULT;
	so.max_errors = TERN_ERRORS_DEFAULT;
	so.lenient_lf = true; /* local programs write LF; content is stored as CRLF */
	so.vrfy_enabled = true;
	b.s = smtp_server_new(&so, &client_bs_ops, &b);
	if (b.s == NULL) {
		fprintf(stderr, "tern sendmail: out of memory\n");
		ex = EX_OSERR;
		goto done;
	}
	signal(SIGPIPE, SIG_IGN);
	smtp_server_greet(b.s);
	while ((rc = client_bs_flush(b.s)) == 0 && !smtp_server_is_closing(b.s)) {
		ssize_t n = read(STDIN_FILENO, in, sizeof in);
		size_t off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tern sendmail: reading stdin: %s\n", strerror(errno));
			ex = EX_IOERR;
			goto done;
		}
		if (n == 0)
			break; /* end of input without QUIT: a message not yet ended is dropped */
		for (int idle = 0; off < (size_t)n && !smtp_server_is_closing(b.s);) {
			size_t used = smtp_server_feed(b.s, in + off, (size_t)n - off);

			off += used;
			if ((rc = client_bs_flush(b.s)) < 0)
				break;
			/* nothing used with all output sent: commits finish inside
			 * data_commit, so the engine cannot be waiting for us */
			idle = used == 0 ? idle + 1 : 0;
			if (idle > 1) {
				fprintf(stderr, "tern sendmail: SMTP engine stalled\n");
				ex = EX_SOFTWARE;
				goto done;
			}
		}
		if (rc < 0)
			break;
	}
	if (rc < 0 && rc != -EPIPE) {
		fprintf(stderr, "tern sendmail: writing stdout: %s\n", strerror(-rc));
		ex = EX_IOERR;
	}
done:
	smtp_server_free(b.s);
	client_bs_envelope_free(&b);
	buf_free(&b.msg);
	return ex;
}
