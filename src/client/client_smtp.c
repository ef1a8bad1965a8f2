/* client_smtp.c - one SMTP client session over TCP with optional TLS (see
 * client_smtp.h). Blocking I/O with per-operation timeouts (SO_RCVTIMEO/SNDTIMEO);
 * every failure leaves a sysexits code and a one-line message in the session.
 * Does not compose or inspect messages beyond dot-stuffing them. */
#include "client/client_smtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/client_codec.h"
#include "client/client_scram.h"
#include "smtp/smtp_dsn.h"
#include "util/limits.h"

#define CLIENT_SMTP_IN_MAX 8192   /* longest line we buffer while looking for LF */
#define CLIENT_SMTP_TRACE_DATA 200 /* message lines shown by -v before eliding */

void client_smtp_init(struct client_smtp *s)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	buf_init(&s->in, CLIENT_SMTP_IN_MAX);
	s->trace = stderr;
}

static int client_smtp_fail(struct client_smtp *s, int exit_code, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int client_smtp_fail(struct client_smtp *s, int exit_code, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	s->exit_code = exit_code;
	return rc < 0 ? rc : -EPROTO;
}

/* Fail with the last reply: "WHAT failed: 550 5.1.1 text". */
static int client_smtp_fail_reply(struct client_smtp *s, const char *what)
{
	char sum[600];
	client_reply_summary(&s->reply, sum, sizeof sum);
	return client_smtp_fail(s, client_exit_for_reply(s->reply.code), -EPROTO,
	                        "%s failed: %s", what, sum);
}

static void client_smtp_trace_line(struct client_smtp *s, char dir, const char *p, size_t n)
{
	if (!s->verbose)
		return;
	char line[1100];
	size_t o = 0;
	line[o++] = dir;
	line[o++] = ':';
	line[o++] = ' ';
	for (size_t i = 0; i < n && o + 5 < sizeof line; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", c);
			continue;
		}
		line[o++] = (char)c;
	}
	line[o++] = '\n';
	fwrite(line, 1, o, s->trace);
	fflush(s->trace);
}

static const char *client_smtp_ssl_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();
	if (e == 0)
		return "TLS error";
	ERR_error_string_n(e, buf, sizeof buf);
	return buf;
}

