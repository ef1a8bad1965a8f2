/* client_chat.c - `tern chat HOST[:PORT]`: an interactive SMTP session for people
 * learning or debugging SMTP. Lines typed (or piped) are sent with CRLF; each reply
 * is printed ("S: ...") followed by a one-line explanation. Helpers: "starttls"
 * (upgrade in place), "auth plain USER" (password prompted, or the next stdin line
 * when piped), and DATA mode (lines until "." are dot-stuffed for you). It does not
 * check what the user types: sending bad commands is part of learning. */
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
#include "client/client_io.h"
#include "client/client_reply.h"
#include "client/client_send.h"
#include "client/client_smtp.h"

#define CLIENT_CHAT_LINE_MAX 4096

struct client_chat {
	struct client_smtp s;
	bool piped;     /* stdin is not a terminal: echo what we send */
	FILE *out;
};

static void client_chat_show_sent(struct client_chat *ch, const char *shown, bool always)
{
	if (ch->piped || always)
		fprintf(ch->out, "C: %s\n", shown);
}

/* Read and print one reply, then its explanation. verb: what it answers. */
static int client_chat_reply(struct client_chat *ch, const char *verb)
{
	char expl[256];
	int rc = client_smtp_read_reply(&ch->s);
	if (rc < 0) {
		fprintf(ch->out, "tern: %s\n", ch->s.err);
		return rc;
	}
	client_reply_explain(ch->s.reply.code, ch->s.reply.enh, verb, expl, sizeof expl);
	fprintf(ch->out, "   %03d%s%s -> %s\n", ch->s.reply.code, ch->s.reply.enh[0] ? " " : "",
	        ch->s.reply.enh, expl);
	fflush(ch->out);
	return 0;
}

static int client_chat_send(struct client_chat *ch, const char *line, const char *shown)
{
	struct buf b;
	int rc;
	buf_init(&b, 0);
	if ((rc = buf_append_str(&b, line)) == 0 && (rc = buf_append(&b, "\r\n", 2)) == 0)
		rc = client_smtp_write(&ch->s, b.ptr, b.len);
	buf_free(&b);
	if (rc < 0)
		fprintf(ch->out, "tern: %s\n", ch->s.err);
	else
		client_chat_show_sent(ch, shown != NULL ? shown : line, shown != NULL);
	return rc;
}

static int client_chat_auth_plain(struct client_chat *ch, const char *user)
{
	char pass[512];
	struct buf line;
	int rc;
	buf_init(&line, 4096);
	if (ch->piped) {
		rc = client_io_read_line_fd(STDIN_FILENO, pass, sizeof pass);
		if (rc == 0)
			fprintf(ch->out, "   (password read from the next input line)\n");
	} else {
		rc = client_io_password("Password: ", pass, sizeof pass);
	}
	if (rc < 0) {
		fprintf(ch->out, "tern: no password for auth plain\n");
		rc = 0; /* not fatal: the session goes on */
		goto fail;
	}
	if ((rc = client_smtp_plain_line(&line, user, pass)) < 0)
		goto fail;
	if ((rc = client_chat_send(ch, line.ptr, "AUTH PLAIN ****")) < 0)
		goto fail;
	rc = client_chat_reply(ch, "AUTH");
fail:
	OPENSSL_cleanse(pass, sizeof pass);
	if (line.ptr != NULL)
		OPENSSL_cleanse(line.ptr, line.cap);
	buf_free(&line);
	return rc;
}

/* After 354: message lines until "." (or EOF), dot-stuffed, then the end-of-data dot. */
static int client_chat_data(struct client_chat *ch)
{
	char line[CLIENT_CHAT_LINE_MAX];
	int rc;
	if (!ch->piped)
		fprintf(ch->out, "   (type the message: headers, an empty line, the body; end with "
		                 "a line holding only \".\")\n");
	for (;;) {
		rc = client_io_read_line_fd(STDIN_FILENO, line, sizeof line - 1);
		if (rc == -ENODATA)
			break;
		if (rc < 0) {
			fprintf(ch->out, "tern: input line too long\n");
			continue;
		}
		if (strcmp(line, ".") == 0)
			break;
		struct buf b;
		buf_init(&b, 0);
		if (line[0] == '.')
			buf_append(&b, ".", 1);
		buf_append_str(&b, line);
		rc = buf_append(&b, "\r\n", 2) == 0 ? client_smtp_write(&ch->s, b.ptr, b.len) : -ENOMEM;
		buf_free(&b);
		if (rc < 0) {
			fprintf(ch->out, "tern: %s\n", ch->s.err);
			return rc;
		}
		client_chat_show_sent(ch, line, false);
	}
	if ((rc = client_chat_send(ch, ".", NULL)) < 0)
		return rc;
	return client_chat_reply(ch, ".");
}

static void client_chat_usage(FILE *f)
{
	fputs("usage: tern chat [--tls implicit] [--insecure] [--timeout S] [HOST[:PORT]]\n"
	      "  default server: $TERN_SERVER or 127.0.0.1:2525; port 25 when only HOST\n"
	      "type SMTP commands (EHLO, MAIL FROM:<a@b>, RCPT TO:<c@d>, DATA, QUIT...);\n"
	      "helpers: starttls | auth plain USER | after DATA's 354, lines until \".\"\n",
	      f);
}

