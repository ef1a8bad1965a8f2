/* client_send.c - `tern send`: options -> composed message (or --message file) ->
 * one SMTP session -> sysexits code. Also owns the shared "submit this message"
 * path used by `tern sendmail`. Does not know MIME details (client_mime.c) or the
 * wire protocol (client_smtp.c). */
#include "client/client_send.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/client_cmd.h"
#include "client/client_codec.h"
#include "client/client_io.h"
#include "client/client_mime.h"
#include "client/client_reply.h"
#include "client/client_smtp.h"
#include "smtp/smtp_dsn.h"
#include "util/limits.h"

#define CLIENT_BODY_MAX (TERN_MSG_SIZE_DEFAULT + 0u)

static void client_send_usage(FILE *f)
{
	fputs("usage: tern send --from ADDR --to ADDR [options]\n"
	      "message:\n"
	      "  --from ADDR          sender (header and envelope); \"Name <a@b>\" allowed\n"
	      "  --to/--cc/--bcc ADDR recipients; repeat or give comma lists\n"
	      "  -s, --subject TEXT   subject (UTF-8 is encoded per RFC 2047)\n"
	      "  --body TEXT          body text; or --body-file FILE; else stdin when piped\n"
	      "  --html FILE          HTML part (multipart/alternative with the text)\n"
	      "  -a, --attach FILE    attachment (repeatable; base64; type guessed)\n"
	      "  -H, --header 'N: V'  extra header (repeatable)\n"
	      "  --message FILE       send this RFC 5322 file as is (Bcc: lines removed)\n"
	      "transport:\n"
	      "  --server HOST[:PORT] default $TERN_SERVER or 127.0.0.1:2525\n"
	      "  --tls MODE           auto (default: STARTTLS if offered), starttls,\n"
	      "                       implicit (port 465 style), none\n"
	      "  --insecure           do not verify the server certificate (tests only)\n"
	      "  --auth USER          authenticate; password from --password-file FILE,\n"
	      "                       $TERN_PASSWORD or a terminal prompt\n"
	      "  --helo NAME          name for EHLO (default: this host)\n"
	      "  --timeout SECONDS    per network operation (default 300)\n"
	      "  -v, --verbose        print the SMTP dialogue (C: client, S: server) to stderr\n"
	      "  -n, --dry-run        print the composed message, send nothing\n"
	      "delivery status notifications (RFC 3461; sent when the server offers DSN):\n"
	      "  --notify WHEN        never, or a list of success,failure,delay\n"
	      "  --ret full|hdrs      return the whole message or its header in a bounce\n"
	      "  --envid TEXT         envelope id quoted back in reports (printable ASCII)\n"
	      "exit: 0 sent, 64 usage, 65 bad data, 66 missing file, 69 refused (5xx),\n"
	      "      75 temporary failure (4xx, network)\n",
	      f);
}

void client_send_opts_init(struct client_send_opts *o)
{
	memset(o, 0, sizeof *o);
	o->tls = CLIENT_TLS_AUTO;
}

int client_dsn_opts_set(struct client_dsn_opts *d, const char *notify, const char *ret,
                        const char *envid, char *err, size_t errsz)
{
	if (notify != NULL && smtp_dsn_notify_parse(notify, strlen(notify), &d->d.notify) < 0) {
		snprintf(err, errsz, "NOTIFY \"%s\": want never, or a list of success,failure,delay",
		         notify);
		return -EINVAL;
	}
	if (ret != NULL) {
		if (strcasecmp(ret, "full") == 0) {
			d->d.ret = 1;
		} else if (strcasecmp(ret, "hdrs") == 0) {
			d->d.ret = 2;
		} else {
			snprintf(err, errsz, "RET \"%s\": want full or hdrs", ret);
			return -EINVAL;
		}
	}
	if (envid != NULL) {
		int r = smtp_dsn_xtext_encode(envid, strlen(envid), d->envid, sizeof d->envid);
		if (r < 0 || d->envid[0] == '\0') {
			snprintf(err, errsz, "ENVID: %s", r == -ENOSPC ? "too long (100 octets encoded)"
			                                   : "want printable ASCII, not empty");
			return -EINVAL;
		}
		d->d.envid = d->envid;
	}
	return 0;
}

