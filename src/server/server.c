/* server.c - ternd glue: accepts connections, runs one SMTP engine per connection,
 * answers the engine's policy questions from the config, streams message content
 * into the spool and hands committed messages to local delivery.
 *
 * Everything here runs on the event-loop thread. Blocking work (fsync, Maildir
 * delivery) happens on the spool's committer thread and the delivery workers; their
 * results come back through the spool's eventfd. The only socket reads and writes
 * of the daemon are in this file; the engine never sees a file descriptor.
 *
 * A connection whose commit is in flight is never freed: if its client goes away
 * it is marked dead and freed when the commit completes (the 250 promise holds for
 * the queue even when the client cannot hear it). The same holds while a password
 * check runs on the authcheck thread (auth_pending).
 *
 * Deadlines (checked from the one-second tick): a command must be complete within
 * command_timeout of the previous reply (bytes trickling in do not extend it, so a
 * one-byte-per-second client is cut off); message content must arrive at
 * TERN_MIN_DATA_RATE or faster. A listener's greet_delay holds the 220 back; a
 * client that talks before it gets 554 5.5.0 (the engine never sees those bytes).
 *
 * TLS goes through the connection type in tls.c: server_conn_recv/_send pick the
 * plain socket or the TLS session. STARTTLS: the engine answers 220 and stops; this
 * file sends the 220, drops every byte still buffered (RFC 3207 4.2, CVE-2011-0411),
 * runs the handshake on the loop and tells the engine to start over.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver/direct.h"
#include "deliver/local.h"
#include "deliver/relay.h"
#include "server/control.h"
#include "policy/config.h"
#include "policy/sasl.h"
#include "queue/spool.h"
#include "server/authcheck.h"
#include "server/authlimit.h"
#include "server/envelope.h"
#include "server/ev.h"
#include "server/ipcount.h"
#include "server/pickup.h"
#include "server/privdrop.h"
#include "server/tls.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"
#include "util/limits.h"
#include "util/log.h"

/* One read's worth. Reads land in the loop's shared buffer and are copied into the
 * connection's own input buffer, which is freed whenever the engine has used it all:
 * an idle session holds no input memory (issue 4: a few KiB per idle session). 32 KiB
 * keeps that buffer a heap allocation (glibc maps 128 KiB and more with mmap). */
#define SERVER_READ_CHUNK 32768
#define SERVER_INBUF_MAX (4 * SERVER_READ_CHUNK)
#define SERVER_STOP_GRACE_S 10
/* A TLS handshake must finish within this many seconds. */
#define SERVER_HANDSHAKE_S 30
/* The longest delay added after failed AUTH attempts. */
#define SERVER_AUTH_DELAY_MAX_S 15

/* A configuration shared by the sessions started under it; freed with the last. */
struct server_cfg {
	struct config *c;
	int refs;
};

struct server_listener {
	int fd;
	struct config_listener l; /* copy: survives config reloads */
	struct tls_ctx *tls;      /* certificates and keys (tls_cert, tls_cert_for); NULL
	                             without TLS; SIGHUP reloads */
};

struct conn;

struct server {
	struct ev_loop *loop;
	struct server_cfg *cfg;
	struct server_cfg *deliver_cfg; /* the startup config, fixed for local delivery */
	char *config_path;
	struct server_listener listeners[CONFIG_LISTENERS_MAX];
	size_t nlisteners;
	struct spool *spool;
	struct direct *direct; /* local-only messages straight into Maildirs */
	struct local_delivery *ld;
	struct pickup *pickup; /* maildrop left by `tern sendmail` */
	struct relay *rl;
	struct control *ctl;   /* `tern queue` socket */
	struct ipcount *ipc;
	struct authcheck *authc;
	struct authlimit *authlim; /* failed AUTHs per client IP, across sessions */
	time_t authlim_pruned;
	int sigfd;
	unsigned nconns;     /* connections alive or waiting for a commit */
	struct conn *conns;  /* list of all of them */
	bool stopping;
	time_t stop_deadline;
	uint64_t sid_next;
	int nodelay_inherited; /* -1 unknown; accepted sockets have TCP_NODELAY already */
	int exit_code;
	char rbuf[SERVER_READ_CHUNK]; /* every read lands here first (loop thread only) */
};

struct conn {
	struct server *srv;
	struct conn *prev, *next;
	int fd;               /* -1 once the socket is closed */
	bool registered;      /* fd is in the event loop */
	bool commit_pending;  /* spool commit in flight: must not be freed */
	bool early_reply;     /* the committer may still send the 250 on fd ... */
	bool fd_held;         /* ... so closing the socket waits for the commit */
	int held_fd;
	bool dead;            /* socket gone; free when the commit completes */
	bool eof;             /* peer closed its side: close after the input is used */
	bool out_dead;        /* peer reset: replies are dropped, input already received is
	                       * still processed (a client that sends all and resets) */
	struct sockaddr_storage peer;
	char ip[INET6_ADDRSTRLEN];
	char sid[20];
	struct server_cfg *cfg; /* reference */
	struct smtp_server_opts opts;
	struct smtp_server *s;
	struct buf in;
	bool greeted;         /* 220 (or a refusal) produced */
	time_t greet_at;      /* when to greet (greet_delay) */
	uint64_t rate_bytes;  /* content bytes not yet turned into deadline credit */
	struct spool_msg *msg;    /* message being written to the queue, or */
	struct direct_msg *dmsg;  /* ... straight into the recipients' Maildirs */
	char qid[SPOOL_QID_MAX];
	char from[TERN_PATH_MAX + 1];
	size_t nrcpts;
	bool all_remote; /* every recipient is relayed: the queue hands it to relay.c */
	uint64_t size;
	time_t deadline;
	/* TLS */
	size_t listener;      /* index in srv->listeners */
	struct tls_conn *tls; /* NULL: plain socket */
	bool handshaking;     /* tls set, handshake not finished */
	/* AUTH */
	bool trusted;         /* client address in trusted_networks */
	struct sasl *sasl;    /* exchange in progress */
	bool auth_pending;    /* password check in flight on the authcheck thread */
	bool auth_delayed;    /* failure answer held back until auth_answer_at */
	time_t auth_answer_at;
	unsigned auth_failures;
	char auth_user[SASL_USER_MAX + 1]; /* "" until authenticated */
};

static time_t server_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static struct server_cfg *server_cfg_new(struct config *c)
{
	struct server_cfg *sc = calloc(1, sizeof *sc);
	if (sc == NULL)
		return NULL;
	sc->c = c;
	sc->refs = 1;
	return sc;
}

static void server_cfg_unref(struct server_cfg *sc)
{
	if (sc != NULL && --sc->refs == 0) {
		config_free(sc->c);
		free(sc);
	}
}

/* ---- connection lifetime ---- */

static void server_conn_update(struct conn *c);

static void server_conn_unlink(struct conn *c)
{
	struct server *srv = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
}

static void server_conn_free(struct conn *c)
{
	if (c->fd_held) {
		close(c->held_fd);
		c->fd_held = false;
	}
	if (c->msg != NULL) {
		spool_msg_abort(c->msg);
		c->msg = NULL;
	}
	direct_msg_abort(c->dmsg);
	c->dmsg = NULL;
	smtp_server_free(c->s);
	sasl_free(c->sasl);
	tls_conn_free(c->tls);
	buf_free(&c->in);
	server_cfg_unref(c->cfg);
	server_conn_unlink(c);
	free(c);
}

/* Close the socket. The conn itself goes now, or when its commit completes. */
static void server_conn_close(struct conn *c, const char *why)
{
	if (c->fd >= 0) {
		log_info("sid=%s event=disconnect client=%s reason=%s", c->sid, c->ip, why);
		/* The committer may still send the 250 on it: the number must not be
		 * reused until the commit is done (and the socket leaves epoll now). */
		bool hold = c->commit_pending && c->early_reply;
		if (c->registered && hold)
			ev_del(c->srv->loop, c->fd);
		else if (c->registered)
			ev_forget(c->srv->loop, c->fd); /* close() below takes it out of epoll */
		c->registered = false;
		if (c->tls != NULL && !c->handshaking)
			tls_conn_shutdown(c->tls);
		if (hold) {
			c->fd_held = true;
			c->held_fd = c->fd;
		} else {
			close(c->fd);
		}
		c->fd = -1;
		ipcount_dec(c->srv->ipc, (struct sockaddr *)&c->peer);
	}
	c->dead = true;
	if (!c->commit_pending && !c->auth_pending)
		server_conn_free(c);
}

/* ---- engine callbacks: policy ---- */