int client_chat_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"tls", required_argument, NULL, 't'},
		{"insecure", no_argument, NULL, 'k'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct client_chat ch;
	char host[256], port[16], line[CLIENT_CHAT_LINE_MAX], verb[32];
	enum client_tls_mode tls = CLIENT_TLS_NONE;
	int timeout = 60, opt, rc, ex = EX_OK;
	bool insecure = false, quit_sent = false;

	memset(&ch, 0, sizeof ch);
	client_smtp_init(&ch.s);
	ch.out = stdout;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "kh", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (client_send_parse_tls(optarg, &tls) < 0 ||
			    (tls != CLIENT_TLS_IMPLICIT && tls != CLIENT_TLS_NONE)) {
				fprintf(stderr, "tern chat: --tls implicit or none (use the starttls "
				                "helper for STARTTLS)\n");
				ex = EX_USAGE;
				goto done;
			}
			break;
		case 'k': insecure = true; break;
		case 'T': {
			char *end = NULL;
			long t = strtol(optarg, &end, 10);
			timeout = (end == optarg || *end != '\0' || t > 3600) ? -1 : (int)t;
			break;
		}
		case 'h': client_chat_usage(stdout); goto done;
		default: client_chat_usage(stderr); ex = EX_USAGE; goto done;
		}
	}
	if (argc - optind > 1) {
		client_chat_usage(stderr);
		ex = EX_USAGE;
		goto done;
	}
	if (timeout <= 0) {
		fprintf(stderr, "tern chat: bad --timeout\n");
		ex = EX_USAGE;
		goto done;
	}
	if (client_send_server(optind < argc ? argv[optind] : NULL, tls, host, sizeof host, port,
	                       sizeof port) < 0) {
		fprintf(stderr, "tern chat: bad server (want HOST[:PORT])\n");
		ex = EX_USAGE;
		goto done;
	}
	ch.piped = !isatty(STDIN_FILENO);
	ch.s.insecure = insecure;
	ch.s.verbose = true; /* reply lines are printed as "S: ..." */
	ch.s.trace = stdout;
	if ((rc = client_smtp_connect(&ch.s, host, port, timeout)) < 0) {
		fprintf(stderr, "tern: %s\n", ch.s.err);
		ex = ch.s.exit_code;
		goto done;
	}
	fprintf(ch.out, "*: connected to %s port %s%s\n", host, port,
	        ch.piped ? "" : "; helpers: starttls, auth plain USER; Ctrl-D ends");
	if (tls == CLIENT_TLS_IMPLICIT && client_smtp_tls_start(&ch.s) < 0) {
		fprintf(stderr, "tern: %s\n", ch.s.err);
		ex = ch.s.exit_code;
		goto done;
	}
	if (client_chat_reply(&ch, NULL) < 0) {
		ex = ch.s.exit_code;
		goto done;
	}
	for (;;) {
		if (!ch.piped) {
			fputs("C: ", ch.out);
			fflush(ch.out);
		}
		rc = client_io_read_line_fd(STDIN_FILENO, line, sizeof line);
		if (rc == -ENODATA)
			break;
		if (rc < 0) {
			fprintf(ch.out, "tern: input line too long (SMTP commands are at most 510 "
			                "characters)\n");
			continue;
		}
		if (line[0] == '\0')
			continue;
		size_t vl = strcspn(line, " :");
		snprintf(verb, sizeof verb, "%.*s", (int)(vl < sizeof verb - 1 ? vl : sizeof verb - 1),
		         line);
		if (strcasecmp(line, "starttls") == 0) {
			if (client_chat_send(&ch, "STARTTLS", NULL) < 0 ||
			    client_chat_reply(&ch, "STARTTLS") < 0)
				goto net_fail;
			if (ch.s.reply.code != 220)
				continue;
			buf_reset(&ch.s.in);
			if (client_smtp_tls_start(&ch.s) < 0) {
				fprintf(ch.out, "tern: %s\n", ch.s.err);
				ex = ch.s.exit_code;
				goto done;
			}
			fprintf(ch.out, "*: TLS is on; say EHLO again (the server forgot everything)\n");
			continue;
		}
		if (strncasecmp(line, "auth plain ", 11) == 0 && strchr(line + 11, ' ') == NULL &&
		    line[11] != '\0') {
			if (client_chat_auth_plain(&ch, line + 11) < 0)
				goto net_fail;
			continue;
		}
		if (client_chat_send(&ch, line, NULL) < 0)
			goto net_fail;
		if (client_chat_reply(&ch, verb) < 0)
			goto net_fail;
		if (strcasecmp(verb, "DATA") == 0 && ch.s.reply.code == 354 &&
		    client_chat_data(&ch) < 0)
			goto net_fail;
		if (ch.s.reply.code == 221 || ch.s.reply.code == 421) {
			quit_sent = true;
			break;
		}
	}
	if (!quit_sent) {
		if (client_chat_send(&ch, "QUIT", NULL) < 0 || client_chat_reply(&ch, "QUIT") < 0)
			goto net_fail;
	}
	goto done;
net_fail:
	ex = ch.s.exit_code != 0 ? ch.s.exit_code : EX_TEMPFAIL;
done:
	fflush(stdout);
	client_smtp_close(&ch.s);
	return ex;
}
