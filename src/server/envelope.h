/* envelope.h - turn accepted recipients into spool envelope recipients: alias
 * expansion, one copy per final mailbox, routing. The one place where the daemon
 * decides where a recipient's copy goes, used by SMTP sessions (server.c) and by
 * the maildrop pickup (pickup.c). No I/O. */
#ifndef TERN_ENVELOPE_H
#define TERN_ENVELOPE_H

struct config;
struct smtp_rcpt_dsn;
struct spool_envelope;

/* Resolve user@domain (lowercase, unquoted) and append each final mailbox to env,
 * remembering orig (the address as the client gave it) and the recipient's DSN
 * parameters (NOTIFY, ORCPT; dsn may be NULL) on each. A recipient that no longer
 * resolves (the config changed since RCPT) goes to postmaster@domain rather than
 * being lost. Returns 0 or -ENOMEM. */
int envelope_add_rcpt(const struct config *cfg, struct spool_envelope *env, const char *user,
                      const char *domain, const char *orig, const struct smtp_rcpt_dsn *dsn);

#endif