static void server_reply(struct smtp_reply *r, int code, const char *enh, const char *text)
{
	r->code = code;
	snprintf(r->enh, sizeof r->enh, "%s", enh);
	snprintf(r->text, sizeof r->text, "%s", text);
}

/* The domain a bare <Postmaster> or a domainless name belongs to. */
static const char *server_default_domain(const struct config *cfg)
{
	if (cfg->nlocal_domains > 0)
		return cfg->local_domains[0];
	return cfg->hostname;
}

static void server_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* user and domain of an address, unquoted and lowercased, for policy lookups. */
static int server_addr_parts(const struct config *cfg, const struct smtp_addr *a, char *user,
                             size_t usz, char *domain, size_t dsz)
{
	if (a->is_postmaster) {
		snprintf(user, usz, "postmaster");
		snprintf(domain, dsz, "%s", server_default_domain(cfg));
	} else {
		if (smtp_addr_unquote_local(a, user, usz) < 0)
			return -1;
		snprintf(domain, dsz, "%s", a->domain);
	}
	server_lower(user);
	server_lower(domain);
	return 0;
}

static bool server_domain_is_local(const struct config *cfg, const char *domain)
{
	return cfg->accept_any_domain || config_is_local_domain(cfg, domain);
}

/* Sender-login rule (sender_login_maps, sender_must_match_login): an authenticated
 * session may use only the envelope senders its login owns; 553 5.7.1 otherwise.
 * The null sender <> and unauthenticated sessions are not checked (submission
 * listeners refuse MAIL before AUTH anyway). */
static void server_sender_policy(struct conn *c, const struct smtp_addr *from,
                                 struct smtp_reply *r)
{
	const struct config *cfg = c->cfg->c;
	char user[TERN_LOCAL_PART_MAX + 1], domain[TERN_DOMAIN_MAX + 1];

	if (!config_has_sender_rules(cfg) || c->auth_user[0] == '\0' || from->is_null)
		return;
	if (server_addr_parts(cfg, from, user, sizeof user, domain, sizeof domain) < 0 ||
	    !config_sender_login_ok(cfg, c->auth_user, user, domain)) {
		char u[128], text[sizeof r->text];
		log_escape(u, sizeof u, c->auth_user, strlen(c->auth_user));
		log_info("sid=%s event=sender-login-mismatch client=%s user=\"%s\"", c->sid, c->ip,
		         u);
		snprintf(text, sizeof text, "Sender address rejected: not owned by user %s", u);
		server_reply(r, 553, "5.7.1", text);
	}
}

static void server_on_mail(void *ctx, const struct smtp_addr *from,
                           const struct smtp_mail_params *p, struct smtp_reply *r)
{
	struct conn *c = ctx;
	r->code = 0;
	if (smtp_addr_format(from, c->from, sizeof c->from) < 0) {
		server_reply(r, 501, "5.1.7", "Bad sender address syntax");
		return;
	}
	server_sender_policy(c, from, r);
}

/* THE relay decision (issue 5; outbound delivery, issue 6, routes what it accepts).
 * Returns 0 when the recipient may be accepted as far as relaying goes (local users
 * are checked after), or 1 with r set.
 *   - A client may relay (recipient in a non-local domain) only when its session is
 *     authenticated or its address is in trusted_networks. Others: 554 5.7.1.
 *   - Untrusted clients may not smuggle a relay through a local address either:
 *     a local part with '%', '!' or '@' (user%evil@local, evil!user@local,
 *     "user@evil"@local) and address literals (user@[192.0.2.1]) are refused the
 *     same way. Source routes (<@local:user@evil>) are already dropped by the parser,
 *     which leaves user@evil: non-local.
 *   - Capture mode (accept_any_domain) delivers everything here and never relays,
 *     so none of this applies there.
 * Relayed recipients stay in the queue for the outbound delivery code; local
 * delivery leaves them alone (local_delivery_opts.is_local). */
static int server_rcpt_policy(struct conn *c, const struct smtp_addr *to, const char *user,
                              const char *domain, struct smtp_reply *r)
{
	const struct config *cfg = c->cfg->c;
	bool may_relay = c->trusted || smtp_server_is_authenticated(c->s);

	if (cfg->accept_any_domain || may_relay)
		return 0;
	if (to->domain[0] == '[' || strpbrk(user, "%!@") != NULL ||
	    !server_domain_is_local(cfg, domain)) {
		log_info("sid=%s event=relay-denied client=%s", c->sid, c->ip);
		server_reply(r, 554, "5.7.1", "Relay access denied");
		return 1;
	}
	return 0;
}

static void server_on_rcpt(void *ctx, const struct smtp_addr *to, struct smtp_reply *r)
{
	struct conn *c = ctx;
	const struct config *cfg = c->cfg->c;
	char user[TERN_LOCAL_PART_MAX + 1], domain[TERN_DOMAIN_MAX + 1];
	r->code = 0;
	if (to->is_postmaster)
		return;
	if (server_addr_parts(cfg, to, user, sizeof user, domain, sizeof domain) < 0) {
		server_reply(r, 501, "5.1.3", "Bad recipient address syntax");
		return;
	}
	if (server_rcpt_policy(c, to, user, domain, r) != 0)
		return;
	if (!server_domain_is_local(cfg, domain))
		return; /* relayed: accepted into the queue for outbound delivery */
	if (!config_is_known_user(cfg, user, domain)) {
		server_reply(r, 550, "5.1.1", "Recipient address rejected: user unknown");
		return;
	}
}

/* VRFY/EXPN argument: "user", "user@domain" or "<user@domain>" -> parts. */
static int server_split_arg(const struct config *cfg, const char *arg, size_t n, char *user,
                            size_t usz, char *domain, size_t dsz)
{
	while (n > 0 && (*arg == ' ' || *arg == '<')) {
		arg++;
		n--;
	}
	while (n > 0 && (arg[n - 1] == ' ' || arg[n - 1] == '>'))
		n--;
	size_t at = n;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)arg[i];
		if (ch <= ' ' || ch == 0x7f || ch == '/' || ch == '"' || ch == '\\')
			return -1;
		if (ch == '@' && at == n)
			at = i;
	}
	if (at == 0 || at >= usz || (n > at && n - at - 1 >= dsz))
		return -1;
	memcpy(user, arg, at);
	user[at] = '\0';
	if (at < n) {
		memcpy(domain, arg + at + 1, n - at - 1);
		domain[n - at - 1] = '\0';
	} else {
		snprintf(domain, dsz, "%s", server_default_domain(cfg));
	}
	server_lower(user);
	server_lower(domain);
	return 0;
}

static void server_on_vrfy(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	struct conn *c = ctx;
	const struct config *cfg = c->cfg->c;
	char user[TERN_LOCAL_PART_MAX + 1], domain[TERN_DOMAIN_MAX + 1];
	if (server_split_arg(cfg, arg, n, user, sizeof user, domain, sizeof domain) < 0) {
		server_reply(r, 501, "5.1.3", "Bad address syntax");
		return;
	}
	if (!server_domain_is_local(cfg, domain)) {
		server_reply(r, 551, "5.7.1", "User not local");
		return;
	}
	if (!cfg->check_users) {
		server_reply(r, 252, "2.5.2", "Cannot VRFY user, but will accept message");
		return;
	}
	if (!config_is_known_user(cfg, user, domain)) {
		server_reply(r, 550, "5.1.1", "User unknown");
		return;
	}
	r->code = 250;
	snprintf(r->enh, sizeof r->enh, "2.1.5");
	snprintf(r->text, sizeof r->text, "<%s@%s>", user, domain);
}

static void server_on_expn(void *ctx, const char *arg, size_t n, struct smtp_reply *r)
{
	struct conn *c = ctx;
	const struct config *cfg = c->cfg->c;
	char user[TERN_LOCAL_PART_MAX + 1], domain[TERN_DOMAIN_MAX + 1];
	if (server_split_arg(cfg, arg, n, user, sizeof user, domain, sizeof domain) < 0) {
		server_reply(r, 501, "5.1.3", "Bad address syntax");
		return;
	}
	size_t nt = 0;
	const char *const *t = config_alias_lookup(cfg, user, &nt);
	if (t == NULL || nt == 0) {
		if (cfg->check_users && config_is_known_user(cfg, user, domain)) {
			r->code = 250;
			snprintf(r->enh, sizeof r->enh, "2.1.5");
			snprintf(r->text, sizeof r->text, "<%s@%s>", user, domain);
			return;
		}
		server_reply(r, 550, "5.1.1", "No such mailing list");
		return;
	}
	r->code = 250;
	snprintf(r->enh, sizeof r->enh, "2.1.5");
	size_t off = 0;
	r->text[0] = '\0';
	for (size_t i = 0; i < nt; i++) {
		const char *sep = i ? "\n" : "";
		int w;
		if (strchr(t[i], '@'))
			w = snprintf(r->text + off, sizeof r->text - off, "%s<%s>", sep, t[i]);
		else
			w = snprintf(r->text + off, sizeof r->text - off, "%s<%s@%s>", sep, t[i],
			             domain);
		if (w < 0 || (size_t)w >= sizeof r->text - off) {
			r->text[off] = '\0';
			break;
		}
		off += (size_t)w;
	}
}

