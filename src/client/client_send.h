/* client_send.h - the pieces of `tern send` that `tern sendmail` reuses: transport
 * options, password lookup and "submit one message over SMTP". Exit codes are
 * sysexits(3); errors are printed to stderr as "tern: ...". */
#ifndef TERN_CLIENT_SEND_H
#define TERN_CLIENT_SEND_H

#include <stdbool.h>
#include <stddef.h>

#include "client/client_mime.h"
#include "client/client_smtp.h"
#include "smtp/smtp_dsn.h"

#define CLIENT_SERVER_DEFAULT "127.0.0.1:2525" /* ternd's built-in default listener */

struct client_send_opts {
	const char *server;        /* NULL: $TERN_SERVER or CLIENT_SERVER_DEFAULT */
	enum client_tls_mode tls;
	bool insecure;
	const char *helo;
	const char *auth_user;
	const char *password_file;
	char password[512];
	bool verbose;
	bool quiet_tempfail;       /* sendmail: a 4xx/network failure is not reported */
	bool quiet;                /* sendmail -bs: no failure is printed (the caller
	                              passes it on as an SMTP reply) */
	int timeout_s;
	const struct client_dsn *dsn; /* RFC 3461 parameters to pass on; NULL: none */
	/* Filled by client_send_submit when not NULL: the last reply the server gave,
	 * and the one-line failure ("" after a success). */
	struct client_reply *last_reply;
	char *err_out;
	size_t err_out_sz;
};

/* Either a composition (built after EHLO so 8BITMIME is known) or raw CRLF text. */
struct client_msg_source {
	const struct client_compose *compose;
	const char *raw;
	size_t raw_len;
};

/* A struct client_dsn filled from options as a user types them (tern send --notify
 * --ret --envid; sendmail -N -R -V), with room for the encoded ENVID. */
struct client_dsn_opts {
	struct client_dsn d;
	char envid[SMTP_DSN_ENVID_MAX + 1];
};
/* Set what is not NULL: NOTIFY words, RET full|hdrs (any case), ENVID as typed
 * (printable ASCII, xtext-encoded here). 0, or -EINVAL with the reason in err. */
int client_dsn_opts_set(struct client_dsn_opts *d, const char *notify, const char *ret,
                        const char *envid, char *err, size_t errsz);

void client_send_opts_init(struct client_send_opts *o);
void client_send_opts_free(struct client_send_opts *o); /* wipes the password */
int client_send_parse_tls(const char *v, enum client_tls_mode *out);
/* Fill o->password when o->auth_user is set; 0 or a sysexits code. */
int client_send_password(struct client_send_opts *o);
int client_send_server(const char *spec, enum client_tls_mode tls, char *host, size_t hostsz,
                       char *port, size_t portsz);
/* One SMTP session delivering the message; returns a sysexits code. */
int client_send_submit(const struct client_send_opts *o, const char *from, char *const *rcpts,
                       size_t nrcpts, const struct client_msg_source *src);

#endif
