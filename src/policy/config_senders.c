/* config_senders.c - the sender-login map (sender_login_maps = FILE) and the
 * built-in rule sender_must_match_login: which AUTH logins may use which envelope
 * senders (docs/CONFIG.md "Sender-login map"). Loading reads the file; the query
 * does no I/O. It does not decide what to answer: server.c replies 553 5.7.1.
 *
 * File: one entry per line, `sender: login, login, ...`, where sender is
 * `local@domain` or `@domain` (every address of the domain without its own entry)
 * and a login is a users-file name (`user` or `user@domain`). `#` starts a comment
 * line; blank lines are ignored; no continuation lines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/config_int.h"

struct config_senders {
	struct config_htab t; /* "local@domain" or "@domain" -> struct config_targets *
	                         (the logins that may use it) */
};

void config_senders_free(struct config_senders *s)
{
	if (s == NULL)
		return;
	config_htab_free(&s->t);
	free(s);
}

/* "local@domain" or "@domain", lowercased in place. */
static bool config_senders_valid_key(char *k)
{
	char *at = strrchr(k, '@');
	bool ok;

	if (at == NULL)
		return false;
	config_lower(k);
	if (!config_is_valid_domain(at + 1))
		return false;
	if (at == k)
		return true;
	*at = '\0';
	ok = config_is_valid_local(k);
	*at = '@';
	return ok;
}

/* Parse one "key: login, ..." line (s trimmed, not a comment) into t. */
static int config_senders_line(struct config_htab *t, char *s, const char *path,
                               unsigned lineno, char *err, size_t errsz)
{
	struct config_targets *o = NULL;
	struct config_hent *old = NULL;
	char *colon = strchr(s, ':'), *key, *p, *login;
	int rc;

	if (colon == NULL)
		return config_err(err, errsz, path, lineno,
		                  "expected 'sender: login, ...' (missing ':')");
	*colon = '\0';
	key = config_trim(s);
	if (!config_senders_valid_key(key))
		return config_err(err, errsz, path, lineno,
		                  "bad sender '%s' (expected local@domain or @domain)", key);
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return config_err(err, errsz, path, lineno, "out of memory");
	for (p = colon + 1; (login = config_list_next(&p)) != NULL;) {
		if (*login == '\0')
			continue;
		if (!config_is_valid_name(login)) {
			rc = config_err(err, errsz, path, lineno,
			                "bad login '%s' (expected user or user@domain)", login);
			goto fail;
		}
		if (config_targets_add(o, login) < 0) {
			rc = config_err(err, errsz, path, lineno, "out of memory");
			goto fail;
		}
	}
	if (o->n == 0) {
		rc = config_err(err, errsz, path, lineno, "sender '%s' has no logins", key);
		goto fail;
	}
	rc = config_htab_put(t, key, o, lineno, &old);
	if (rc == -EEXIST) {
		rc = config_err(err, errsz, path, lineno, "duplicate sender '%s' (first on line %u)",
		                key, old->line);
		goto fail;
	}
	if (rc < 0) {
		rc = config_err(err, errsz, path, lineno, "out of memory");
		goto fail;
	}
	return 0;
fail:
	config_targets_free(o);
	return rc;
}

int config_senders_load(const char *path, struct config_senders **out, char *err,
                        size_t errsz)
{
	struct config_reader r;
	struct config_senders *sm = NULL;
	char *s;
	int rc;

	*out = NULL;
	rc = config_reader_open(&r, path, "sender_login_maps file", CONFIG_READ_ENTRIES, err,
	                        errsz);
	if (rc < 0)
		return rc;
	sm = calloc(1, sizeof(*sm));
	if (sm == NULL) {
		rc = config_err(err, errsz, path, 0, "out of memory");
		goto fail;
	}
	config_htab_init(&sm->t, config_targets_free);
	while ((rc = config_reader_next(&r, &s)) > 0) {
		rc = config_senders_line(&sm->t, s, path, r.lineno, err, errsz);
		if (rc < 0)
			goto fail;
	}
	if (rc < 0)
		goto fail;
	config_reader_close(&r);
	*out = sm;
	return 0;
fail:
	config_reader_close(&r);
	config_senders_free(sm);
	return rc < 0 ? rc : -EINVAL;
}

bool config_has_sender_rules(const struct config *c)
{
	return c != NULL && (c->senders != NULL || c->sender_must_match_login);
}

static bool config_senders_has_login(const struct config_targets *o, const char *login)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcasecmp(o->v[i], login) == 0)
			return true;
	return false;
}

/* sender_must_match_login: login "u@d" owns exactly u@d; login "u" owns u@D for
 * every local domain D. */
static bool config_sender_is_login(const struct config *c, const char *login, const char *local,
                                   const char *domain)
{
	const char *at = strrchr(login, '@');
	size_t ll = strlen(local);

	if (at != NULL)
		return (size_t)(at - login) == ll && strncasecmp(login, local, ll) == 0 &&
		       strcasecmp(at + 1, domain) == 0;
	return strcasecmp(login, local) == 0 &&
	       (c->accept_any_domain || config_is_local_domain(c, domain));
}

bool config_sender_login_ok(const struct config *c, const char *login, const char *local,
                            const char *domain)
{
	char key[CONFIG_LINE_MAX];
	struct config_hent *e = NULL;
	int n;

	if (!config_has_sender_rules(c))
		return true;
	if (c->sender_must_match_login && config_sender_is_login(c, login, local, domain))
		return true;
	if (c->senders == NULL)
		return false;
	n = snprintf(key, sizeof(key), "%s@%s", local, domain);
	if (n > 0 && (size_t)n < sizeof(key))
		e = config_htab_get(&c->senders->t, key);
	if (e == NULL) {
		n = snprintf(key, sizeof(key), "@%s", domain);
		if (n > 0 && (size_t)n < sizeof(key))
			e = config_htab_get(&c->senders->t, key);
	}
	return e != NULL && config_senders_has_login(e->val, login);
}