/* ---- engine callbacks: message content ---- */

static void server_rfc5322_date(char *out, size_t outsz)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	if (strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		out[0] = '\0';
}

/* Message bytes go to whichever store the message is being written to. */
static int server_msg_write(struct conn *c, const char *p, size_t n)
{
	if (c->dmsg != NULL)
		return direct_msg_write(c->dmsg, p, n);
	if (c->msg != NULL)
		return spool_msg_write(c->msg, p, n);
	return -EIO;
}

static void server_msg_abort(struct conn *c)
{
	spool_msg_abort(c->msg);
	c->msg = NULL;
	direct_msg_abort(c->dmsg);
	c->dmsg = NULL;
}

/* Direct delivery (src/deliver/direct.h) takes a message when every final recipient
 * is a local mailbox; anything else (a relay recipient, too many copies) goes
 * through the queue. */
static bool server_can_direct(const struct conn *c, const struct spool_envelope *env)
{
	const struct config *cfg = c->cfg->c;
	if (c->srv->direct == NULL || env->nrcpts == 0 || env->nrcpts > DIRECT_RCPTS_MAX)
		return false;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (!server_domain_is_local(cfg, env->rcpts[i].domain))
			return false;
	return true;
}

static int server_write_received(struct conn *c, const struct smtp_addr *rcpts, size_t nrcpts)
{
	const struct config *cfg = c->cfg->c;
	char helo[128], date[64], rcpt[TERN_PATH_MAX + 1], fwd[TERN_PATH_MAX + 16];
	const char *h = smtp_server_helo(c->s);
	log_escape(helo, sizeof helo, h, strlen(h));
	for (char *p = helo; *p; p++)
		if (*p == '(' || *p == ')' || *p == ';')
			*p = '_';
	server_rfc5322_date(date, sizeof date);
	fwd[0] = '\0';
	if (nrcpts == 1 && smtp_addr_format(&rcpts[0], rcpt, sizeof rcpt) >= 0)
		snprintf(fwd, sizeof fwd, "\r\n\tfor <%s>", rcpt);
	char tls[200] = "";
	if (c->tls != NULL && !c->handshaking)
		snprintf(tls, sizeof tls, "\r\n\t(using %s with cipher %s (%d/%d bits))",
		         tls_conn_version(c->tls), tls_conn_cipher(c->tls), tls_conn_bits(c->tls),
		         tls_conn_bits(c->tls));
	struct buf b;
	buf_init(&b, 4096);
	int rc = buf_printf(&b,
	                    "Received: from %s ([%s])%s\r\n\tby %s (tern) with %s id %s%s;\r\n\t%s\r\n",
	                    helo[0] ? helo : "unknown", c->ip, tls, cfg->hostname,
	                    smtp_server_protocol(c->s), c->qid, fwd, date);
	if (rc == 0)
		rc = server_msg_write(c, b.ptr, b.len);
	buf_free(&b);
	return rc;
}

static int server_on_data_begin(void *ctx, const struct smtp_addr *from,
                                const struct smtp_mail_params *p, const struct smtp_addr *rcpts,
                                size_t nrcpts)
{
	struct conn *c = ctx;
	const struct config *cfg = c->cfg->c;
	struct spool_envelope env;
	memset(&env, 0, sizeof env);
	int rc = -ENOMEM;
	char fromstr[TERN_PATH_MAX + 1];
	if (smtp_addr_format(from, fromstr, sizeof fromstr) < 0) {
		rc = -EINVAL;
		goto fail;
	}
	env.from = strdup(fromstr);
	env.helo = strdup(smtp_server_helo(c->s));
	env.client_addr = strdup(c->ip);
	env.arrival = time(NULL);
	env.smtputf8 = p->smtputf8;
	env.body = (int)p->body;
	env.ret = p->dsn_ret;
	if (p->dsn_envid[0] != '\0' && (env.envid = strdup(p->dsn_envid)) == NULL)
		goto fail;
	if (env.from == NULL || env.helo == NULL || env.client_addr == NULL)
		goto fail;
	for (size_t i = 0; i < nrcpts; i++) {
		char user[TERN_LOCAL_PART_MAX + 1], domain[TERN_DOMAIN_MAX + 1];
		char orig[TERN_PATH_MAX + 16];
		if (server_addr_parts(cfg, &rcpts[i], user, sizeof user, domain, sizeof domain) < 0 ||
		    smtp_addr_format(&rcpts[i], orig, sizeof orig) < 0) {
			rc = -EINVAL;
			goto fail;
		}
		if (rcpts[i].is_postmaster)
			snprintf(orig, sizeof orig, "postmaster@%s", domain);
		rc = envelope_add_rcpt(cfg, &env, user, domain, orig, smtp_server_rcpt_dsn(c->s, i));
		if (rc < 0)
			goto fail;
	}
	rc = -EAGAIN;
	if (server_can_direct(c, &env)) {
		spool_new_qid(c->srv->spool, c->qid);
		rc = direct_msg_begin(c->srv->direct, &c->dmsg, &env, c->qid);
		if (rc < 0) /* a mailbox we cannot open now: the queue keeps it and retries */
			log_info("sid=%s qid=%s event=direct-unavailable error=\"%s\" (queued instead)",
			         c->sid, c->qid, strerror(-rc));
	}
	if (rc < 0) {
		rc = spool_msg_begin(c->srv->spool, &c->msg, &env);
		if (rc < 0)
			goto fail;
		snprintf(c->qid, sizeof c->qid, "%s", spool_msg_qid(c->msg));
	}
	c->nrcpts = env.nrcpts;
	c->all_remote = env.nrcpts > 0;
	for (size_t i = 0; i < env.nrcpts; i++)
		c->all_remote = c->all_remote && env.rcpts[i].remote;
	c->size = 0;
	spool_envelope_free(&env);
	rc = server_write_received(c, rcpts, nrcpts);
	if (rc < 0) {
		server_msg_abort(c);
		log_error("sid=%s qid=%s event=spool-error error=%s", c->sid, c->qid, strerror(-rc));
	}
	return rc;
fail:
	spool_envelope_free(&env);
	log_error("sid=%s event=spool-error error=%s", c->sid, strerror(-rc));
	return rc;
}

static int server_on_data_write(void *ctx, const char *p, size_t n)
{
	struct conn *c = ctx;
	c->size += n;
	return server_msg_write(c, p, n);
}

static void server_on_commit_done(void *arg, int err, const char *qid);
static void server_on_direct_done(void *arg, int err, const char *qid, size_t replied);

static void server_on_data_commit(void *ctx)
{
	struct conn *c = ctx;
	if (c->dmsg != NULL) {
		struct direct_msg *dm = c->dmsg;
		c->dmsg = NULL; /* direct.c owns it now */
		c->commit_pending = true;
		/* Plain TCP with every earlier reply sent: the committer sends the 250 the
		 * moment the message is durable (docs/ARCHITECTURE.md, "Early reply"). */
		size_t pending;
		smtp_server_output(c->s, &pending);
		char ok[128];
		size_t oklen;
		if (c->tls == NULL && !c->out_dead && pending == 0 &&
		    (oklen = smtp_server_commit_ok_text(c->s, c->qid, ok, sizeof ok)) > 0 &&
		    direct_msg_reply_early(dm, c->fd, ok, oklen) == 0)
			c->early_reply = true;
		direct_msg_commit(dm, server_on_direct_done, c);
		return;
	}
	if (c->msg == NULL) {
		smtp_server_commit_done(c->s, -EIO, NULL);
		return;
	}
	struct spool_msg *m = c->msg;
	c->msg = NULL; /* the spool owns it now */
	c->commit_pending = true;
	spool_msg_commit(m, server_on_commit_done, c);
}

static void server_on_data_abort(void *ctx)
{
	struct conn *c = ctx;
	if (c->msg != NULL || c->dmsg != NULL) {
		log_info("sid=%s qid=%s event=aborted", c->sid, c->qid);
		server_msg_abort(c);
	}
}

/* ---- engine callbacks: AUTH ---- */

static void server_conn_update(struct conn *c);