int client_smtp_split_server(const char *spec, char *host, size_t hostsz, char *port,
                             size_t portsz, const char *def)
{
	const char *h = spec, *p = NULL;
	size_t hl;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (rb == NULL)
			return -EINVAL;
		h = spec + 1;
		hl = (size_t)(rb - h);
		if (rb[1] == ':')
			p = rb + 2;
		else if (rb[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strrchr(spec, ':');
		if (colon != NULL && strchr(spec, ':') == colon) {
			hl = (size_t)(colon - spec);
			p = colon + 1;
		} else {
			hl = strlen(spec); /* a bare IPv6 address or a host name */
		}
	}
	if (hl == 0 || hl >= hostsz)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (p == NULL)
		p = def;
	if (p[0] == '\0' || strlen(p) >= portsz || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	snprintf(port, portsz, "%s", p);
	return 0;
}

static bool client_smtp_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

int client_smtp_connect(struct client_smtp *s, const char *host, const char *port, int timeout_s)
{
	struct addrinfo hints, *res = NULL;
	int rc = -ECONNREFUSED, fd = -1;

	snprintf(s->host, sizeof s->host, "%s", host);
	if (timeout_s <= 0)
		timeout_s = 300;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g != 0)
		return client_smtp_fail(s, EX_NOHOST, -EHOSTUNREACH, "cannot resolve %s: %s", host,
		                        gai_strerror(g));
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			if (errno != EINPROGRESS) {
				rc = -errno;
				goto next;
			}
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int pr = poll(&pfd, 1, (timeout_s < 30 ? timeout_s : 30) * 1000);
			if (pr <= 0) {
				rc = pr == 0 ? -ETIMEDOUT : -errno;
				goto next;
			}
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (soerr != 0) {
				rc = -soerr;
				goto next;
			}
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		struct timeval tv = {.tv_sec = timeout_s};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		s->loopback = client_smtp_is_loopback(ai->ai_addr);
		s->fd = fd;
		freeaddrinfo(res);
		return 0;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return client_smtp_fail(s, client_exit_for_errno(rc), rc, "connect to %s port %s failed: %s",
	                        host, port, strerror(-rc));
}

int client_smtp_tls_start(struct client_smtp *s)
{
	struct in6_addr a6;
	struct in_addr a4;
	s->ctx = SSL_CTX_new(TLS_client_method());
	if (s->ctx == NULL)
		return client_smtp_fail(s, EX_SOFTWARE, -ENOMEM, "TLS: %s", client_smtp_ssl_error());
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	if (!s->insecure) {
		SSL_CTX_set_default_verify_paths(s->ctx);
		SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	}
	s->ssl = SSL_new(s->ctx);
	if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		return client_smtp_fail(s, EX_SOFTWARE, -ENOMEM, "TLS: %s", client_smtp_ssl_error());
	bool is_ip = inet_pton(AF_INET, s->host, &a4) == 1 || inet_pton(AF_INET6, s->host, &a6) == 1;
	if (is_ip) {
		if (!s->insecure)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), s->host);
	} else {
		SSL_set_tlsext_host_name(s->ssl, s->host);
		if (!s->insecure)
			SSL_set1_host(s->ssl, s->host);
	}
	if (SSL_connect(s->ssl) != 1) {
		long vr = SSL_get_verify_result(s->ssl);
		if (vr != X509_V_OK)
			return client_smtp_fail(s, EX_UNAVAILABLE, -EPROTO,
			                        "TLS certificate of %s not trusted: %s (--insecure skips "
			                        "the check, for test servers only)",
			                        s->host, X509_verify_cert_error_string(vr));
		return client_smtp_fail(s, EX_UNAVAILABLE, -EPROTO, "TLS handshake with %s failed: %s",
		                        s->host, client_smtp_ssl_error());
	}
	if (s->verbose)
		fprintf(s->trace, "*: TLS %s, cipher %s%s\n", SSL_get_version(s->ssl),
		        SSL_get_cipher_name(s->ssl), s->insecure ? ", certificate NOT verified" : "");
	return 0;
}

