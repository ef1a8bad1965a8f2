/* envelope.c - recipient resolution into a spool envelope (see envelope.h). */
#include "server/envelope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config.h"
#include "queue/spool.h"
#include "smtp/smtp_dsn.h"

struct envelope_ctx {
	const struct config *cfg;
	struct spool_envelope *env;
	const char *orig;
	const struct smtp_rcpt_dsn *dsn;
	int err;
};

static void envelope_emit(void *arg, const char *user, const char *domain)
{
	struct envelope_ctx *ec = arg;
	struct spool_envelope *env = ec->env;
	if (ec->err < 0)
		return;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (strcmp(env->rcpts[i].user, user) == 0 && strcmp(env->rcpts[i].domain, domain) == 0)
			return; /* one copy per mailbox */
	struct spool_rcpt *nr = realloc(env->rcpts, (env->nrcpts + 1) * sizeof *nr);
	if (nr == NULL) {
		ec->err = -ENOMEM;
		return;
	}
	env->rcpts = nr;
	struct spool_rcpt *r = &nr[env->nrcpts];
	memset(r, 0, sizeof *r);
	r->orig = strdup(ec->orig);
	r->user = strdup(user);
	r->domain = strdup(domain);
	/* not one of our domains: relay.c delivers it (docs/QUEUE.md "route") */
	r->remote = !ec->cfg->accept_any_domain && !config_is_local_domain(ec->cfg, domain);
	if (ec->dsn != NULL) {
		r->notify = ec->dsn->notify; /* same bits as SPOOL_NOTIFY_* */
		if (ec->dsn->orcpt[0] != '\0' && (r->orcpt = strdup(ec->dsn->orcpt)) == NULL)
			ec->err = -ENOMEM;
	}
	env->nrcpts++;
	if (r->orig == NULL || r->user == NULL || r->domain == NULL)
		ec->err = -ENOMEM;
}

int envelope_add_rcpt(const struct config *cfg, struct spool_envelope *env, const char *user,
                      const char *domain, const char *orig, const struct smtp_rcpt_dsn *dsn)
{
	struct envelope_ctx ec = {.cfg = cfg, .env = env, .orig = orig, .dsn = dsn, .err = 0};
	int rc = config_resolve(cfg, user, domain, envelope_emit, &ec);
	if (rc == -ENOMEM)
		return -ENOMEM;
	if (rc < 0)
		envelope_emit(&ec, "postmaster", domain);
	return ec.err;
}