/* The users-file secret for a SASL user name: "user@domain" or a bare "user". A bare
 * users-file name answers for "user@D" only when D is in local_domains (so a login,
 * which the sender-login rules and the logs trust, never carries a made-up domain). */
static const char *server_auth_lookup(void *arg, const char *user)
{
	struct conn *c = arg;
	const struct config *cfg = c->cfg->c;
	char u[SASL_USER_MAX + 1];
	const char *h;
	char *at;

	snprintf(u, sizeof u, "%s", user);
	at = strrchr(u, '@');
	if (at == NULL)
		return config_user_hash(cfg, u, NULL);
	*at = '\0';
	h = config_user_hash(cfg, u, at + 1);
	if (h != NULL && h == config_user_hash(cfg, u, NULL) &&
	    !config_is_local_domain(cfg, at + 1))
		return NULL; /* only the bare entry matched, for a foreign domain */
	return h;
}

static void server_auth_user_log(const struct conn *c, char *out, size_t outsz)
{
	const char *u = c->sasl ? sasl_user(c->sasl) : "";

	log_escape(out, outsz, u, strlen(u));
}

static void server_auth_success(struct conn *c)
{
	char u[128];

	server_auth_user_log(c, u, sizeof u);
	snprintf(c->auth_user, sizeof c->auth_user, "%s", sasl_user(c->sasl));
	log_info("sid=%s event=auth result=ok client=%s user=\"%s\"", c->sid, c->ip, u);
	sasl_free(c->sasl);
	c->sasl = NULL;
	smtp_server_auth_answer(c->s, SMTP_AUTH_OK, NULL, 0);
}

/* A failure is answered after a delay that grows with each failure; after
 * auth_max_failures the session ends. */
static void server_auth_failed(struct conn *c)
{
	const struct config *cfg = c->cfg->c;
	char u[128];
	unsigned delay;

	server_auth_user_log(c, u, sizeof u);
	c->auth_failures++;
	log_warn("sid=%s event=auth result=failed client=%s user=\"%s\" failures=%u", c->sid, c->ip,
	         u, c->auth_failures);
	sasl_free(c->sasl);
	c->sasl = NULL;
	if (cfg->auth_ip_max_failures > 0 &&
	    authlimit_fail(c->srv->authlim, (struct sockaddr *)&c->peer, server_now(),
	                   cfg->auth_ip_window) < 0)
		log_warn("sid=%s event=auth-ip-table-full client=%s", c->sid, c->ip);
	delay = cfg->auth_fail_delay * c->auth_failures;
	if (delay > SERVER_AUTH_DELAY_MAX_S)
		delay = SERVER_AUTH_DELAY_MAX_S;
	if (delay > 0) {
		c->auth_delayed = true;
		c->auth_answer_at = server_now() + delay;
		return; /* the tick answers */
	}
	smtp_server_auth_answer(c->s, SMTP_AUTH_FAIL, NULL, 0);
	if (c->auth_failures >= cfg->auth_max_failures)
		smtp_server_refuse(c->s, "4.7.0", "Error: too many authentication failures");
}

static void server_auth_delayed_answer(struct conn *c)
{
	c->auth_delayed = false;
	smtp_server_auth_answer(c->s, SMTP_AUTH_FAIL, NULL, 0);
	if (c->auth_failures >= c->cfg->c->auth_max_failures)
		smtp_server_refuse(c->s, "4.7.0", "Error: too many authentication failures");
	server_conn_update(c);
}

static void server_on_auth_checked(void *arg, int rc)
{
	struct conn *c = arg;

	c->auth_pending = false;
	if (c->dead) {
		if (!c->commit_pending)
			server_conn_free(c);
		return;
	}
	if (rc == 0)
		server_auth_success(c);
	else
		server_auth_failed(c);
	server_conn_update(c);
}

/* A new AUTH exchange from an address with auth_ip_max_failures failures in the
 * last auth_ip_window seconds (any session): 454 4.7.0, counted as a failure of
 * this session (so a client hammering away still meets auth_max_failures). */
static bool server_auth_is_throttled(struct conn *c)
{
	const struct config *cfg = c->cfg->c;

	if (!authlimit_is_throttled(c->srv->authlim, (struct sockaddr *)&c->peer, server_now(),
	                            cfg->auth_ip_max_failures, cfg->auth_ip_window))
		return false;
	c->auth_failures++;
	log_warn("sid=%s event=auth result=throttled client=%s failures=%u", c->sid, c->ip,
	         c->auth_failures);
	smtp_server_auth_answer(c->s, SMTP_AUTH_TEMPFAIL, NULL, 0);
	if (c->auth_failures >= cfg->auth_max_failures)
		smtp_server_refuse(c->s, "4.7.0", "Error: too many authentication failures");
	return true;
}

static void server_on_auth(void *ctx, const char *mech, const unsigned char *resp, size_t n,
                           bool has_resp)
{
	struct conn *c = ctx;
	unsigned char out[512];
	size_t outlen = 0;
	const char *secret;

	if (c->sasl == NULL && server_auth_is_throttled(c))
		return;
	if (c->sasl == NULL) {
		c->sasl = sasl_new(mech);
		if (c->sasl == NULL) {
			smtp_server_auth_answer(c->s, SMTP_AUTH_TEMPFAIL, NULL, 0);
			return;
		}
	}
	switch (sasl_step(c->sasl, resp, n, has_resp, server_auth_lookup, c, out, sizeof out,
	                  &outlen)) {
	case SASL_R_CONTINUE:
		smtp_server_auth_answer(c->s, SMTP_AUTH_CONTINUE, out, outlen);
		return;
	case SASL_R_OK:
		server_auth_success(c);
		return;
	case SASL_R_MALFORMED:
		sasl_free(c->sasl);
		c->sasl = NULL;
		smtp_server_auth_answer(c->s, SMTP_AUTH_MALFORMED, NULL, 0);
		return;
	case SASL_R_FAIL:
		server_auth_failed(c);
		return;
	case SASL_R_CHECK:
		break;
	}
	secret = server_auth_lookup(c, sasl_user(c->sasl));
	if (secret == NULL) {
		server_auth_failed(c);
		return;
	}
	if (authcheck_submit(c->srv->authc, secret, sasl_pass(c->sasl), server_on_auth_checked,
	                     c) < 0) {
		sasl_free(c->sasl);
		c->sasl = NULL;
		smtp_server_auth_answer(c->s, SMTP_AUTH_TEMPFAIL, NULL, 0);
		return;
	}
	c->auth_pending = true;
}

static void server_on_auth_abort(void *ctx)
{
	struct conn *c = ctx;

	sasl_free(c->sasl);
	c->sasl = NULL;
}

static const struct smtp_server_ops server_ops = {
	.mail = server_on_mail,
	.rcpt = server_on_rcpt,
	.vrfy = server_on_vrfy,
	.expn = server_on_expn,
	.data_begin = server_on_data_begin,
	.data_write = server_on_data_write,
	.data_commit = server_on_data_commit,
	.data_abort = server_on_data_abort,
	.auth = server_on_auth,
	.auth_abort = server_on_auth_abort,
};

/* ---- socket I/O ---- */

static void server_conn_io(struct ev_loop *loop, int fd, void *arg, unsigned events);

/* Read from the socket or the TLS session: > 0, 0 at the end, -EAGAIN, -EIO. */
static ssize_t server_conn_recv(struct conn *c, void *p, size_t n)
{
	if (c->tls != NULL)
		return tls_conn_read(c->tls, p, n);
	for (;;) {
		ssize_t r = recv(c->fd, p, n, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return -EIO;
	}
}

static ssize_t server_conn_send(struct conn *c, const void *p, size_t n)
{
	if (c->tls != NULL)
		return tls_conn_write(c->tls, p, n);
	for (;;) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return -EIO;
	}
}

static void server_conn_set_mask(struct conn *c, unsigned mask)
{
	if (!c->registered) {
		if (ev_set(c->srv->loop, c->fd, mask, server_conn_io, c) == 0)
			c->registered = true;
	} else {
		ev_mask(c->srv->loop, c->fd, mask);
	}
}