int client_smtp_write(struct client_smtp *s, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w;
		if (s->ssl != NULL) {
			size_t done = 0;
			int r = SSL_write_ex(s->ssl, c, n, &done);
			if (r != 1)
				return client_smtp_fail(s, EX_TEMPFAIL, -EPIPE,
				                        "write to %s failed (TLS): %s", s->host,
				                        client_smtp_ssl_error());
			w = (ssize_t)done;
		} else {
			w = send(s->fd, c, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				int e = errno == EAGAIN ? ETIMEDOUT : errno;
				return client_smtp_fail(s, EX_TEMPFAIL, -e, "write to %s failed: %s",
				                        s->host, strerror(e));
			}
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int client_smtp_fill(struct client_smtp *s)
{
	char tmp[4096];
	ssize_t r;
	for (;;) {
		if (s->ssl != NULL) {
			size_t got = 0;
			int ok = SSL_read_ex(s->ssl, tmp, sizeof tmp, &got);
			if (ok == 1) {
				r = (ssize_t)got;
			} else {
				int e = SSL_get_error(s->ssl, 0);
				if (e == SSL_ERROR_ZERO_RETURN)
					r = 0;
				else if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
					return client_smtp_fail(s, EX_TEMPFAIL, -ETIMEDOUT,
					                        "timeout waiting for %s", s->host);
				else
					r = 0;
			}
		} else {
			r = recv(s->fd, tmp, sizeof tmp, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				int e = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno;
				return client_smtp_fail(s, EX_TEMPFAIL, -e, "read from %s failed: %s",
				                        s->host, strerror(e));
			}
		}
		break;
	}
	if (r == 0)
		return client_smtp_fail(s, EX_TEMPFAIL, -ECONNRESET, "connection closed by %s",
		                        s->host);
	int rc = buf_append(&s->in, tmp, (size_t)r);
	if (rc < 0)
		return client_smtp_fail(s, EX_PROTOCOL, -EMSGSIZE, "over-long line from %s", s->host);
	return 0;
}

int client_smtp_read_line(struct client_smtp *s, char *line, size_t linesz, size_t *len)
{
	int rc;
	for (;;) {
		char *nl = s->in.len > 0 ? memchr(s->in.ptr, '\n', s->in.len) : NULL;
		if (nl != NULL) {
			size_t n = (size_t)(nl - s->in.ptr);
			size_t consume = n + 1;
			if (n > 0 && s->in.ptr[n - 1] == '\r')
				n--;
			if (n >= linesz) {
				buf_consume(&s->in, consume);
				return client_smtp_fail(s, EX_PROTOCOL, -EMSGSIZE,
				                        "over-long line from %s", s->host);
			}
			memcpy(line, s->in.ptr, n);
			line[n] = '\0';
			*len = n;
			buf_consume(&s->in, consume);
			return 0;
		}
		if ((rc = client_smtp_fill(s)) < 0)
			return rc;
	}
}

int client_smtp_read_reply(struct client_smtp *s)
{
	char line[CLIENT_SMTP_IN_MAX];
	size_t n;
	int rc;
	client_reply_init(&s->reply);
	while (!s->reply.done) {
		if ((rc = client_smtp_read_line(s, line, sizeof line, &n)) < 0)
			return rc;
		client_smtp_trace_line(s, 'S', line, n);
		if ((rc = client_reply_feed_line(&s->reply, line, n)) < 0) {
			char esc[200];
			size_t o = 0;
			for (size_t i = 0; i < n && o + 1 < sizeof esc && i < 120; i++)
				esc[o++] = ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) ? '?' : line[i];
			esc[o] = '\0';
			return client_smtp_fail(s, EX_PROTOCOL, rc, "bad reply from %s: \"%s\"%s",
			                        s->host, esc, rc == -EMSGSIZE ? " (too long)" : "");
		}
	}
	return 0;
}

int client_smtp_send_line(struct client_smtp *s, const char *line, const char *shown)
{
	struct buf b;
	int rc;
	size_t n = strlen(line);
	buf_init(&b, 0);
	client_smtp_trace_line(s, 'C', shown != NULL ? shown : line, strlen(shown != NULL ? shown : line));
	if ((rc = buf_append(&b, line, n)) < 0 || (rc = buf_append(&b, "\r\n", 2)) < 0)
		goto fail;
	rc = client_smtp_write(s, b.ptr, b.len);
fail:
	buf_free(&b);
	return rc;
}

/* Send a command and read its reply; the reply's first digit must be want. */
static int client_smtp_cmd(struct client_smtp *s, const char *line, const char *shown, int want)
{
	int rc;
	if ((rc = client_smtp_send_line(s, line, shown)) < 0)
		return rc;
	if ((rc = client_smtp_read_reply(s)) < 0)
		return rc;
	if (s->reply.code / 100 != want)
		return client_smtp_fail_reply(s, shown != NULL ? shown : line);
	return 0;
}

void client_smtp_parse_ehlo(struct client_smtp *s, const struct client_reply *r)
{
	const char *p = r->text;
	s->has_starttls = s->has_8bitmime = s->has_smtputf8 = s->has_pipelining = false;
	s->has_dsn = false;
	s->has_size = s->has_auth = s->auth_plain = s->auth_login = s->auth_scram = false;
	s->size_max = 0;
	bool first = true;
	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
		char kw[256];
		if (n >= sizeof kw)
			n = sizeof kw - 1;
		memcpy(kw, p, n);
		kw[n] = '\0';
		p += n + (e != NULL ? 1 : 0);
		if (first) { /* the first line is the greeting text, not a keyword */
			first = false;
			continue;
		}
		char *arg = strchr(kw, ' ');
		if (arg != NULL)
			*arg++ = '\0';
		if (strcasecmp(kw, "STARTTLS") == 0)
			s->has_starttls = true;
		else if (strcasecmp(kw, "8BITMIME") == 0)
			s->has_8bitmime = true;
		else if (strcasecmp(kw, "SMTPUTF8") == 0)
			s->has_smtputf8 = true;
		else if (strcasecmp(kw, "PIPELINING") == 0)
			s->has_pipelining = true;
		else if (strcasecmp(kw, "DSN") == 0)
			s->has_dsn = true;
		else if (strcasecmp(kw, "SIZE") == 0) {
			s->has_size = true;
			if (arg != NULL)
				s->size_max = strtoull(arg, NULL, 10);
		} else if (strcasecmp(kw, "AUTH") == 0 && arg != NULL) {
			s->has_auth = true;
			char *m = arg;
			while (*m != '\0') {
				size_t ml = strcspn(m, " ");
				char save = m[ml];
				m[ml] = '\0';
				if (strcasecmp(m, "PLAIN") == 0)
					s->auth_plain = true;
				else if (strcasecmp(m, "LOGIN") == 0)
					s->auth_login = true;
				else if (strcasecmp(m, "SCRAM-SHA-256") == 0)
					s->auth_scram = true;
				m += ml + (save != '\0' ? 1 : 0);
			}
		}
	}
}

