/* config_relay.h - the outbound (relay) settings of the configuration: resolver,
 * remote port, smarthost, transport map, retry schedule, limits. Parsed by
 * config_relay.c from the same file as the rest (docs/CONFIG.md "Relay"). */
#ifndef TERN_CONFIG_RELAY_H
#define TERN_CONFIG_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_RELAY_HOST_MAX 300

struct config_transport {
	bool smarthost;                  /* the smarthost (AUTH and smarthost_tls apply) */
	char domain[256];                /* lowercase; "*" never (use smarthost) */
	char host[CONFIG_RELAY_HOST_MAX]; /* name or IP literal (v6 without brackets) */
	unsigned port;
};

struct config_relay {
	char resolver[CONFIG_RELAY_HOST_MAX]; /* "IP:PORT" or "[v6]:PORT"; "" = resolv.conf */
	unsigned port;                        /* remote SMTP port for MX hosts, default 25 */
	char smarthost[CONFIG_RELAY_HOST_MAX]; /* host; "" = none */
	unsigned smarthost_port;
	bool smarthost_implicit_tls;          /* smarthost_tls = implicit (else STARTTLS) */
	char auth_user[256];                  /* from smarthost_auth FILE ("user:password") */
	char auth_pass[256];
	struct config_transport *transports;
	size_t ntransports;
	unsigned retry_first_s;               /* default 300 */
	unsigned retry_max_s;                 /* default 3600 */
	unsigned give_up_s;                   /* default 5 days */
	unsigned delay_warning_s;             /* default 4 h; 0 = never */
	unsigned threads;                     /* relay workers, default 4 */
	unsigned timeout_s;                   /* connect and per-reply timeout, default 300 */
	unsigned max_per_destination;         /* concurrent connections per domain, default 5 */
	unsigned max_msgs_per_conn;           /* messages on one connection, default 100 */
	bool starttls;                        /* opportunistic STARTTLS, default yes */
	bool tls_verify;                      /* verify the server's certificate and name;
	                                         a failure defers (no fallback to clear) */
	char tls_ca_file[1024];               /* CA bundle for tls_verify; "" = system */
	unsigned seen;                        /* bit per key given (duplicate detection) */
};

void config_relay_defaults(struct config_relay *r);
void config_relay_free(struct config_relay *r);
/* Parse one "key = value" if key is a relay key: 0 ok, -ENOENT not a relay key,
 * -EINVAL with a message in msg. */
int config_relay_assign(struct config_relay *r, const char *key, const char *val,
                        const char *dir, char *msg, size_t msgsz);
/* Route for a domain: transport entry, else smarthost, else NULL (use MX). */
const struct config_transport *config_relay_route(const struct config_relay *r,
                                                  const char *domain,
                                                  struct config_transport *tmp);

#endif
