/* config.h - ternd configuration: the built-in default, the INI-like file
 * (docs/CONFIG.md), and the policy questions answered from it (local domain? known
 * user? alias expansion?). Loading does file I/O; the queries do none. */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/config_relay.h"

#define CONFIG_LISTENERS_MAX 16

enum config_tls { CONFIG_TLS_NONE, CONFIG_TLS_STARTTLS, CONFIG_TLS_IMPLICIT };

/* tls_cert_for (docs/CONFIG.md "Several certificates (SNI)"): a certificate and key
 * sent to clients whose SNI server name matches one of names. */
#define CONFIG_TLS_PAIRS_MAX 256
#define CONFIG_TLS_NAMES_MAX 1024
struct config_tls_pair {
	char names[CONFIG_TLS_NAMES_MAX]; /* lowercase patterns separated by one space:
	                                     "mx.example.org *.example.org" */
	char cert[512];               /* PEM certificate chain path */
	char key[512];                /* PEM private key path */
	unsigned line;                /* where it was given in the config file */
};

struct config_listener {
	char name[300];               /* as written: "127.0.0.1:2525", "[::1]:25" */
	struct sockaddr_storage sa;   /* resolved numeric address */
	socklen_t salen;
	bool lenient_lf;              /* accept bare LF as line end (smuggling risk) */
	bool vrfy;                    /* VRFY enabled */
	bool expn;                    /* EXPN enabled */
	bool require_helo;            /* MAIL before HELO/EHLO refused */
	unsigned greet_delay;         /* seconds to wait before the 220; a client that
	                                 talks meanwhile gets 554 5.5.0 (0 = greet at once) */
	/* TLS and AUTH (issue 5; docs/CONFIG.md "TLS, AUTH and submission") */
	enum config_tls tls;          /* none, starttls or implicit (default: starttls when a
	                                 certificate is given, else none) */
	char tls_cert[512];           /* PEM certificate chain path ("" = none) */
	char tls_key[512];            /* PEM private key path */
	unsigned tls_cert_line;       /* line of tls_cert (0: not from a file) */
	struct config_tls_pair *tls_pairs; /* tls_cert_for, in file order; owned by the
	                                      config (a copy of the struct borrows it for
	                                      the config's lifetime); NULL if none */
	size_t ntls_pairs;
	bool require_tls;             /* MAIL and AUTH before STARTTLS: 530 5.7.0 */
	bool auth;                    /* AUTH offered (needs a users file) */
	bool allow_plaintext_auth;    /* AUTH also without TLS (loopback, tests) */
	bool submission;              /* MAIL needs AUTH first (530 5.7.0) */
	unsigned line;                /* line of the [listener] header (0: not from a file) */
};

/* A trusted network (CIDR) allowed to relay without AUTH. */
struct config_cidr {
	int family;                   /* AF_INET or AF_INET6 */
	unsigned char addr[16];       /* network address, host bits zero */
	unsigned prefix;              /* 0..32 or 0..128 */
};
#define CONFIG_CIDR_MAX 64

struct config_alias; /* opaque: name -> list of targets */
struct config_users; /* opaque: set of known users (user@domain or user) */
struct config_senders; /* opaque: sender_login_maps (sender or @domain -> logins) */

struct config {
	char source[512];             /* file path, or "(built-in default)" */
	char hostname[256];           /* our name; default gethostname() */
	char data_dir[512];           /* spool and mail root; default "./var" */
	char mailbox_pattern[512];    /* under data_dir unless absolute; %d domain, %u user,
	                                 default "mail/%d/%u/Maildir" */
	bool accept_any_domain;       /* capture mode: every domain is local (default) */
	char **local_domains;         /* lowercase, NULL-terminated; may be empty */
	size_t nlocal_domains;
	bool check_users;             /* recipients must be known users or aliases */
	struct config_users *users;   /* from users= file; NULL if none */
	struct config_alias *aliases; /* from aliases= file; NULL if none */