static int client_smtp_ehlo(struct client_smtp *s, const char *helo)
{
	char line[300];
	int rc;
	snprintf(line, sizeof line, "EHLO %s", helo);
	if ((rc = client_smtp_send_line(s, line, NULL)) < 0)
		return rc;
	if ((rc = client_smtp_read_reply(s)) < 0)
		return rc;
	if (s->reply.code == 250) {
		s->esmtp = true;
		client_smtp_parse_ehlo(s, &s->reply);
		return 0;
	}
	if (s->reply.code / 100 != 5)
		return client_smtp_fail_reply(s, line);
	snprintf(line, sizeof line, "HELO %s", helo);
	s->esmtp = false;
	client_reply_init(&s->reply);
	client_smtp_parse_ehlo(s, &s->reply);
	return client_smtp_cmd(s, line, NULL, 2);
}

static int client_smtp_b64_line(struct buf *out, const char *prefix, const void *p, size_t n)
{
	int rc;
	buf_reset(out);
	if ((rc = buf_append_str(out, prefix)) < 0 || (rc = client_b64_encode(out, p, n, 0)) < 0)
		return rc;
	return buf_cstr(out) == NULL ? -ENOMEM : 0;
}

int client_smtp_plain_line(struct buf *line, const char *user, const char *pass)
{
	struct buf raw;
	int rc;
	buf_init(&raw, 4096);
	if ((rc = buf_append(&raw, "", 1)) < 0 || (rc = buf_append_str(&raw, user)) < 0 ||
	    (rc = buf_append(&raw, "", 1)) < 0 || (rc = buf_append_str(&raw, pass)) < 0)
		goto fail;
	rc = client_smtp_b64_line(line, "AUTH PLAIN ", raw.ptr, raw.len);
fail:
	if (raw.ptr != NULL)
		OPENSSL_cleanse(raw.ptr, raw.cap);
	buf_free(&raw);
	return rc;
}

static int client_smtp_auth_plain(struct client_smtp *s, const char *user, const char *pass)
{
	struct buf line;
	int rc;
	buf_init(&line, 8192);
	if ((rc = client_smtp_plain_line(&line, user, pass)) == 0)
		rc = client_smtp_cmd(s, line.ptr, "AUTH PLAIN ****", 2);
	if (line.ptr != NULL)
		OPENSSL_cleanse(line.ptr, line.cap);
	buf_free(&line);
	return rc;
}

static int client_smtp_auth_login(struct client_smtp *s, const char *user, const char *pass)
{
	struct buf line;
	int rc;
	buf_init(&line, 8192);
	if ((rc = client_smtp_cmd(s, "AUTH LOGIN", NULL, 3)) < 0)
		goto fail;
	if ((rc = client_smtp_b64_line(&line, "", user, strlen(user))) < 0)
		goto fail;
	if ((rc = client_smtp_cmd(s, line.ptr, "**** (user name)", 3)) < 0) {
		snprintf(s->err, sizeof s->err, "AUTH LOGIN failed at the user name: %.900s",
		         strchr(s->err, ':') != NULL ? strchr(s->err, ':') + 2 : "");
		goto fail;
	}
	if ((rc = client_smtp_b64_line(&line, "", pass, strlen(pass))) < 0)
		goto fail;
	if ((rc = client_smtp_cmd(s, line.ptr, "**** (password)", 2)) < 0) {
		char sum[600];
		client_reply_summary(&s->reply, sum, sizeof sum);
		snprintf(s->err, sizeof s->err, "AUTH LOGIN failed: %s", sum);
	}
fail:
	if (line.ptr != NULL)
		OPENSSL_cleanse(line.ptr, line.cap);
	buf_free(&line);
	return rc;
}