void client_send_opts_free(struct client_send_opts *o)
{
	if (o->password[0] != '\0')
		OPENSSL_cleanse(o->password, sizeof o->password);
}

int client_send_parse_tls(const char *v, enum client_tls_mode *out)
{
	if (strcmp(v, "auto") == 0)
		*out = CLIENT_TLS_AUTO;
	else if (strcmp(v, "none") == 0 || strcmp(v, "off") == 0)
		*out = CLIENT_TLS_NONE;
	else if (strcmp(v, "starttls") == 0)
		*out = CLIENT_TLS_STARTTLS;
	else if (strcmp(v, "implicit") == 0 || strcmp(v, "tls") == 0 || strcmp(v, "smtps") == 0)
		*out = CLIENT_TLS_IMPLICIT;
	else
		return -EINVAL;
	return 0;
}

int client_send_password(struct client_send_opts *o)
{
	int rc;
	if (o->auth_user == NULL)
		return 0;
	if (o->password_file != NULL) {
		struct buf b;
		buf_init(&b, sizeof o->password - 1);
		rc = client_io_read_file(o->password_file, &b);
		if (rc < 0) {
			fprintf(stderr, "tern: cannot read password file %s: %s\n", o->password_file,
			        strerror(-rc));
			buf_free(&b);
			return rc == -ENOENT ? EX_NOINPUT : EX_DATAERR;
		}
		size_t n = b.len;
		const char *nl = b.ptr != NULL ? memchr(b.ptr, '\n', b.len) : NULL;
		if (nl != NULL)
			n = (size_t)(nl - b.ptr);
		if (n > 0 && b.ptr[n - 1] == '\r')
			n--;
		if (n > 0)
			memcpy(o->password, b.ptr, n);
		o->password[n] = '\0';
		if (b.ptr != NULL)
			OPENSSL_cleanse(b.ptr, b.cap);
		buf_free(&b);
		return 0;
	}
	const char *env = getenv("TERN_PASSWORD");
	if (env != NULL) {
		if (strlen(env) >= sizeof o->password)
			return EX_DATAERR;
		snprintf(o->password, sizeof o->password, "%s", env);
		return 0;
	}
	char prompt[300];
	snprintf(prompt, sizeof prompt, "Password for %s: ", o->auth_user);
	rc = client_io_password(prompt, o->password, sizeof o->password);
	if (rc < 0) {
		fprintf(stderr, "tern: --auth needs a password: use --password-file, "
		                "TERN_PASSWORD or run from a terminal\n");
		return EX_USAGE;
	}
	return 0;
}

int client_send_server(const char *spec, enum client_tls_mode tls, char *host, size_t hostsz,
                       char *port, size_t portsz)
{
	if (spec == NULL)
		spec = getenv("TERN_SERVER");
	if (spec == NULL || spec[0] == '\0')
		spec = CLIENT_SERVER_DEFAULT;
	return client_smtp_split_server(spec, host, hostsz, port, portsz,
	                                tls == CLIENT_TLS_IMPLICIT ? "465" : "25");
}

