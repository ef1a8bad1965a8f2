/* client_sendmail.c - `tern sendmail` / `sendmail`: the sendmail(8) command-line
 * interface (recipients as arguments, -t, -i/-oi, -f, -F, DSN's -N/-R/-V; other
 * -o/-B options accepted and ignored; -bs hands over to client_sendmail_bs.c). Submits to the
 * local ternd over SMTP; when ternd cannot be reached (or answers 4xx) the message
 * goes durably into the maildrop. Does not implement -bp (mailq) or -q. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/client_cmd.h"
#include "client/client_codec.h"
#include "client/client_io.h"
#include "client/client_maildrop.h"
#include "client/client_mime.h"
#include "client/client_send.h"
#include "client/client_sendmail.h"
#include "util/limits.h"

static void client_sendmail_usage(FILE *f)
{
	fputs("usage: tern sendmail [-t] [-i] [-f SENDER] [-F NAME] [-v] [--server HOST[:PORT]]\n"
	      "                     [RECIPIENT...]  < message\n"
	      "       tern sendmail -bs [-F NAME] [-v] [--server HOST[:PORT]]\n"
	      "  -t          recipients also from To:, Cc:, Bcc: (Bcc: is removed)\n"
	      "  -i, -oi     a line with a single \".\" does not end the message\n"
	      "  -f SENDER   envelope sender (default: USER@HOST)\n"
	      "  -F NAME     full name for an added From: header\n"
	      "  -N WHEN     delivery status notifications: never, or a list of\n"
	      "              success,failure,delay (RFC 3461 NOTIFY)\n"
	      "  -R full|hdrs  what a bounce returns of the message (RET)\n"
	      "  -V ENVID    envelope id quoted back in reports\n"
	      "  -bs         speak SMTP on stdin/stdout (each message is handed over\n"
	      "              as below before its 250; DSN parameters pass through)\n"
	      "  other -o..., -B, -C, -L, -O, -X options are accepted and ignored\n"
	      "submits to $TERN_SERVER (default 127.0.0.1:2525); when ternd is not reachable\n"
	      "the message is queued in $TERN_MAILDROP (default ./var/maildrop) and exit is 0\n",
	      f);
}

/* Default sender: login@hostname. */
static void client_sendmail_default_from(char *out, size_t outsz)
{
	char host[256] = "";
	const char *user = NULL;
	struct passwd *pw = getpwuid(getuid());
	if (pw != NULL)
		user = pw->pw_name;
	if (user == NULL)
		user = getenv("USER");
	if (user == NULL)
		user = "nobody";
	if (gethostname(host, sizeof host - 1) < 0 || host[0] == '\0')
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	snprintf(out, outsz, "%.64s@%.180s", user, host);
}

/* Does the text start with a header field ("Name:")? */
static bool client_sendmail_has_header(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':')
		i++;
	return i > 0 && i < n && p[i] == ':';
}

/* Prepend From/Date/Message-ID when missing. */
int client_sendmail_fix_headers(struct buf *msg, const char *from, const char *fullname)
{
	struct buf h;
	int rc = 0;
	char date[64], mid[512];
	bool headers = client_sendmail_has_header(msg->ptr, msg->len);

	buf_init(&h, 0);
	if (!headers || !client_msg_has_header(msg->ptr, msg->len, "From", NULL, 0)) {
		if (fullname != NULL && fullname[0] != '\0') {
			if ((rc = buf_append_str(&h, "From: ")) < 0 ||
			    (rc = client_rfc2047_phrase(&h, fullname, strlen(fullname), 6)) < 0 ||
			    (rc = buf_printf(&h, " <%s>\r\n", from)) < 0)
				goto fail;
		} else if ((rc = buf_printf(&h, "From: %s\r\n", from)) < 0) {
			goto fail;
		}
	}
	if (!headers || !client_msg_has_header(msg->ptr, msg->len, "Date", NULL, 0)) {
		client_rfc5322_date(time(NULL), date, sizeof date);
		if ((rc = buf_printf(&h, "Date: %s\r\n", date)) < 0)
			goto fail;
	}
	if (!headers || !client_msg_has_header(msg->ptr, msg->len, "Message-ID", NULL, 0)) {
		client_message_id(NULL, mid, sizeof mid);
		if ((rc = buf_printf(&h, "Message-ID: %s\r\n", mid)) < 0)
			goto fail;
	}
	if (!headers && (rc = buf_append(&h, "\r\n", 2)) < 0)
		goto fail;
	if (h.len > 0) {
		if ((rc = buf_append(&h, msg->ptr, msg->len)) < 0)
			goto fail;
		struct buf tmp = *msg;
		*msg = h;
		h = tmp;
	}
fail:
	buf_free(&h);
	return rc;
}