static int client_smtp_auth_scram(struct client_smtp *s, const char *user, const char *pass)
{
	struct client_scram sc;
	struct buf line, dec;
	int rc;
	buf_init(&line, 8192);
	buf_init(&dec, 4096);
	if ((rc = client_scram_start(&sc, user, NULL)) < 0) {
		client_smtp_fail(s, EX_DATAERR, rc, "AUTH SCRAM-SHA-256: bad user name");
		goto fail;
	}
	if ((rc = client_smtp_b64_line(&line, "AUTH SCRAM-SHA-256 ", sc.client_first,
	                               strlen(sc.client_first))) < 0)
		goto fail;
	if ((rc = client_smtp_cmd(s, line.ptr, "AUTH SCRAM-SHA-256 ****", 3)) < 0)
		goto fail;
	if ((rc = client_b64_decode(&dec, s->reply.text, s->reply.text_len)) < 0 ||
	    buf_cstr(&dec) == NULL) {
		client_smtp_fail(s, EX_PROTOCOL, -EPROTO, "AUTH SCRAM-SHA-256: bad server challenge");
		goto fail;
	}
	char final[1024];
	if ((rc = client_scram_final(&sc, pass, dec.ptr, final, sizeof final)) < 0) {
		client_smtp_send_line(s, "*", NULL);
		client_smtp_read_reply(s);
		client_smtp_fail(s, EX_PROTOCOL, rc, "AUTH SCRAM-SHA-256: bad server-first message");
		goto fail;
	}
	if ((rc = client_smtp_b64_line(&line, "", final, strlen(final))) < 0)
		goto fail;
	if ((rc = client_smtp_send_line(s, line.ptr, "****")) < 0 ||
	    (rc = client_smtp_read_reply(s)) < 0)
		goto fail;
	if (s->reply.code == 334) {
		buf_reset(&dec);
		if (client_b64_decode(&dec, s->reply.text, s->reply.text_len) < 0 ||
		    buf_cstr(&dec) == NULL || client_scram_verify(&sc, dec.ptr) < 0) {
			client_smtp_send_line(s, "*", NULL);
			client_smtp_read_reply(s);
			rc = client_smtp_fail(s, EX_PROTOCOL, -EPROTO,
			                      "AUTH SCRAM-SHA-256: the server's signature is wrong");
			goto fail;
		}
		if ((rc = client_smtp_cmd(s, "", NULL, 2)) < 0)
			goto fail;
	} else if (s->reply.code / 100 != 2) {
		rc = client_smtp_fail_reply(s, "AUTH SCRAM-SHA-256");
		goto fail;
	}
fail:
	OPENSSL_cleanse(&sc, sizeof sc);
	buf_free(&line);
	buf_free(&dec);
	return rc;
}

static int client_smtp_auth(struct client_smtp *s, const char *user, const char *pass)
{
	if (s->ssl == NULL && !s->loopback)
		return client_smtp_fail(s, EX_USAGE, -EPERM,
		                        "refusing to send a password to %s without TLS "
		                        "(use --tls starttls or --tls implicit)", s->host);
	if (!s->has_auth)
		return client_smtp_fail(s, EX_UNAVAILABLE, -EPROTO,
		                        "%s does not offer AUTH%s", s->host,
		                        s->has_starttls && s->ssl == NULL ? " before STARTTLS" : "");
	if (s->auth_scram)
		return client_smtp_auth_scram(s, user, pass);
	if (s->auth_plain)
		return client_smtp_auth_plain(s, user, pass);
	if (s->auth_login)
		return client_smtp_auth_login(s, user, pass);
	return client_smtp_fail(s, EX_UNAVAILABLE, -EPROTO,
	                        "%s offers no AUTH mechanism tern knows (PLAIN, LOGIN, "
	                        "SCRAM-SHA-256)", s->host);
}