/* Drive the TLS handshake. Returns 0, or -1 if the connection was closed. */
static int server_conn_handshake(struct conn *c)
{
	int rc = tls_conn_handshake(c->tls);
	if (rc == -EAGAIN) {
		server_conn_set_mask(c, tls_conn_want(c->tls));
		return 0;
	}
	if (rc < 0) {
		log_info("sid=%s event=tls-failed client=%s error=\"%s\"", c->sid, c->ip,
		         tls_conn_error(c->tls));
		server_conn_close(c, "tls-handshake-failed");
		return -1;
	}
	c->handshaking = false;
	c->deadline = server_now() + c->cfg->c->cmd_timeout;
	const char *sni = tls_conn_servername(c->tls);
	char esni[300];
	log_info("sid=%s event=tls client=%s version=%s cipher=%s sni=\"%s\"", c->sid, c->ip,
	         tls_conn_version(c->tls), tls_conn_cipher(c->tls),
	         log_escape(esni, sizeof esni, sni, strnlen(sni, 256)));
	if (smtp_server_wants_tls(c->s))
		smtp_server_tls_started(c->s);
	else
		smtp_server_greet(c->s); /* implicit TLS: the greeting comes encrypted */
	server_conn_update(c);
	return 0;
}

/* Start TLS on the connection (after the 220 to STARTTLS, or at accept for an
 * implicit TLS listener). Returns 0, or -1 if the connection was closed. */
static int server_conn_tls_begin(struct conn *c)
{
	struct tls_ctx *ctx = c->srv->listeners[c->listener].tls;
	if (ctx == NULL || tls_conn_new(&c->tls, ctx, c->fd) < 0) {
		server_conn_close(c, "tls-setup-failed");
		return -1;
	}
	c->handshaking = true;
	c->deadline = server_now() + SERVER_HANDSHAKE_S;
	return server_conn_handshake(c);
}

/* Send what the engine produced. Returns 0, or -1 if the connection was closed. */
static int server_conn_flush(struct conn *c)
{
	size_t len;
	const char *out = smtp_server_output(c->s, &len);
	while (len > 0) {
		ssize_t w = c->out_dead ? (ssize_t)len : server_conn_send(c, out, len);
		if (w < 0) {
			if (w == -EAGAIN)
				return 0;
			if (c->tls == NULL) {
				/* Reset: nobody hears us any more, but what the client sent before
				 * it is still read and processed (like an orderly close). */
				log_info("sid=%s event=peer-reset client=%s", c->sid, c->ip);
				c->out_dead = true;
				continue;
			}
			server_conn_close(c, "write-error");
			return -1;
		}
		smtp_server_output_done(c->s, (size_t)w);
		out = smtp_server_output(c->s, &len);
	}
	return 0;
}

/* Give the engine input until it has used it all or must stop (a commit in
 * flight, closing). Returns the bytes used. */
static size_t server_conn_feed(struct conn *c, const char *p, size_t n)
{
	size_t off = 0;
	while (off < n && !smtp_server_is_waiting(c->s) && !smtp_server_is_closing(c->s)) {
		size_t used = smtp_server_feed(c->s, p + off, n - off);
		off += used;
		if (used == 0)
			break;
	}
	return off;
}

/* Feed buffered input to the engine, send replies, and set the interest mask. */
static void server_conn_update(struct conn *c)
{
	if (c->handshaking) {
		server_conn_set_mask(c, tls_conn_want(c->tls));
		return;
	}
	if (!c->greeted && c->in.len > 0 && !smtp_server_is_closing(c->s)) {
		log_warn("sid=%s event=pregreet client=%s bytes=%zu", c->sid, c->ip, c->in.len);
		smtp_server_sync_error(c->s);
		buf_reset(&c->in);
	}
	/* Feed, send, and feed again while the replies drain at once: the engine stops
	 * consuming with 64 KiB of replies unsent, and no event would wake us to go on
	 * if the socket took them all. */
	for (;;) {
		size_t out_before, out_after, consumed = 0;
		smtp_server_output(c->s, &out_before);
		if (c->greeted && c->in.len > 0) {
			consumed = server_conn_feed(c, c->in.ptr, c->in.len);
			buf_consume(&c->in, consumed);
		}
		smtp_server_output(c->s, &out_after);
		if (out_after > out_before) /* a reply: the next command's deadline starts */
			c->deadline = server_now() + c->cfg->c->cmd_timeout;
		if (!c->greeted || c->in.len == 0 || smtp_server_is_waiting(c->s) ||
		    smtp_server_is_closing(c->s) || (consumed == 0 && out_after == 0))
			break;
		/* input left over: the engine waits for its replies to be sent */
		if (server_conn_flush(c) < 0)
			return;
		size_t left;
		smtp_server_output(c->s, &left);
		if (left > 0)
			break; /* the socket is full: EV_WRITE brings us back */
	}
	buf_shrink(&c->in); /* frees it when empty: idle sessions hold no input buffer */
	if (c->srv->stopping && !smtp_server_is_waiting(c->s) && !smtp_server_is_closing(c->s))
		smtp_server_shutdown(c->s);
	if (server_conn_flush(c) < 0)
		return;
	size_t pending;
	smtp_server_output(c->s, &pending);
	if (smtp_server_wants_tls(c->s) && pending == 0 && c->tls == NULL) {
		/* RFC 3207 4.2: nothing the client sent before the handshake counts.
		 * Dropping it here defeats STARTTLS command injection (CVE-2011-0411). */
		buf_reset(&c->in);
		c->eof = false;
		server_conn_tls_begin(c);
		return;
	}
	if (smtp_server_is_closing(c->s) && pending == 0) {
		server_conn_close(c, "closed");
		return;
	}
	if (c->eof && !smtp_server_is_waiting(c->s)) {
		server_conn_close(c, "eof");
		return;
	}
	/* Waiting for a commit with nothing to send: leave the registration as it is
	 * (two epoll_ctl calls per message saved); if the socket wakes us meanwhile,
	 * io drops it from the loop until the commit is done. */
	if (smtp_server_is_waiting(c->s) && pending == 0 && c->registered)
		return;
	unsigned mask = 0;
	if (!smtp_server_is_waiting(c->s) && !smtp_server_is_closing(c->s) && !c->eof &&
	    c->in.len < SERVER_INBUF_MAX)
		mask |= EV_READ;
	if (pending > 0)
		mask |= EV_WRITE;
	server_conn_set_mask(c, mask);
	/* In the waiting state with no interest, hang-ups are still reported: the
	 * fd is dropped from the loop then and re-added after the commit (see io). */
}

/* Content bytes received: extend the deadline by bytes / TERN_MIN_DATA_RATE seconds,
 * never beyond command_timeout from now. Command bytes earn nothing (only a reply
 * restarts the command deadline). */
static void server_conn_credit(struct conn *c, size_t n)
{
	enum smtp_state st = smtp_server_state(c->s);
	if (st != SMTP_ST_DATA && st != SMTP_ST_BDAT)
		return;
	c->rate_bytes += n;
	time_t credit = (time_t)(c->rate_bytes / TERN_MIN_DATA_RATE);
	c->rate_bytes %= TERN_MIN_DATA_RATE;
	time_t cap = server_now() + c->cfg->c->cmd_timeout;
	c->deadline = c->deadline + credit > cap ? cap : c->deadline + credit;
}

static void server_conn_io(struct ev_loop *loop, int fd, void *arg, unsigned events)
{
	struct conn *c = arg;
	if (c->handshaking) {
		server_conn_handshake(c);
		return;
	}
	if (c->eof || (smtp_server_is_waiting(c->s) &&
	                (c->tls != NULL || c->in.max - c->in.len < SERVER_READ_CHUNK))) {
		/* Nothing more can be taken now (level-triggered epoll would wake us
		 * again and again): stop listening until the commit is done, then the
		 * read path finds out what happened. */
		ev_del(loop, fd);
		c->registered = false;
		return;
	}
	/* Waiting for a commit on plain TCP: what arrives (the next command, sent as
	 * soon as the early 250 went out) is read and held until the commit is done. */
	if (events & EV_READ) {
		size_t got = 0;
		for (;;) {
			if (c->in.max - c->in.len < SERVER_READ_CHUNK)
				break; /* full: the engine must use some first */
			ssize_t r = server_conn_recv(c, c->srv->rbuf, SERVER_READ_CHUNK);
			if (r > 0) {
				size_t used = 0;
				server_conn_credit(c, (size_t)r);
				if (c->in.len == 0 && c->greeted) {
					/* Nothing held back: the engine reads straight from the loop's
					 * buffer and only a remainder (a partial line, input behind a
					 * commit) is copied into the session. */
					size_t out_before, out_after;
					smtp_server_output(c->s, &out_before);
					used = server_conn_feed(c, c->srv->rbuf, (size_t)r);
					smtp_server_output(c->s, &out_after);
					if (out_after > out_before) /* a reply: the next deadline starts */
						c->deadline = server_now() + c->cfg->c->cmd_timeout;
				}
				if (buf_append(&c->in, c->srv->rbuf + used, (size_t)r - used) < 0) {
					server_conn_close(c, "out-of-memory");
					return;
				}
				got += (size_t)r;
				/* A short read drained the socket: epoll is level-triggered and
				 * says when more comes (no read just to see EAGAIN). */
				if (c->tls == NULL && (size_t)r < SERVER_READ_CHUNK)
					break;
				/* Let other sessions work; more comes next round. Bytes OpenSSL
				 * already holds would not wake epoll, so those are always taken. */
				if (got >= 2 * SERVER_READ_CHUNK &&
				    (c->tls == NULL || !tls_conn_has_pending(c->tls)))
					break;
				continue;
			}
			if (r == 0) {
				/* Peer closed. What it sent before (a pipelined QUIT, say) is still
				 * processed; the connection closes once nothing holds it. */
				c->eof = true;
				break;
			}
			if (r == -EAGAIN)
				break;
			if (c->in.len > 0) {
				c->eof = true; /* use what arrived before the reset, then close */
				break;
			}
			server_conn_close(c, "read-error");
			return;
		}
	}
	struct server *srv = c->srv;
	bool waiting = smtp_server_is_waiting(c->s);
	server_conn_update(c); /* may free c */
	/* The client sent its next command while its commit is still being reported
	 * to us (it had the early 250): finish the commits now rather than after this
	 * round, so that command is answered at once. */
	if (waiting && srv->direct != NULL && direct_completions_ready(srv->direct))
		direct_run_completions_now(srv->direct);
}