/* Recipients from one argument (a comma list is fine); 0 or a sysexits code. */
static int client_sendmail_add_rcpt(struct client_strv *rcpts, const char *arg)
{
	struct client_strv tmp = {NULL, 0};
	char spec[TERN_PATH_MAX];
	int ex = EX_OK;
	if (client_addr_split(arg, strlen(arg), &tmp) < 0) {
		ex = EX_OSERR;
		goto fail;
	}
	for (size_t k = 0; k < tmp.n; k++) {
		if (client_addr_spec(tmp.v[k], spec, sizeof spec, true) < 0) {
			fprintf(stderr, "tern sendmail: bad recipient \"%s\"\n", tmp.v[k]);
			ex = EX_DATAERR;
			goto fail;
		}
		if (client_strv_push(rcpts, spec, strlen(spec)) < 0) {
			ex = EX_OSERR;
			goto fail;
		}
	}
fail:
	client_strv_free(&tmp);
	return ex;
}

/* Read the message; without -i a line holding only "." ends it. */
static int client_sendmail_read(bool dot_ends, struct buf *raw)
{
	if (!dot_ends)
		return client_io_read_fd(STDIN_FILENO, raw);
	int rc = client_io_read_fd(STDIN_FILENO, raw);
	if (rc < 0 || raw->len == 0)
		return rc;
	size_t i = 0;
	while (i < raw->len) {
		const char *nl = memchr(raw->ptr + i, '\n', raw->len - i);
		size_t e = nl != NULL ? (size_t)(nl - raw->ptr) : raw->len;
		size_t l = e - i;
		if (l > 0 && raw->ptr[e - 1] == '\r')
			l--;
		if (l == 1 && raw->ptr[i] == '.') {
			raw->len = i;
			break;
		}
		i = e + 1;
	}
	return 0;
}

int client_sendmail_handover(const struct client_send_opts *o, const char *maildrop,
                             const char *fullname, const char *from, char *const *rcpts,
                             size_t nrcpts, struct buf *msg, char *path, size_t pathsz,
                             int *drop_err)
{
	path[0] = '\0';
	*drop_err = 0;
	if (client_sendmail_fix_headers(msg, from[0] != '\0' ? from : "MAILER-DAEMON",
	                                fullname) < 0)
		return EX_OSERR;
	const char *text = msg->ptr != NULL ? msg->ptr : "";
	struct client_msg_source src = {NULL, text, msg->len};
	int ex = client_send_submit(o, from, rcpts, nrcpts, &src);
	if (ex != EX_TEMPFAIL)
		return ex;
	*drop_err = client_maildrop_write(maildrop, from, rcpts, nrcpts, o->dsn, text, msg->len,
	                                  path, pathsz);
	if (*drop_err < 0) {
		path[0] = '\0';
		return EX_TEMPFAIL;
	}
	if (o->verbose)
		fprintf(stderr, "tern sendmail: ternd not reachable; queued as %s\n", path);
	return EX_OK;
}