int client_smtp_open(struct client_smtp *s, const struct client_smtp_opts *o)
{
	char helo[256];
	int rc;
	s->insecure = o->insecure;
	s->verbose = o->verbose;
	if (o->trace != NULL)
		s->trace = o->trace;
	if ((rc = client_smtp_connect(s, o->host, o->port, o->timeout_s)) < 0)
		return rc;
	if (s->verbose)
		fprintf(s->trace, "*: connected to %s port %s\n", o->host, o->port);
	if (o->tls == CLIENT_TLS_IMPLICIT && (rc = client_smtp_tls_start(s)) < 0)
		return rc;
	if ((rc = client_smtp_read_reply(s)) < 0)
		return rc;
	if (s->reply.code != 220)
		return client_smtp_fail_reply(s, "greeting");
	if (o->helo != NULL) {
		snprintf(helo, sizeof helo, "%s", o->helo);
	} else if (gethostname(helo, sizeof helo - 1) < 0 || helo[0] == '\0' ||
	           strchr(helo, '.') == NULL) {
		snprintf(helo, sizeof helo, "localhost");
	}
	helo[sizeof helo - 1] = '\0';
	if ((rc = client_smtp_ehlo(s, helo)) < 0)
		return rc;
	bool want_tls = o->tls == CLIENT_TLS_STARTTLS || (o->tls == CLIENT_TLS_AUTO && s->has_starttls);
	if (want_tls) {
		if (!s->has_starttls)
			return client_smtp_fail(s, EX_UNAVAILABLE, -EPROTO,
			                        "%s does not offer STARTTLS (--tls starttls asked for it)",
			                        o->host);
		if ((rc = client_smtp_cmd(s, "STARTTLS", NULL, 2)) < 0)
			return rc;
		buf_reset(&s->in); /* nothing may be pipelined before the handshake */
		if ((rc = client_smtp_tls_start(s)) < 0)
			return rc;
		if ((rc = client_smtp_ehlo(s, helo)) < 0)
			return rc;
	}
	if (o->auth_user != NULL && (rc = client_smtp_auth(s, o->auth_user, o->auth_pass)) < 0)
		return rc;
	return 0;
}

int client_smtp_dot_stuff(const char *msg, size_t len, struct buf *out)
{
	int rc = 0;
	bool bol = true;
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (bol && msg[i] == '.') {
			if ((rc = buf_append(out, msg + start, i - start)) < 0 ||
			    (rc = buf_append(out, ".", 1)) < 0)
				return rc;
			start = i;
		}
		bol = msg[i] == '\n';
	}
	return buf_append(out, msg + start, len - start);
}

static void client_smtp_trace_data(struct client_smtp *s, const char *p, size_t n)
{
	size_t lines = 0, total = 0, i = 0;
	if (!s->verbose)
		return;
	for (size_t k = 0; k < n; k++)
		total += p[k] == '\n';
	while (i < n && lines < CLIENT_SMTP_TRACE_DATA) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t e = nl != NULL ? (size_t)(nl - p) : n;
		size_t l = e - i;
		if (l > 0 && p[e - 1] == '\r')
			l--;
		client_smtp_trace_line(s, 'C', p + i, l);
		lines++;
		i = e + 1;
	}
	if (total > lines)
		fprintf(s->trace, "C: [... %zu more lines of message data not shown ...]\n",
		        total - lines);
}

/* Does dsn ask for anything? */
static bool client_dsn_any(const struct client_dsn *d, size_t nrcpts)
{
	if (d == NULL)
		return false;
	if (d->ret != 0 || (d->envid != NULL && d->envid[0] != '\0') || d->notify != 0)
		return true;
	for (size_t i = 0; i < nrcpts; i++)
		if ((d->rnotify != NULL && d->rnotify[i] != 0) ||
		    (d->rorcpt != NULL && d->rorcpt[i] != NULL && d->rorcpt[i][0] != '\0'))
			return true;
	return false;
}