/* A commit finished: queued (direct false) or delivered straight into the Maildirs;
 * replied: bytes of the 250 the committer already sent (early reply). */
static void server_commit_finish(struct conn *c, int err, const char *qid, bool direct,
                                 size_t replied)
{
	struct server *srv = c->srv;
	c->commit_pending = false;
	c->early_reply = false;
	if (c->fd_held) {
		close(c->held_fd);
		c->fd_held = false;
	}
	if (err == 0) {
		log_info("sid=%s qid=%s event=accepted from=<%s> rcpts=%zu size=%llu%s", c->sid, qid,
		         c->from, c->nrcpts, (unsigned long long)c->size, direct ? " direct=yes" : "");
		/* nothing local to do: straight to relay (local delivery would only read
		 * the envelope to hand it over) */
		if (!direct && c->all_remote)
			relay_enqueue(srv->rl, qid);
		else if (!direct)
			local_delivery_enqueue(srv->ld, qid);
	} else {
		log_error("sid=%s qid=%s event=commit-failed error=%s", c->sid, c->qid,
		          strerror(-err));
	}
	if (c->dead) {
		server_conn_free(c);
		return;
	}
	char ok[128];
	size_t oklen = replied > 0 ? smtp_server_commit_ok_text(c->s, qid, ok, sizeof ok) : 0;
	smtp_server_commit_done(c->s, err, qid);
	if (replied > 0) {
		/* the output was empty at commit and the engine said nothing since: it now
		 * starts with the reply, of which the first `replied` bytes went out */
		size_t olen;
		const char *o = smtp_server_output(c->s, &olen);
		if (replied <= oklen && olen >= replied && memcmp(o, ok, replied) == 0)
			smtp_server_output_done(c->s, replied);
		else
			log_error("sid=%s qid=%s event=early-reply-mismatch", c->sid, qid);
	}
	c->deadline = server_now() + c->cfg->c->cmd_timeout;
	server_conn_update(c);
}

static void server_on_commit_done(void *arg, int err, const char *qid)
{
	server_commit_finish(arg, err, qid, false, 0);
}

static void server_on_direct_done(void *arg, int err, const char *qid, size_t replied)
{
	server_commit_finish(arg, err, qid, true, replied);
}

/* ---- accepting ---- */

/* Accept one connection. Returns 0, or -1 when there is nothing more to accept now. */
static int server_accept_one(struct server *srv, struct server_listener *sl)
{
	struct sockaddr_storage ss;
	socklen_t sl_len = sizeof ss;
	int fd = accept4(sl->fd, (struct sockaddr *)&ss, &sl_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			log_warn("event=accept-failed error=\"%s\"", strerror(errno));
		return -1;
	}
	const struct config *cfg = srv->cfg->c;
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		return 0;
	}
	c->srv = srv;
	c->fd = fd;
	c->peer = ss;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->ip, sizeof c->ip);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->ip, sizeof c->ip);
	else
		snprintf(c->ip, sizeof c->ip, "unknown");
	snprintf(c->sid, sizeof c->sid, "%08llx", (unsigned long long)++srv->sid_next);
	c->cfg = srv->cfg;
	c->cfg->refs++;
	/* room for one more TLS record than a plain read round can bring */
	buf_init(&c->in, SERVER_INBUF_MAX + 2 * SERVER_READ_CHUNK);
	c->opts.hostname = cfg->hostname;
	c->opts.greeting = NULL;
	c->opts.max_msg_size = cfg->max_msg_size;
	c->opts.max_rcpts = cfg->max_rcpts;
	c->opts.max_errors = cfg->max_errors;
	c->opts.lenient_lf = sl->l.lenient_lf;
	c->opts.require_helo = sl->l.require_helo;
	c->opts.vrfy_enabled = sl->l.vrfy;
	c->opts.expn_enabled = sl->l.expn;
	c->opts.strict_sync = !sl->l.lenient_lf;
	c->opts.starttls = sl->l.tls == CONFIG_TLS_STARTTLS;
	c->opts.tls_active = false; /* implicit TLS: set once the handshake is done */
	c->opts.require_tls = sl->l.require_tls;
	c->opts.auth = sl->l.auth;
	c->opts.auth_plaintext = sl->l.allow_plaintext_auth;
	c->opts.require_auth = sl->l.submission;
	c->opts.auth_mechs = SASL_MECHS;
	c->listener = (size_t)(sl - srv->listeners);
	c->trusted = config_is_trusted(cfg, (struct sockaddr *)&ss);
	c->deadline = server_now() + cfg->cmd_timeout;
	c->greeted = true;
	/* link */
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	/* Replies go out whole: no Nagle delay. Linux passes TCP_NODELAY from the
	 * listener to what it accepts; checked once, set here only if it did not. */
	int one = 1;
	if (srv->nodelay_inherited < 0) {
		int v = 0;
		socklen_t vl = sizeof v;
		srv->nodelay_inherited =
		    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v != 0;
	}
	if (!srv->nodelay_inherited)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->s = smtp_server_new(&c->opts, &server_ops, c);
	int per_ip = ipcount_inc(srv->ipc, (struct sockaddr *)&ss);
	if (c->s == NULL || per_ip < 0) {
		if (per_ip >= 0)
			ipcount_dec(srv->ipc, (struct sockaddr *)&ss);
		close(fd);
		c->fd = -1;
		server_conn_free(c);
		return 0;
	}
	log_info("sid=%s event=connect client=%s listener=%s", c->sid, c->ip, sl->l.name);
	if (sl->l.tls == CONFIG_TLS_IMPLICIT) {
		c->opts.tls_active = true;
		/* the engine copied opts: recreate it with TLS on */
		smtp_server_free(c->s);
		c->s = smtp_server_new(&c->opts, &server_ops, c);
		if (c->s == NULL || srv->nconns > cfg->max_conn ||
		    (unsigned)per_ip > cfg->max_conn_per_ip) {
			/* no plaintext 421 on a TLS port: just close */
			server_conn_close(c, c->s == NULL ? "no-memory" : "max-connections");
			return 0;
		}
		server_conn_tls_begin(c);
		return 0;
	}
	if (srv->nconns > cfg->max_conn) {
		log_warn("sid=%s event=refused client=%s reason=max-connections", c->sid, c->ip);
		smtp_server_refuse(c->s, "4.7.0", "Error: too many connections, try again later");
	} else if ((unsigned)per_ip > cfg->max_conn_per_ip) {
		log_warn("sid=%s event=refused client=%s reason=max-connections-per-ip", c->sid,
		         c->ip);
		smtp_server_refuse(c->s, "4.7.0", "Error: too many connections from your address");
	} else if (sl->l.greet_delay > 0) {
		c->greet_at = server_now() + sl->l.greet_delay;
		c->greeted = false;
		c->deadline = c->greet_at + cfg->cmd_timeout;
	} else {
		smtp_server_greet(c->s);
	}
	server_conn_update(c);
	return 0;
}

static void server_on_listener(struct ev_loop *loop, int lfd, void *arg, unsigned events)
{
	struct server *srv = arg;
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].fd == lfd) {
			for (int n = 0; n < 64; n++)
				if (server_accept_one(srv, &srv->listeners[i]) < 0)
					break;
			return;
		}
	}
}