int client_sendmail_main(int argc, char **argv)
{
	struct client_send_opts o;
	struct client_dsn_opts dsn;
	struct client_strv rcpts = {NULL, 0};
	struct buf raw, msg;
	const char *sender = NULL, *fullname = NULL, *maildrop = NULL;
	char from[TERN_PATH_MAX];
	bool tflag = false, iflag = false, bsflag = false;
	int ex = EX_OK, rc, i;

	client_send_opts_init(&o);
	memset(&dsn, 0, sizeof dsn);
	o.tls = CLIENT_TLS_NONE;
	o.quiet_tempfail = true;
	buf_init(&raw, TERN_MSG_SIZE_DEFAULT);
	buf_init(&msg, 0);
	/* options and recipients may be mixed, as with glibc getopt in sendmail(8) */
	bool dashdash = false;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		/* options with a value, attached ("-fme") or separate ("-f me") */
		const char *val = NULL;
		if (dashdash || a[0] != '-' || a[1] == '\0') {
			if ((rc = client_sendmail_add_rcpt(&rcpts, a)) != 0) {
				ex = rc;
				goto done;
			}
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			client_sendmail_usage(stdout);
			goto done;
		}
		if (strcmp(a, "--server") == 0 || strcmp(a, "--maildrop") == 0) {
			if (i + 1 >= argc)
				goto usage;
			if (a[2] == 's')
				o.server = argv[++i];
			else
				maildrop = argv[++i];
			continue;
		}
		if (strchr("fFrBCLNORVX", a[1]) != NULL && a[1] != '\0') {
			val = a[2] != '\0' ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (val == NULL)
				goto usage;
			if (a[1] == 'f' || a[1] == 'r')
				sender = val;
			else if (a[1] == 'F')
				fullname = val;
			if (a[1] == 'N' || a[1] == 'R' || a[1] == 'V') {
				char err[200];
				if (client_dsn_opts_set(&dsn, a[1] == 'N' ? val : NULL,
				                        a[1] == 'R' ? val : NULL, a[1] == 'V' ? val : NULL,
				                        err, sizeof err) < 0) {
					fprintf(stderr, "tern sendmail: -%c: %s\n", a[1], err);
					ex = EX_USAGE;
					goto done;
				}
				o.dsn = &dsn.d;
			}
			continue;
		}
		if (a[1] == 'o') {
			if (strcmp(a, "-oi") == 0)
				iflag = true;
			continue; /* -oem, -odb, -oQ... are ignored */
		}
		if (a[1] == 'b') {
			if (strcmp(a, "-bm") == 0 || strcmp(a, "-bs") == 0) {
				bsflag = a[2] == 's'; /* the last mode given wins */
				continue;
			}
			fprintf(stderr, "tern sendmail: %s is not supported\n", a);
			ex = EX_USAGE;
			goto done;
		}
		if (a[1] == 'q') {
			fprintf(stderr, "tern sendmail: -q is not supported (ternd runs its own queue)\n");
			ex = EX_USAGE;
			goto done;
		}
		/* clusters of flags: -t, -i, -v, -ti, -U (ignored), -m (ignored), -n */
		for (const char *c = a + 1; *c != '\0'; c++) {
			if (*c == 't')
				tflag = true;
			else if (*c == 'i')
				iflag = true;
			else if (*c == 'v')
				o.verbose = true;
			else if (strchr("Umne", *c) == NULL)
				fprintf(stderr, "tern sendmail: ignoring unknown option -%c\n", *c);
		}
	}
	if (bsflag) {
		/* the envelope comes from MAIL and RCPT; -f has nothing to name */
		if (rcpts.n > 0 || tflag || o.dsn != NULL) {
			fprintf(stderr, "tern sendmail: -bs takes its recipients from RCPT TO and "
			                "DSN parameters from MAIL and RCPT, not from arguments, -t, "
			                "-N, -R or -V\n");
			ex = EX_USAGE;
			goto done;
		}
		ex = client_sendmail_bs(&o, maildrop, fullname);
		goto done;
	}
	if (sender != NULL) {
		if (sender[0] == '\0' || strcmp(sender, "<>") == 0) {
			from[0] = '\0';
		} else if (client_addr_spec(sender, from, sizeof from, true) < 0) {
			fprintf(stderr, "tern sendmail: bad sender \"%s\"\n", sender);
			ex = EX_DATAERR;
			goto done;
		}
	} else {
		client_sendmail_default_from(from, sizeof from);
	}
	if ((rc = client_sendmail_read(!iflag, &raw)) < 0) {
		fprintf(stderr, "tern sendmail: cannot read the message: %s\n",
		        rc == -EFBIG ? "too big" : strerror(-rc));
		ex = rc == -EFBIG ? EX_DATAERR : EX_IOERR;
		goto done;
	}
	if ((rc = client_msg_to_crlf(raw.ptr != NULL ? raw.ptr : "", raw.len, &msg)) < 0)
		goto oom;
	if (tflag) {
		client_msg_header_addrs(msg.ptr, msg.len, "To", &rcpts);
		client_msg_header_addrs(msg.ptr, msg.len, "Cc", &rcpts);
		client_msg_header_addrs(msg.ptr, msg.len, "Bcc", &rcpts);
		client_msg_remove_header(&msg, "Bcc");
	}
	if (rcpts.n == 0) {
		fprintf(stderr, "tern sendmail: no recipients (give them as arguments or use -t)\n");
		ex = EX_USAGE;
		goto done;
	}
	char path[1300];
	ex = client_sendmail_handover(&o, maildrop, fullname, from, rcpts.v, rcpts.n, &msg, path,
	                              sizeof path, &rc);
	if (ex == EX_OSERR)
		goto oom;
	if (ex == EX_TEMPFAIL && rc < 0)
		fprintf(stderr, "tern sendmail: ternd not reachable and the maildrop failed: %s\n",
		        strerror(-rc));
	goto done;
usage:
	client_sendmail_usage(stderr);
	ex = EX_USAGE;
	goto done;
oom:
	fprintf(stderr, "tern sendmail: out of memory\n");
	ex = EX_OSERR;
done:
	client_send_opts_free(&o);
	client_strv_free(&rcpts);
	buf_free(&raw);
	buf_free(&msg);
	return ex;
}