int client_send_submit(const struct client_send_opts *o, const char *from, char *const *rcpts,
                       size_t nrcpts, const struct client_msg_source *src)
{
	struct client_smtp s;
	struct client_smtp_opts so;
	struct buf composed;
	char host[256], port[16];
	bool smtputf8 = !client_is_ascii(from, strlen(from));
	int rc, ex = EX_OK;

	client_smtp_init(&s);
	buf_init(&composed, 0);
	if (o->err_out != NULL && o->err_out_sz > 0)
		o->err_out[0] = '\0';
	for (size_t i = 0; i < nrcpts; i++)
		if (!client_is_ascii(rcpts[i], strlen(rcpts[i])))
			smtputf8 = true;
	if (client_send_server(o->server, o->tls, host, sizeof host, port, sizeof port) < 0) {
		fprintf(stderr, "tern: bad --server \"%s\" (want HOST[:PORT])\n",
		        o->server != NULL ? o->server : getenv("TERN_SERVER"));
		ex = EX_USAGE;
		goto out;
	}
	memset(&so, 0, sizeof so);
	so.host = host;
	so.port = port;
	so.tls = o->tls;
	so.insecure = o->insecure;
	so.helo = o->helo;
	so.auth_user = o->auth_user;
	so.auth_pass = o->password;
	so.verbose = o->verbose;
	so.timeout_s = o->timeout_s;
	if ((rc = client_smtp_open(&s, &so)) < 0) {
		if (o->last_reply != NULL)
			*o->last_reply = s.reply;
		goto smtp_fail;
	}

	const char *msg = src->raw;
	size_t len = src->raw_len;
	bool body8 = false;
	if (src->compose != NULL) {
		struct client_compose c = *src->compose;
		c.allow_8bit = s.has_8bitmime;
		if ((rc = client_compose_build(&c, &composed, &body8)) < 0) {
			fprintf(stderr, "tern: cannot compose the message: %s\n", strerror(-rc));
			ex = client_exit_for_errno(rc);
			client_smtp_quit(&s);
			goto out;
		}
		msg = composed.ptr;
		len = composed.len;
	} else {
		size_t longest;
		client_msg_scan(msg, len, &longest, &body8);
		if (body8 && !s.has_8bitmime)
			fprintf(stderr, "tern: warning: %s does not offer 8BITMIME; sending 8-bit "
			                "data anyway\n", host);
	}
	rc = client_smtp_transaction(&s, from, rcpts, nrcpts, msg, len, body8, smtputf8, o->dsn);
	if (o->last_reply != NULL)
		*o->last_reply = s.reply; /* before QUIT's 221 replaces it */
	client_smtp_quit(&s);
	if (rc < 0)
		goto smtp_fail;
	goto out;
smtp_fail:
	if (!o->quiet && (!o->quiet_tempfail || s.exit_code != EX_TEMPFAIL))
		fprintf(stderr, "tern: %s\n", s.err);
	ex = s.exit_code != 0 ? s.exit_code : EX_SOFTWARE;
	if (o->err_out != NULL && o->err_out_sz > 0)
		snprintf(o->err_out, o->err_out_sz, "%s", s.err);
out:
	client_smtp_close(&s);
	buf_free(&composed);
	return ex;
}

static int client_send_add_addrs(const char *arg, struct client_strv *hdr, struct client_strv *env)
{
	struct client_strv tmp = {NULL, 0};
	char spec[TERN_PATH_MAX];
	int rc = client_addr_split(arg, strlen(arg), &tmp);
	for (size_t i = 0; rc == 0 && i < tmp.n; i++) {
		if (client_addr_spec(tmp.v[i], spec, sizeof spec, false) < 0) {
			fprintf(stderr, "tern: bad address \"%s\"\n", tmp.v[i]);
			rc = -EINVAL;
			break;
		}
		if (!client_is_utf8(spec, strlen(spec))) {
			fprintf(stderr, "tern: address \"%s\" is not valid UTF-8\n", tmp.v[i]);
			rc = -EINVAL;
			break;
		}
		if (hdr != NULL && (rc = client_strv_push(hdr, tmp.v[i], strlen(tmp.v[i]))) < 0)
			break;
		rc = client_strv_push(env, spec, strlen(spec));
	}
	client_strv_free(&tmp);
	return rc;
}

enum {
	CLIENT_OPT_FROM = 1000, CLIENT_OPT_TO, CLIENT_OPT_CC, CLIENT_OPT_BCC, CLIENT_OPT_BODY,
	CLIENT_OPT_BODY_FILE, CLIENT_OPT_HTML, CLIENT_OPT_MESSAGE, CLIENT_OPT_SERVER,
	CLIENT_OPT_TLS, CLIENT_OPT_INSECURE, CLIENT_OPT_AUTH, CLIENT_OPT_PWFILE, CLIENT_OPT_HELO,
	CLIENT_OPT_TIMEOUT, CLIENT_OPT_NOTIFY, CLIENT_OPT_RET, CLIENT_OPT_ENVID,
};