/* Bind one listener (ports below 1024 need root) and load its keys; it does not
 * listen yet: until server_listen_all, a client is refused instead of waiting in the
 * backlog for a journal replay or a spool recovery. */
static int server_bind_one(struct server *srv, const struct config_listener *l)
{
	int fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited */
	if (l->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&l->sa, l->salen) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct tls_ctx *tls = NULL;
	if (l->tls != CONFIG_TLS_NONE) {
		char err[700];
		if (tls_ctx_for_listener(&tls, srv->cfg->c->source, l, err, sizeof err) < 0) {
			log_error("event=tls-setup-failed listener=%s error=\"%s\"", l->name, err);
			close(fd);
			return -EINVAL;
		}
	}
	struct server_listener *sl = &srv->listeners[srv->nlisteners++];
	sl->fd = fd;
	sl->l = *l;
	sl->l.tls_pairs = NULL; /* borrowed from a config a reload may free; tls has them */
	sl->l.ntls_pairs = 0;
	sl->tls = tls;
	return 0;
}

/* Start accepting on every bound listener: the last step of startup. */
static int server_listen_all(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct server_listener *sl = &srv->listeners[i];
		const struct config_listener *l = &sl->l;
		if (listen(sl->fd, 1024) < 0) {
			int e = errno;
			log_error("event=startup-failed error=\"listen %s: %s\"", l->name, strerror(e));
			return -e;
		}
		int rc = ev_set(srv->loop, sl->fd, EV_READ, server_on_listener, srv);
		if (rc < 0) {
			log_error("event=startup-failed error=\"listen %s: %s\"", l->name, strerror(-rc));
			return rc;
		}
		log_info("event=listening listener=%s lenient_lf=%s tls=%s certificates=%zu auth=%s "
		         "submission=%s",
		         l->name, l->lenient_lf ? "yes" : "no",
		         l->tls == CONFIG_TLS_IMPLICIT
		                 ? "implicit"
		                 : (l->tls == CONFIG_TLS_STARTTLS ? "starttls" : "none"),
		         tls_ctx_count(sl->tls), l->auth ? "yes" : "no", l->submission ? "yes" : "no");
	}
	return 0;
}

/* Close the listening sockets. Their TLS contexts stay until server_free: sessions
 * started on them may still run a STARTTLS. */
static void server_close_listeners(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].fd < 0)
			continue;
		ev_del(srv->loop, srv->listeners[i].fd);
		close(srv->listeners[i].fd);
		srv->listeners[i].fd = -1;
	}
}

/* SIGHUP, after the new config loaded: load every TLS listener's certificates again
 * as that config gives them for the listener of the same address (tls_cert,
 * tls_cert_for); a listener the new config lacks or runs without TLS reloads its old
 * files. A listener whose files do not all load keeps its old set. Sessions in
 * progress keep theirs. */
static void server_reload_tls(struct server *srv, const struct config *nc)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct server_listener *sl = &srv->listeners[i];
		const struct config_listener *nl = config_find_listener(nc, sl->l.name);
		struct tls_ctx *t;
		char err[1400];
		if (sl->tls == NULL)
			continue;
		if (nl == NULL || nl->tls == CONFIG_TLS_NONE)
			nl = &sl->l;
		if (tls_ctx_for_listener(&t, nc->source, nl, err, sizeof err) < 0) {
			log_error("event=tls-reload result=failed listener=%s error=\"%s\"", sl->l.name,
			          err);
			continue;
		}
		tls_ctx_free(sl->tls); /* open sessions hold their own reference */
		sl->tls = t;
		log_info("event=tls-reload result=ok listener=%s certificates=%zu", sl->l.name,
		         tls_ctx_count(t));
	}
}

/* ---- signals, ticks, reload ---- */

static void server_begin_stop(struct server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	srv->stop_deadline = server_now() + SERVER_STOP_GRACE_S;
	log_info("event=stopping connections=%u", srv->nconns);
	server_close_listeners(srv);
	struct conn *c = srv->conns;
	while (c) {
		struct conn *next = c->next;
		if (!c->dead && c->handshaking) {
			server_conn_close(c, "shutdown");
		} else if (!c->dead && !smtp_server_is_waiting(c->s)) {
			smtp_server_shutdown(c->s);
			server_conn_update(c);
		}
		c = next;
	}
	if (srv->nconns == 0)
		ev_stop(srv->loop);
}

static void server_reload(struct server *srv)
{
	if (srv->config_path == NULL) {
		log_info("event=reload result=skipped reason=no-config-file");
		return;
	}
	char err[600];
	struct config *nc = config_load(srv->config_path, err, sizeof err);
	if (nc == NULL) {
		/* started as root, ternd runs as the configured user by now: a file only
		 * root may read (a key, typically) was read at start, not any more */
		char hint[200] = "";
		if (geteuid() != 0 && strstr(err, strerror(EACCES)) != NULL)
			snprintf(hint, sizeof hint, " hint=\"ternd runs as uid %u since start-up: give "
			         "that user read access (for a key: chgrp to its group, chmod 640) or "
			         "restart\"", (unsigned)geteuid());
		log_error("event=reload result=failed error=\"%s\" (keeping the old config)%s", err,
		          hint);
		return;
	}
	server_reload_tls(srv, nc);
	struct server_cfg *sc = server_cfg_new(nc);
	if (sc == NULL) {
		config_free(nc);
		return;
	}
	server_cfg_unref(srv->cfg);
	srv->cfg = sc;
	direct_set_relaxed(srv->direct, nc->relaxed);
	log_info("event=reload result=ok file=%s (listeners and data_dir need a restart)",
	         srv->config_path);
}

static void server_on_signal(struct ev_loop *loop, int fd, void *arg, unsigned events)
{
	struct server *srv = arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGHUP)
			server_reload(srv);
		else
			server_begin_stop(srv);
	}
}

static void server_on_authcheck(struct ev_loop *loop, int fd, void *arg, unsigned events)
{
	struct server *srv = arg;
	authcheck_run_completions(srv->authc);
	if (srv->stopping && srv->nconns == 0)
		ev_stop(loop);
}

static void server_on_spool(struct ev_loop *loop, int fd, void *arg, unsigned events)
{
	struct server *srv = arg;
	spool_run_completions(srv->spool);
	if (srv->stopping && srv->nconns == 0)
		ev_stop(loop);
}

static void server_on_direct(struct ev_loop *loop, int fd, void *arg, unsigned events)
{
	struct server *srv = arg;
	direct_run_completions(srv->direct);
	if (srv->stopping && srv->nconns == 0)
		ev_stop(loop);
}

static void server_on_tick(struct ev_loop *loop, void *arg)
{
	struct server *srv = arg;
	time_t now = server_now();
	struct conn *c = srv->conns;
	while (c) {
		struct conn *next = c->next;
		if (!c->dead && c->handshaking) {
			if (now >= c->deadline)
				server_conn_close(c, "tls-handshake-timeout");
		} else if (!c->dead && c->auth_delayed && now >= c->auth_answer_at) {
			server_auth_delayed_answer(c);
		} else if (!c->dead && !c->greeted && now >= c->greet_at && !smtp_server_is_closing(c->s)) {
			c->greeted = true;
			smtp_server_greet(c->s);
			c->deadline = now + c->cfg->c->cmd_timeout;
			server_conn_update(c);
		} else if (!c->dead && !smtp_server_is_waiting(c->s) && now >= c->deadline &&
		    !smtp_server_is_closing(c->s)) {
			log_info("sid=%s event=timeout client=%s", c->sid, c->ip);
			smtp_server_timeout(c->s);
			server_conn_update(c);
		} else if (!c->dead && smtp_server_is_closing(c->s) && now >= c->deadline + 30) {
			server_conn_close(c, "stuck-output");
		}
		c = next;
	}
	if (!srv->stopping)
		pickup_scan(srv->pickup, srv->cfg->c);
	if (now - srv->authlim_pruned >= 60) {
		authlimit_prune(srv->authlim, now, srv->cfg->c->auth_ip_window);
		srv->authlim_pruned = now;
	}
	if (srv->stopping) {
		bool pending = false;
		for (c = srv->conns; c; c = c->next)
			pending |= c->commit_pending || c->auth_pending;
		if (srv->nconns == 0 || (!pending && now >= srv->stop_deadline))
			ev_stop(loop);
	}
}

/* For the delivery threads: the startup config never changes or goes away while
 * they run (srv->deliver_cfg holds a reference until local_delivery_stop). Domains
 * added by a reload are delivered locally after a restart. */
static bool server_deliver_is_local(void *arg, const char *domain)
{
	const struct server *srv = arg;
	return server_domain_is_local(srv->deliver_cfg->c, domain);
}