	uint64_t max_msg_size;        /* bytes, default TERN_MSG_SIZE_DEFAULT */
	unsigned max_rcpts;           /* default TERN_RCPTS_DEFAULT, min TERN_RCPTS_MIN */
	unsigned max_errors;          /* default TERN_ERRORS_DEFAULT */
	unsigned cmd_timeout;         /* seconds, default TERN_CMD_TIMEOUT_DEFAULT_S */
	unsigned max_conn;            /* total concurrent sessions */
	unsigned max_conn_per_ip;     /* per client IP */
	unsigned delivery_threads;    /* local delivery workers, default 2 */
	bool use_syslog;              /* log to syslog instead of stderr */
	bool relaxed;                 /* durability = relaxed: local mail acknowledged
	                                 without any sync (capture/test servers) */
	struct config_cidr trusted[CONFIG_CIDR_MAX]; /* trusted_networks (relay without AUTH) */
	size_t ntrusted;
	unsigned auth_fail_delay;     /* seconds added per failed AUTH in a session */
	unsigned auth_max_failures;   /* failed AUTHs in a session before 421 and close */
	unsigned auth_ip_max_failures; /* failed AUTHs per client IP (IPv6: /64) within
	                                  auth_ip_window before 454 4.7.0 (0: off) */
	unsigned auth_ip_window;      /* seconds of the sliding window */
	struct config_senders *senders; /* sender_login_maps: address or @domain -> owners */
	bool sender_must_match_login; /* MAIL FROM must be the login (user or user@domain) */
	char run_user[64];            /* user= : drop to it when started as root ("": "tern"
	                                 if that user exists) */
	struct config_relay relay;    /* outbound delivery (config_relay.h) */

	struct config_listener listeners[CONFIG_LISTENERS_MAX];
	size_t nlisteners;
};

/* The built-in default: 127.0.0.1:2525, lenient_lf on, every domain local, ./var. */
struct config *config_default(void);
/* Load a file. On error returns NULL and writes "file:line: what is wrong" to err. */
struct config *config_load(const char *path, char *err, size_t errsz);
void config_free(struct config *c);

/* Add/replace listeners from a "ADDR:PORT" string ("[v6]:port" for IPv6).
 * replace=true drops the configured ones first (first --listen on the command line). */
int config_add_listener(struct config *c, const char *spec, bool replace, char *err, size_t errsz);

/* The listener called name ("127.0.0.1:25"), or NULL. */
const struct config_listener *config_find_listener(const struct config *c, const char *name);

/* Is the client address in trusted_networks? */
bool config_is_trusted(const struct config *c, const struct sockaddr *sa);

/* Policy queries (no I/O). Domain compare is case-insensitive. */
bool config_is_local_domain(const struct config *c, const char *domain);
/* Is user@domain a deliverable local mailbox (a user, or anything when !check_users)? */
bool config_is_known_user(const struct config *c, const char *user, const char *domain);
/* Alias targets for name (local part, lowercase) or NULL; *n gets the count. Targets
 * are "user" (same domain) or "user@domain". Not recursive: see config_resolve. */
const char *const *config_alias_lookup(const struct config *c, const char *name, size_t *n);
/* The crypt(3) hash given for user@domain (else for the bare user) in the users
 * file, or NULL (no such user, or listed without a hash). Valid while c lives. */
const char *config_user_hash(const struct config *c, const char *user, const char *domain);
/* May the AUTH login `login` use local@domain as MAIL FROM? True when no
 * sender rule is configured (neither sender_login_maps nor sender_must_match_login),
 * when the map lists login for sender (or for @domain if sender has no entry of its
 * own), or when sender_must_match_login and sender is login itself (login with a
 * domain) or login@D for a local domain D (login without one). Case-insensitive. */
bool config_sender_login_ok(const struct config *c, const char *login, const char *local,
                            const char *domain);
bool config_has_sender_rules(const struct config *c);

/* Resolve a recipient to final mailboxes, expanding aliases recursively (depth 10,
 * loops cut). Calls emit(arg, user, domain) per mailbox; returns count or -1 when
 * the recipient is unknown (-ENOMEM if memory ran out). Emitted names are lowercase,
 * each mailbox at most once. */
int config_resolve(const struct config *c, const char *user, const char *domain,
                   void (*emit)(void *arg, const char *user, const char *domain), void *arg);

#endif