void client_dsn_mail_params(const struct client_dsn *d, char *out, size_t outsz)
{
	int w = 0;
	out[0] = '\0';
	if (d == NULL)
		return;
	if (d->ret != 0)
		w = snprintf(out, outsz, " RET=%s", d->ret == 2 ? "HDRS" : "FULL");
	if (d->envid != NULL && d->envid[0] != '\0' && w >= 0 && (size_t)w < outsz)
		snprintf(out + w, outsz - (size_t)w, " ENVID=%s", d->envid);
}

void client_dsn_rcpt_params(const struct client_dsn *d, size_t i, char *out, size_t outsz)
{
	int w = 0;
	char words[64];
	out[0] = '\0';
	if (d == NULL)
		return;
	unsigned bits = d->rnotify != NULL && d->rnotify[i] != 0 ? d->rnotify[i] : d->notify;
	if (bits != 0 && smtp_dsn_notify_format(bits, words, sizeof words) == 0)
		w = snprintf(out, outsz, " NOTIFY=%s", words);
	if (d->rorcpt != NULL && d->rorcpt[i] != NULL && d->rorcpt[i][0] != '\0' && w >= 0 &&
	    (size_t)w < outsz)
		snprintf(out + w, outsz - (size_t)w, " ORCPT=%s", d->rorcpt[i]);
}

/* "RCPT TO:<addr>" plus its NOTIFY and ORCPT when the server takes them. */
static void client_smtp_rcpt_line(const struct client_smtp *s, char *line, size_t linesz,
                                  char *const *rcpts, size_t i, const struct client_dsn *d)
{
	char params[CLIENT_DSN_PARAMS_MAX];
	client_dsn_rcpt_params(s->has_dsn ? d : NULL, i, params, sizeof params);
	snprintf(line, linesz, "RCPT TO:<%s>%s", rcpts[i], params);
}