/* ---- public ---- */

/* Glue between the queue sources (recovery, maildrop pickup, admin socket) and the
 * delivery modules; also called from the delivery threads. */
static void server_local_enqueue(void *arg, const char *qid)
{
	struct server *srv = arg;
	local_delivery_enqueue(srv->ld, qid);
}

static void server_relay_enqueue(void *arg, const char *qid)
{
	struct server *srv = arg;
	relay_enqueue(srv->rl, qid);
}

static void server_relay_flush(void *arg, const char *qid)
{
	struct server *srv = arg;
	relay_flush(srv->rl, qid);
}

/* `tern queue`: local mail acknowledged through the journal, not yet placed. */
static size_t server_placing(void *arg, direct_pending_fn fn, void *farg)
{
	struct server *srv = arg;
	return direct_pending_list(srv->direct, fn, farg);
}

static void server_place_now(void *arg)
{
	struct server *srv = arg;
	direct_retry_soon(srv->direct);
}

int server_new(struct server **out, struct config *cfg, const char *config_path)
{
	struct server *srv = calloc(1, sizeof *srv);
	if (srv == NULL)
		return -ENOMEM;
	srv->sigfd = -1;
	srv->nodelay_inherited = -1;
	srv->cfg = server_cfg_new(cfg);
	srv->ipc = ipcount_new();
	srv->authlim = authlimit_new();
	if (config_path)
		srv->config_path = strdup(config_path);
	if (srv->cfg == NULL || srv->ipc == NULL || srv->authlim == NULL || (config_path && !srv->config_path)) {
		server_free(srv);
		return -ENOMEM;
	}
	*out = srv;
	return 0;
}

int server_run(struct server *srv)
{
	const struct config *cfg = srv->cfg->c;
	char path[1024];
	int rc = ev_loop_new(&srv->loop);
	if (rc < 0)
		return 1;
	ev_set_tick(srv->loop, 1000, server_on_tick, srv);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	srv->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv->sigfd < 0 || ev_set(srv->loop, srv->sigfd, EV_READ, server_on_signal, srv) < 0) {
		log_error("event=startup-failed error=\"signalfd: %s\"", strerror(errno));
		return 1;
	}

	/* Bind (ports below 1024 need root) and load keys first, then drop root before
	 * touching the data directory or reading a byte from the network. */
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		rc = server_bind_one(srv, &cfg->listeners[i]);
		if (rc < 0) {
			log_error("event=startup-failed error=\"bind %s: %s\"", cfg->listeners[i].name,
			          strerror(-rc));
			return 1;
		}
	}
	rc = privdrop_apply(cfg->run_user);
	if (rc < 0) {
		log_error("event=startup-failed error=\"drop privileges to %s: %s\"", cfg->run_user,
		          strerror(-rc));
		return 1;
	}
	rc = authcheck_start(&srv->authc);
	if (rc < 0 || ev_set(srv->loop, authcheck_event_fd(srv->authc), EV_READ,
	                     server_on_authcheck, srv) < 0) {
		log_error("event=startup-failed error=\"authcheck: %s\"", strerror(-rc));
		return 1;
	}

	if (snprintf(path, sizeof path, "%s/spool", cfg->data_dir) >= (int)sizeof path)
		return 1;
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		log_error("event=startup-failed error=\"mkdir %s: %s\"", cfg->data_dir, strerror(errno));
		return 1;
	}
	rc = spool_open(&srv->spool, path);
	if (rc < 0) {
		log_error("event=startup-failed error=\"spool %s: %s\"", path, strerror(-rc));
		return 1;
	}
	ev_set(srv->loop, spool_event_fd(srv->spool), EV_READ, server_on_spool, srv);
	rc = direct_open(&srv->direct, cfg->data_dir, cfg->mailbox_pattern, cfg->hostname);
	if (rc < 0) {
		log_error("event=startup-failed error=\"direct delivery: %s\"", strerror(-rc));
		return 1;
	}
	direct_set_relaxed(srv->direct, cfg->relaxed);
	if (cfg->relaxed)
		log_warn("event=durability-relaxed reason=\"local mail is acknowledged without "
		         "fsync: a crash can lose it (docs/CONFIG.md)\"");
	ev_set(srv->loop, direct_event_fd(srv->direct), EV_READ, server_on_direct, srv);

	struct relay_opts ro = {
		.cfg = cfg->relay,
		.hostname = cfg->hostname,
		.local = cfg,
		.local_enqueue = server_local_enqueue,
		.arg = srv,
	};
	rc = relay_start(&srv->rl, srv->spool, &ro);
	if (rc < 0) {
		log_error("event=startup-failed error=\"relay: %s\"", strerror(-rc));
		return 1;
	}
	struct local_delivery_opts lo = {
		.remote = server_relay_enqueue,
		.remote_arg = srv,
		.data_dir = cfg->data_dir,
		.mailbox_pattern = cfg->mailbox_pattern,
		.hostname = cfg->hostname,
		.threads = cfg->delivery_threads ? cfg->delivery_threads : 2,
		/* the relay schedule when shorter (tests), and the same give_up */
		.retry_first_s = cfg->relay.retry_first_s < 60 ? cfg->relay.retry_first_s : 60,
		.retry_max_s = cfg->relay.retry_max_s < 3600 ? cfg->relay.retry_max_s : 3600,
		.give_up_s = cfg->relay.give_up_s,
		.is_local = server_deliver_is_local,
		.is_local_arg = srv,
	};
	srv->deliver_cfg = srv->cfg;
	srv->deliver_cfg->refs++;
	rc = local_delivery_start(&srv->ld, srv->spool, &lo);
	if (rc < 0) {
		log_error("event=startup-failed error=\"delivery: %s\"", strerror(-rc));
		return 1;
	}
	rc = spool_recover(srv->spool, server_local_enqueue, srv);
	if (rc < 0) {
		log_error("event=startup-failed error=\"recover: %s\"", strerror(-rc));
		return 1;
	}
	struct control_ops cops = {.flush = server_relay_flush,
	                           .enqueue = server_local_enqueue,
	                           .placing = server_placing,
	                           .place_now = server_place_now,
	                           .arg = srv};
	if (snprintf(path, sizeof path, "%s/ternd.sock", cfg->data_dir) >= (int)sizeof path ||
	    (rc = control_start(&srv->ctl, path, srv->spool, &cops)) < 0)
		log_warn("event=control-socket-failed path=\"%s\" error=\"%s\" note=\"tern queue "
		         "will not work\"", path, strerror(rc < 0 ? -rc : ENAMETOOLONG));

	if (snprintf(path, sizeof path, "%s/maildrop", cfg->data_dir) >= (int)sizeof path ||
	    pickup_new(&srv->pickup, srv->spool, path, server_local_enqueue, srv) < 0) {
		log_error("event=startup-failed error=\"maildrop pickup\"");
		return 1;
	}
	pickup_scan(srv->pickup, cfg);
	if (server_listen_all(srv) < 0)
		return 1;

	log_info("event=started hostname=%s data_dir=%s config=\"%s\"", cfg->hostname,
	         cfg->data_dir, cfg->source);

	ev_run(srv->loop);

	/* Sessions still open after the grace period: say goodbye and close. */
	while (srv->conns) {
		struct conn *c = srv->conns;
		if (c->commit_pending) {
			/* cannot happen after the loop waited for commits; be safe */
			server_conn_unlink(c);
			continue;
		}
		server_conn_close(c, "shutdown");
	}
	control_stop(srv->ctl); /* first: it reads from direct */
	srv->ctl = NULL;
	direct_close(srv->direct);
	srv->direct = NULL;
	relay_stop(srv->rl);
	local_delivery_stop(srv->ld);
	srv->ld = NULL;
	server_cfg_unref(srv->deliver_cfg);
	srv->deliver_cfg = NULL;
	authcheck_stop(srv->authc);
	srv->authc = NULL;
	relay_free(srv->rl);
	srv->rl = NULL;
	srv->ld = NULL;
	spool_close(srv->spool);
	srv->spool = NULL;
	pickup_free(srv->pickup);
	srv->pickup = NULL;
	log_info("event=stopped");
	return 0;
}

void server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	server_close_listeners(srv);
	for (size_t i = 0; i < srv->nlisteners; i++)
		tls_ctx_free(srv->listeners[i].tls);
	srv->nlisteners = 0;
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	ev_loop_free(srv->loop);
	ipcount_free(srv->ipc);
	authlimit_free(srv->authlim);
	server_cfg_unref(srv->cfg);
	free(srv->config_path);
	free(srv);
}