static const struct option client_send_longopts[] = {
	{"from", required_argument, NULL, CLIENT_OPT_FROM},
	{"to", required_argument, NULL, CLIENT_OPT_TO},
	{"cc", required_argument, NULL, CLIENT_OPT_CC},
	{"bcc", required_argument, NULL, CLIENT_OPT_BCC},
	{"subject", required_argument, NULL, 's'},
	{"body", required_argument, NULL, CLIENT_OPT_BODY},
	{"body-file", required_argument, NULL, CLIENT_OPT_BODY_FILE},
	{"html", required_argument, NULL, CLIENT_OPT_HTML},
	{"attach", required_argument, NULL, 'a'},
	{"header", required_argument, NULL, 'H'},
	{"message", required_argument, NULL, CLIENT_OPT_MESSAGE},
	{"server", required_argument, NULL, CLIENT_OPT_SERVER},
	{"tls", required_argument, NULL, CLIENT_OPT_TLS},
	{"insecure", no_argument, NULL, CLIENT_OPT_INSECURE},
	{"auth", required_argument, NULL, CLIENT_OPT_AUTH},
	{"password-file", required_argument, NULL, CLIENT_OPT_PWFILE},
	{"helo", required_argument, NULL, CLIENT_OPT_HELO},
	{"timeout", required_argument, NULL, CLIENT_OPT_TIMEOUT},
	{"notify", required_argument, NULL, CLIENT_OPT_NOTIFY},
	{"ret", required_argument, NULL, CLIENT_OPT_RET},
	{"envid", required_argument, NULL, CLIENT_OPT_ENVID},
	{"verbose", no_argument, NULL, 'v'},
	{"dry-run", no_argument, NULL, 'n'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Reads a file named by an option; prints the error and returns a sysexits code. */
static int client_send_slurp(const char *what, const char *path, struct buf *b)
{
	int rc = client_io_read_file(path, b);
	if (rc == 0)
		return 0;
	fprintf(stderr, "tern: cannot read %s %s: %s\n", what, path,
	        rc == -EFBIG ? "file too big" : strerror(-rc));
	return rc == -ENOENT || rc == -EISDIR ? EX_NOINPUT : rc == -EACCES ? EX_NOINPUT : EX_IOERR;
}

/* Compose the message into out; on failure say why and return the exit code. */
static int client_send_compose(const struct client_compose *c, struct buf *out)
{
	bool b8;
	int rc = client_compose_build(c, out, &b8);

	if (rc >= 0)
		return EX_OK;
	fprintf(stderr, "tern: cannot compose the message: %s\n",
	        rc == -EINVAL ? "bad --header (Name: value; Bcc/MIME headers are "
	                        "written by tern)"
	                      : strerror(-rc));
	return client_exit_for_errno(rc);
}

int client_send_main(int argc, char **argv)
{
	struct client_send_opts o;
	struct client_dsn_opts dsn;
	struct client_compose c;
	struct client_strv env_rcpt = {NULL, 0}, att_paths = {NULL, 0};
	struct buf body, html, raw, out;
	const char *from = NULL, *body_arg = NULL, *body_file = NULL, *html_file = NULL;
	const char *message_file = NULL;
	char from_spec[TERN_PATH_MAX];
	bool dry_run = false, composing = false;
	int ex = EX_OK, opt;

	client_send_opts_init(&o);
	memset(&dsn, 0, sizeof dsn);
	memset(&c, 0, sizeof c);
	buf_init(&body, CLIENT_BODY_MAX);
	buf_init(&html, CLIENT_BODY_MAX);
	buf_init(&raw, CLIENT_BODY_MAX);
	buf_init(&out, 0);
	from_spec[0] = '\0';
	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:a:H:vnh", client_send_longopts, NULL)) != -1) {
		switch (opt) {
		case CLIENT_OPT_FROM: from = optarg; break;
		case CLIENT_OPT_TO:
			if (client_send_add_addrs(optarg, &c.to, &env_rcpt) < 0)
				goto bad_data;
			break;
		case CLIENT_OPT_CC:
			if (client_send_add_addrs(optarg, &c.cc, &env_rcpt) < 0)
				goto bad_data;
			break;
		case CLIENT_OPT_BCC:
			if (client_send_add_addrs(optarg, NULL, &env_rcpt) < 0)
				goto bad_data;
			break;
		case 's': c.subject = optarg; composing = true; break;
		case CLIENT_OPT_BODY: body_arg = optarg; composing = true; break;
		case CLIENT_OPT_BODY_FILE: body_file = optarg; composing = true; break;
		case CLIENT_OPT_HTML: html_file = optarg; composing = true; break;
		case 'a':
			composing = true;
			if (client_strv_push(&att_paths, optarg, strlen(optarg)) < 0)
				goto oom;
			break;
		case 'H':
			composing = true;
			if (client_strv_push(&c.headers, optarg, strlen(optarg)) < 0)
				goto oom;
			break;
		case CLIENT_OPT_MESSAGE: message_file = optarg; break;
		case CLIENT_OPT_SERVER: o.server = optarg; break;
		case CLIENT_OPT_TLS:
			if (client_send_parse_tls(optarg, &o.tls) < 0) {
				fprintf(stderr, "tern: --tls wants auto, starttls, implicit or none\n");
				goto usage;
			}
			break;
		case CLIENT_OPT_INSECURE: o.insecure = true; break;
		case CLIENT_OPT_AUTH: o.auth_user = optarg; break;
		case CLIENT_OPT_PWFILE: o.password_file = optarg; break;
		case CLIENT_OPT_HELO: o.helo = optarg; break;
		case CLIENT_OPT_TIMEOUT: {
			char *end = NULL;
			long t = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || t <= 0 || t > 3600) {
				fprintf(stderr, "tern: --timeout wants 1..3600 seconds\n");
				goto usage;
			}
			o.timeout_s = (int)t;
			break;
		}
		case CLIENT_OPT_NOTIFY:
		case CLIENT_OPT_RET:
		case CLIENT_OPT_ENVID: {
			char err[200];
			if (client_dsn_opts_set(&dsn, opt == CLIENT_OPT_NOTIFY ? optarg : NULL,
			                        opt == CLIENT_OPT_RET ? optarg : NULL,
			                        opt == CLIENT_OPT_ENVID ? optarg : NULL, err,
			                        sizeof err) < 0) {
				fprintf(stderr, "tern: --%s: %s\n", opt == CLIENT_OPT_NOTIFY ? "notify"
				                : opt == CLIENT_OPT_RET ? "ret" : "envid", err);
				goto usage;
			}
			o.dsn = &dsn.d;
			break;
		}
		case 'v': o.verbose = true; break;
		case 'n': dry_run = true; break;
		case 'h': client_send_usage(stdout); goto done;
		default: goto usage;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tern: unexpected argument \"%s\" (recipients go in --to)\n",
		        argv[optind]);
		goto usage;
	}
	if (message_file != NULL && composing) {
		fprintf(stderr, "tern: --message sends a file as is; it cannot be combined with "
		                "--subject, --body, --html, --attach or --header\n");
		goto usage;
	}
	if (body_arg != NULL && body_file != NULL) {
		fprintf(stderr, "tern: give --body or --body-file, not both\n");
		goto usage;
	}

	struct client_msg_source src = {NULL, NULL, 0};
	if (message_file != NULL) {
		struct buf file;
		buf_init(&file, CLIENT_BODY_MAX);
		ex = client_send_slurp("message", message_file, &file);
		if (ex == 0 && client_msg_to_crlf(file.ptr != NULL ? file.ptr : "", file.len, &raw) < 0)
			ex = EX_OSERR;
		buf_free(&file);
		if (ex != 0)
			goto done;
		if (env_rcpt.n == 0) {
			client_msg_header_addrs(raw.ptr, raw.len, "To", &env_rcpt);
			client_msg_header_addrs(raw.ptr, raw.len, "Cc", &env_rcpt);
			client_msg_header_addrs(raw.ptr, raw.len, "Bcc", &env_rcpt);
		}
		client_msg_remove_header(&raw, "Bcc");
		if (from == NULL) {
			struct client_strv f = {NULL, 0};
			client_msg_header_addrs(raw.ptr, raw.len, "From", &f);
			if (f.n > 0)
				snprintf(from_spec, sizeof from_spec, "%s", f.v[0]);
			client_strv_free(&f);
			if (from_spec[0] == '\0') {
				fprintf(stderr, "tern: no --from and no From: header in %s\n", message_file);
				goto usage;
			}
		}
		src.raw = raw.ptr;
		src.raw_len = raw.len;
	}
	if (from != NULL) {
		struct client_strv f = {NULL, 0};
		if (client_addr_split(from, strlen(from), &f) < 0 || f.n != 1 ||
		    client_addr_spec(f.v[0], from_spec, sizeof from_spec, false) < 0) {
			fprintf(stderr, "tern: bad --from address \"%s\"\n", from);
			client_strv_free(&f);
			goto bad_data;
		}
		client_strv_free(&f);
	} else if (message_file == NULL) {
		fprintf(stderr, "tern: --from is required\n");
		goto usage;
	}
	if (env_rcpt.n == 0) {
		fprintf(stderr, "tern: no recipients (use --to, --cc or --bcc)\n");
		goto usage;
	}

	if (message_file == NULL) {
		if (body_arg != NULL) {
			if (buf_append_str(&body, body_arg) < 0)
				goto oom;
		} else if (body_file != NULL) {
			if ((ex = client_send_slurp("body file", body_file, &body)) != 0)
				goto done;
		} else if (!isatty(STDIN_FILENO)) {
			int rc = client_io_read_fd(STDIN_FILENO, &body);
			if (rc < 0) {
				fprintf(stderr, "tern: cannot read the body from stdin: %s\n", strerror(-rc));
				ex = client_exit_for_errno(rc);
				goto done;
			}
		}
		if (html_file != NULL && (ex = client_send_slurp("html file", html_file, &html)) != 0)
			goto done;
		c.natt = att_paths.n;
		c.att = att_paths.n > 0 ? calloc(att_paths.n, sizeof *c.att) : NULL;
		if (att_paths.n > 0 && c.att == NULL)
			goto oom;
		for (size_t i = 0; i < att_paths.n; i++) {
			int rc = client_attach_load(&c.att[i], att_paths.v[i]);
			if (rc < 0) {
				fprintf(stderr, "tern: cannot read attachment %s: %s\n", att_paths.v[i],
				        rc == -EFBIG ? "file too big" : strerror(-rc));
				ex = rc == -ENOENT || rc == -EISDIR || rc == -EACCES ? EX_NOINPUT : EX_IOERR;
				goto done;
			}
		}
		c.from = from;
		c.body = body.ptr != NULL ? body.ptr : "";
		c.body_len = body.len;
		if (html_file != NULL) {
			c.html = html.ptr != NULL ? html.ptr : "";
			c.html_len = html.len;
			if (body_arg == NULL && body_file == NULL && body.len == 0)
				c.body = NULL; /* HTML only */
		}
		src.compose = &c;
	}

	if (dry_run) {
		const char *msg = src.raw;
		size_t len = src.raw_len;
		if (src.compose != NULL) {
			c.allow_8bit = true;
			if ((ex = client_send_compose(&c, &out)) != EX_OK)
				goto done;
			msg = out.ptr;
			len = out.len;
		}
		fprintf(stderr, "tern: dry run, nothing sent; envelope MAIL FROM:<%s>", from_spec);
		for (size_t i = 0; i < env_rcpt.n; i++)
			fprintf(stderr, " RCPT TO:<%s>", env_rcpt.v[i]);
		fputc('\n', stderr);
		fwrite(msg, 1, len, stdout);
		fflush(stdout);
		goto done;
	}
	/* check the composition before connecting: bad input is EX_DATAERR, not a
	 * half-open session */
	if (src.compose != NULL && (ex = client_send_compose(&c, &out)) != EX_OK)
		goto done;
	if ((ex = client_send_password(&o)) != 0)
		goto done;
	ex = client_send_submit(&o, from_spec, env_rcpt.v, env_rcpt.n, &src);
	goto done;
usage:
	fprintf(stderr, "tern send --help shows the options\n");
	ex = EX_USAGE;
	goto done;
bad_data:
	ex = EX_DATAERR;
	goto done;
oom:
	fprintf(stderr, "tern: out of memory\n");
	ex = EX_OSERR;
done:
	client_send_opts_free(&o);
	client_compose_free(&c);
	client_strv_free(&env_rcpt);
	client_strv_free(&att_paths);
	buf_free(&body);
	buf_free(&html);
	buf_free(&raw);
	buf_free(&out);
	return ex;
}