int client_smtp_transaction(struct client_smtp *s, const char *from, char *const *rcpts,
                            size_t nrcpts, const char *msg, size_t len, bool body_8bit,
                            bool smtputf8, const struct client_dsn *dsn)
{
	struct buf cmds, data;
	char mail[TERN_PATH_MAX + 100 + CLIENT_DSN_PARAMS_MAX],
	        line[TERN_PATH_MAX + 20 + CLIENT_DSN_PARAMS_MAX];
	char failed_cmd[TERN_PATH_MAX + 20] = "";
	struct client_reply first_fail;
	int rc = 0;

	buf_init(&cmds, 0);
	buf_init(&data, 0);
	if (smtputf8 && !s->has_smtputf8) {
		rc = client_smtp_fail(s, EX_UNAVAILABLE, -EPROTO,
		                      "%s does not support SMTPUTF8, needed for non-ASCII addresses",
		                      s->host);
		goto fail;
	}
	if (s->has_size && s->size_max > 0 && len > s->size_max) {
		rc = client_smtp_fail(s, EX_UNAVAILABLE, -EMSGSIZE,
		                      "message of %zu bytes exceeds the server's SIZE limit of %llu",
		                      len, s->size_max);
		goto fail;
	}
	int w = snprintf(mail, sizeof mail, "MAIL FROM:<%s>", from);
	if (s->has_size)
		w += snprintf(mail + w, sizeof mail - (size_t)w, " SIZE=%zu", len);
	if (body_8bit && s->has_8bitmime)
		w += snprintf(mail + w, sizeof mail - (size_t)w, " BODY=8BITMIME");
	if (smtputf8)
		w += snprintf(mail + w, sizeof mail - (size_t)w, " SMTPUTF8");
	if (client_dsn_any(dsn, nrcpts) && !s->has_dsn && s->verbose)
		fprintf(s->trace != NULL ? s->trace : stderr,
		        "%s does not offer DSN: NOTIFY, RET, ENVID and ORCPT are not sent\n",
		        s->host);
	if (s->has_dsn) {
		char params[CLIENT_DSN_PARAMS_MAX];
		client_dsn_mail_params(dsn, params, sizeof params);
		snprintf(mail + w, sizeof mail - (size_t)w, "%s", params);
	}

	if (s->has_pipelining) {
		/* RFC 2920: MAIL and every RCPT in one write, then the replies in order */
		if ((rc = buf_printf(&cmds, "%s\r\n", mail)) < 0)
			goto fail;
		client_smtp_trace_line(s, 'C', mail, strlen(mail));
		for (size_t i = 0; i < nrcpts; i++) {
			client_smtp_rcpt_line(s, line, sizeof line, rcpts, i, dsn);
			client_smtp_trace_line(s, 'C', line, strlen(line));
			if ((rc = buf_printf(&cmds, "%s\r\n", line)) < 0)
				goto fail;
		}
		if ((rc = client_smtp_write(s, cmds.ptr, cmds.len)) < 0)
			goto fail;
		for (size_t i = 0; i <= nrcpts; i++) {
			if ((rc = client_smtp_read_reply(s)) < 0)
				goto fail;
			if (s->reply.code / 100 != 2 && failed_cmd[0] == '\0') {
				if (i == 0)
					snprintf(failed_cmd, sizeof failed_cmd, "MAIL FROM:<%s>", from);
				else
					snprintf(failed_cmd, sizeof failed_cmd, "RCPT TO:<%s>", rcpts[i - 1]);
				first_fail = s->reply;
			}
		}
		if (failed_cmd[0] != '\0') {
			s->reply = first_fail;
			rc = client_smtp_fail_reply(s, failed_cmd);
			goto abort;
		}
	} else {
		if ((rc = client_smtp_cmd(s, mail, NULL, 2)) < 0) {
			if (s->reply.code != 0)
				goto abort;
			goto fail;
		}
		for (size_t i = 0; i < nrcpts; i++) {
			client_smtp_rcpt_line(s, line, sizeof line, rcpts, i, dsn);
			if ((rc = client_smtp_cmd(s, line, NULL, 2)) < 0) {
				if (s->reply.code != 0)
					goto abort;
				goto fail;
			}
		}
	}
	if ((rc = client_smtp_cmd(s, "DATA", NULL, 3)) < 0)
		goto fail;
	if ((rc = client_smtp_dot_stuff(msg, len, &data)) < 0)
		goto fail;
	if (data.len > 0 && data.ptr[data.len - 1] != '\n' && (rc = buf_append(&data, "\r\n", 2)) < 0)
		goto fail;
	if ((rc = buf_append(&data, ".\r\n", 3)) < 0)
		goto fail;
	client_smtp_trace_data(s, data.ptr, data.len - 3);
	client_smtp_trace_line(s, 'C', ".", 1);
	if ((rc = client_smtp_write(s, data.ptr, data.len)) < 0)
		goto fail;
	if ((rc = client_smtp_read_reply(s)) < 0)
		goto fail;
	if (s->reply.code / 100 != 2)
		rc = client_smtp_fail_reply(s, "DATA (end of message)");
	goto fail;
abort: {
	/* a refused MAIL or RCPT: reset, keep the error of the refusal */
	char keep[sizeof s->err];
	int keep_exit = s->exit_code;
	struct client_reply keep_reply = s->reply;
	memcpy(keep, s->err, sizeof keep);
	if (client_smtp_send_line(s, "RSET", NULL) == 0)
		client_smtp_read_reply(s);
	memcpy(s->err, keep, sizeof keep);
	s->exit_code = keep_exit;
	s->reply = keep_reply;
}
fail:
	buf_free(&cmds);
	buf_free(&data);
	return rc;
}

void client_smtp_quit(struct client_smtp *s)
{
	if (s->fd < 0)
		return;
	char keep[sizeof s->err];
	int keep_exit = s->exit_code;
	memcpy(keep, s->err, sizeof keep);
	if (client_smtp_send_line(s, "QUIT", NULL) == 0)
		client_smtp_read_reply(s);
	memcpy(s->err, keep, sizeof keep);
	s->exit_code = keep_exit;
}

void client_smtp_close(struct client_smtp *s)
{
	if (s->ssl != NULL) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->ctx != NULL) {
		SSL_CTX_free(s->ctx);
		s->ctx = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	buf_free(&s->in);
}
