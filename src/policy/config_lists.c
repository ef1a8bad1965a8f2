/* config_lists.c - the users file and the aliases file (docs/CONFIG.md), and the
 * policy queries answered from them: known user, alias lookup, recursive resolve.
 * Loading reads files; the queries do no I/O. It never runs commands, opens
 * :include: lists or writes to files named in aliases: such targets are refused. */
#include "policy/config_int.h"
#include "util/limits.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 does not fix an alias depth; sendmail uses 10 (MAXRCRSN) too. */
#define CONFIG_ALIAS_DEPTH 10
/* "local@domain" with both parts at their RFC 5321 maximum, plus NUL. */
#define CONFIG_KEY_MAX (TERN_LOCAL_PART_MAX + 1 + TERN_DOMAIN_MAX + 1)

/* ---- users file ---- */

void config_users_free(struct config_users *u)
{
	if (u == NULL)
		return;
	config_htab_free(&u->t);
	free(u);
}

bool config_is_valid_name(char *s)
{
	char *at = strchr(s, '@');
	bool ok;

	config_lower(s);
	if (at == NULL)
		return config_is_valid_local(s);
	*at = '\0';
	ok = config_is_valid_local(s) && config_is_valid_domain(at + 1);
	*at = '@';
	return ok;
}

static bool config_has_space(const char *s)
{
	for (; *s != '\0'; s++) {
		if (isspace((unsigned char)*s))
			return true;
	}
	return false;
}

int config_users_load(const char *path, struct config_users **out, char *err, size_t errsz)
{
	struct config_reader r;
	struct config_users *u = NULL;
	char *s;
	int rc;

	*out = NULL;
	rc = config_reader_open(&r, path, "users file", CONFIG_READ_ENTRIES, err, errsz);
	if (rc < 0)
		return rc;
	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		rc = config_err(err, errsz, path, 0, "out of memory");
		goto fail;
	}
	config_htab_init(&u->t, free);
	while ((rc = config_reader_next(&r, &s)) > 0) {
		struct config_hent *old = NULL;
		char *colon, *hash = NULL, *name;
		unsigned lineno = r.lineno;

		colon = strchr(s, ':');
		if (colon != NULL) {
			*colon = '\0';
			hash = config_trim(colon + 1);
			if (*hash == '\0') {
				rc = config_err(err, errsz, path, lineno, "empty password hash after ':'");
				goto fail;
			}
			if (strchr(hash, ':') != NULL || config_has_space(hash)) {
				rc = config_err(err, errsz, path, lineno,
				                "bad password hash (expected one crypt(3) string "
				                "without ':' or spaces)");
				goto fail;
			}
		}
		name = config_trim(s);
		if (!config_is_valid_name(name)) {
			rc = config_err(err, errsz, path, lineno,
			                "bad user name '%s' (expected user or user@domain)", name);
			goto fail;
		}
		if (hash != NULL) {
			hash = strdup(hash);
			if (hash == NULL) {
				rc = config_err(err, errsz, path, lineno, "out of memory");
				goto fail;
			}
		}
		rc = config_htab_put(&u->t, name, hash, lineno, &old);
		if (rc < 0) {
			free(hash);
			if (rc == -EEXIST)
				rc = config_err(err, errsz, path, lineno,
				                "duplicate user '%s' (first on line %u)", name, old->line);
			else
				rc = config_err(err, errsz, path, lineno, "out of memory");
			goto fail;
		}
	}
	if (rc < 0)
		goto fail;
	config_reader_close(&r);
	*out = u;
	return 0;
fail:
	config_reader_close(&r);
	config_users_free(u);
	return rc < 0 ? rc : -EINVAL;
}

/* ---- aliases file ---- */

void config_targets_free(void *p)
{
	struct config_targets *t = p;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	free(t);
}

void config_aliases_free(struct config_alias *a)
{
	if (a == NULL)
		return;
	config_htab_free(&a->t);
	free(a);
}

int config_targets_add(struct config_targets *t, const char *s)
{
	char *dup;

	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->v[i], s) == 0)
			return 0; /* listed twice: once is enough */
	}
	if (t->n + 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		char **v = realloc(t->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	dup = strdup(s);
	if (dup == NULL)
		return -ENOMEM;
	t->v[t->n++] = dup;
	t->v[t->n] = NULL;
	return 0;
}

/* Parse the comma separated targets in s into t. */
static int config_targets_parse(struct config_targets *t, char *s, const char *path,
                                unsigned lineno, char *err, size_t errsz)
{
	char *tg;

	while ((tg = config_list_next(&s)) != NULL) {
		if (*tg == '\0')
			continue;
		if (*tg == '|')
			return config_err(err, errsz, path, lineno,
			                  "pipe target '%s' refused: tern never runs commands "
			                  "from aliases", tg);
		if (*tg == '/')
			return config_err(err, errsz, path, lineno,
			                  "file target '%s' refused: tern delivers only to "
			                  "mailboxes", tg);
		if (strncasecmp(tg, ":include:", 9) == 0)
			return config_err(err, errsz, path, lineno,
			                  ":include: lists are not supported: list the "
			                  "addresses in the aliases file itself");
		if (*tg == '"')
			return config_err(err, errsz, path, lineno,
			                  "quoted target %s is not supported", tg);
		if (!config_is_valid_name(tg))
			return config_err(err, errsz, path, lineno,
			                  "bad target '%s' (expected user or user@domain)", tg);
		if (config_targets_add(t, tg) < 0)
			return config_err(err, errsz, path, lineno, "out of memory");
	}
	return 0;
}

int config_aliases_load(const char *path, struct config_alias **out, char *err, size_t errsz)
{
	struct config_alias *a = NULL;
	struct config_targets *cur = NULL;
	struct config_hent *cur_ent = NULL;
	struct config_reader r;
	char *line;
	int rc;

	*out = NULL;
	rc = config_reader_open(&r, path, "aliases file", CONFIG_READ_RAW, err, errsz);
	if (rc < 0)
		return rc;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		rc = config_err(err, errsz, path, 0, "out of memory");
		goto fail;
	}
	config_htab_init(&a->t, config_targets_free);
	while ((rc = config_reader_next(&r, &line)) > 0) {
		struct config_hent *old = NULL;
		char *s, *colon, *name;
		unsigned lineno = r.lineno;
		bool cont;

		cont = line[0] == ' ' || line[0] == '\t';
		s = config_trim(line);
		if (*s == '#')
			continue; /* comments may sit between continuation lines */
		if (*s == '\0') {
			cont = false; /* a blank line ends the entry */
		}
		if (!cont && cur != NULL && cur->n == 0) {
			rc = config_err(err, errsz, path, cur_ent->line, "alias '%s' has no targets",
			                cur_ent->key);
			goto fail;
		}
		if (*s == '\0') {
			cur = NULL;
			continue;
		}
		if (cont) {
			if (cur == NULL) {
				rc = config_err(err, errsz, path, lineno,
				                "continuation line without an alias name above it");
				goto fail;
			}
			rc = config_targets_parse(cur, s, path, lineno, err, errsz);
			if (rc < 0)
				goto fail;
			continue;
		}
		colon = strchr(s, ':');
		if (colon == NULL) {
			rc = config_err(err, errsz, path, lineno,
			                "expected 'name: target, ...' (missing ':')");
			goto fail;
		}
		*colon = '\0';
		name = config_trim(s);
		if (*name == '\0') {
			rc = config_err(err, errsz, path, lineno, "empty alias name");
			goto fail;
		}
		if (!config_is_valid_name(name)) {
			rc = config_err(err, errsz, path, lineno,
			                "bad alias name '%s' (expected name or name@domain)", name);
			goto fail;
		}
		cur = calloc(1, sizeof(*cur));
		if (cur == NULL) {
			rc = config_err(err, errsz, path, lineno, "out of memory");
			goto fail;
		}
		rc = config_htab_put(&a->t, name, cur, lineno, &old);
		if (rc < 0) {
			config_targets_free(cur);
			cur = NULL;
			if (rc == -EEXIST)
				rc = config_err(err, errsz, path, lineno,
				                "duplicate alias '%s' (first on line %u)", name, old->line);
			else
				rc = config_err(err, errsz, path, lineno, "out of memory");
			goto fail;
		}
		cur_ent = config_htab_get(&a->t, name);
		rc = config_targets_parse(cur, colon + 1, path, lineno, err, errsz);
		if (rc < 0)
			goto fail;
	}
	if (rc < 0)
		goto fail;
	if (cur != NULL && cur->n == 0) {
		rc = config_err(err, errsz, path, cur_ent->line, "alias '%s' has no targets",
		                cur_ent->key);
		goto fail;
	}
	config_reader_close(&r);
	*out = a;
	return 0;
fail:
	config_reader_close(&r);
	config_aliases_free(a);
	return rc < 0 ? rc : -EINVAL;
}

/* ---- queries ---- */

/* "user@domain" lowercased into out (domain without a trailing dot). -1 if too long. */
static int config_make_key(char *out, size_t outsz, const char *user, const char *domain)
{
	size_t ul = strlen(user), dl = domain ? strlen(domain) : 0;
	int n;

	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (ul == 0 || ul > TERN_LOCAL_PART_MAX || dl > TERN_DOMAIN_MAX || strchr(user, '@'))
		return -1;
	if (dl > 0)
		n = snprintf(out, outsz, "%s@%.*s", user, (int)dl, domain);
	else
		n = snprintf(out, outsz, "%s", user);
	if (n < 0 || (size_t)n >= outsz)
		return -1;
	config_lower(out);
	return 0;
}

static bool config_user_exists(const struct config *c, const char *user, const char *domain)
{
	char key[CONFIG_KEY_MAX];

	if (c->users == NULL)
		return false;
	if (config_make_key(key, sizeof(key), user, domain) < 0)
		return false;
	if (config_htab_get(&c->users->t, key) != NULL)
		return true;
	return config_htab_get(&c->users->t, user) != NULL;
}

/* Targets for user@domain, else for the bare user. */
static const struct config_targets *config_alias_find(const struct config *c, const char *user,
                                                      const char *domain)
{
	char key[CONFIG_KEY_MAX];
	struct config_hent *e;

	if (c->aliases == NULL)
		return NULL;
	if (domain != NULL && domain[0] != '\0' &&
	    config_make_key(key, sizeof(key), user, domain) == 0) {
		e = config_htab_get(&c->aliases->t, key);
		if (e != NULL)
			return e->val;
	}
	e = config_htab_get(&c->aliases->t, user);
	return e ? e->val : NULL;
}

const char *const *config_alias_lookup(const struct config *c, const char *name, size_t *n)
{
	struct config_hent *e;
	struct config_targets *t;

	if (n != NULL)
		*n = 0;
	if (c == NULL || c->aliases == NULL || name == NULL)
		return NULL;
	e = config_htab_get(&c->aliases->t, name);
	if (e == NULL)
		return NULL;
	t = e->val;
	if (n != NULL)
		*n = t->n;
	return (const char *const *)t->v;
}

const char *config_user_hash(const struct config *c, const char *user, const char *domain)
{
	char key[CONFIG_KEY_MAX];
	struct config_hent *e = NULL;

	if (c == NULL || c->users == NULL || user == NULL)
		return NULL;
	if (domain != NULL && domain[0] != '\0' &&
	    config_make_key(key, sizeof(key), user, domain) == 0)
		e = config_htab_get(&c->users->t, key);
	if (e == NULL)
		e = config_htab_get(&c->users->t, user);
	return e ? e->val : NULL;
}

static bool config_is_postmaster(const char *user)
{
	return strcasecmp(user, "postmaster") == 0;
}

bool config_is_known_user(const struct config *c, const char *user, const char *domain)
{
	if (c == NULL || user == NULL || user[0] == '\0')
		return false;
	if (!c->check_users)
		return true;
	if (config_is_postmaster(user))
		return true;
	if (config_user_exists(c, user, domain))
		return true;
	return config_alias_find(c, user, domain) != NULL;
}

struct config_resolve_ctx {
	const struct config *c;
	void (*emit)(void *arg, const char *user, const char *domain);
	void *arg;
	struct config_htab seen;                          /* mailboxes emitted, and
	                                                     ">name": aliases expanded */
	char path[CONFIG_ALIAS_DEPTH + 1][CONFIG_KEY_MAX]; /* names being expanded */
	int count;
	int rc;                                           /* 0 or -ENOMEM */
};

/* A final mailbox: emit it once if it can take mail. */
static void config_resolve_mailbox(struct config_resolve_ctx *x, const char *key)
{
	char user[CONFIG_KEY_MAX];
	const char *at = strchr(key, '@');
	size_t ul = (size_t)(at - key);
	int rc;

	memcpy(user, key, ul);
	user[ul] = '\0';
	if (x->c->check_users && config_is_local_domain(x->c, at + 1) &&
	    !config_user_exists(x->c, user, at + 1))
		return; /* unknown local user: dropped (the top level may still be postmaster) */
	rc = config_htab_put(&x->seen, key, NULL, 0, NULL);
	if (rc == -EEXIST)
		return;
	if (rc < 0) {
		x->rc = rc;
		return;
	}
	x->count++;
	if (x->emit != NULL)
		x->emit(x->arg, user, at + 1);
}

static void config_resolve_one(struct config_resolve_ctx *x, const char *user,
                               const char *domain, int depth)
{
	const struct config_targets *t;
	char *key = x->path[depth];

	if (x->rc < 0 || config_make_key(key, CONFIG_KEY_MAX, user, domain) < 0)
		return;
	for (int i = 0; i < depth; i++) {
		if (strcmp(x->path[i], key) == 0) {
			/* a loop back to a name being expanded: that name is a mailbox
			 * ("bob: bob, bob@elsewhere" keeps a local copy) */
			config_resolve_mailbox(x, key);
			return;
		}
	}
	t = depth < CONFIG_ALIAS_DEPTH ? config_alias_find(x->c, user, domain) : NULL;
	if (t == NULL) {
		config_resolve_mailbox(x, key);
		return;
	}
	{
		/* expand each alias once per resolve: shared sub-lists would otherwise
		 * multiply the work at every level ('>' marks "expanded" in the set) */
		char mark[CONFIG_KEY_MAX + 1];
		int rc;

		snprintf(mark, sizeof(mark), ">%s", key);
		rc = config_htab_put(&x->seen, mark, NULL, 0, NULL);
		if (rc == -EEXIST)
			return;
		if (rc < 0) {
			x->rc = rc;
			return;
		}
	}
	for (size_t i = 0; i < t->n && x->rc == 0; i++) {
		char tu[CONFIG_KEY_MAX];
		const char *at = strchr(t->v[i], '@');
		const char *td = domain;

		if (at != NULL) {
			size_t ul = (size_t)(at - t->v[i]);

			memcpy(tu, t->v[i], ul);
			tu[ul] = '\0';
			td = at + 1;
		} else {
			snprintf(tu, sizeof(tu), "%s", t->v[i]);
		}
		config_resolve_one(x, tu, td, depth + 1);
	}
}

int config_resolve(const struct config *c, const char *user, const char *domain,
                   void (*emit)(void *arg, const char *user, const char *domain), void *arg)
{
	struct config_resolve_ctx *x;
	char key[CONFIG_KEY_MAX];
	int rc;

	if (c == NULL || user == NULL || domain == NULL || domain[0] == '\0' ||
	    config_make_key(key, sizeof(key), user, domain) < 0)
		return -1;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -ENOMEM;
	x->c = c;
	x->emit = emit;
	x->arg = arg;
	config_htab_init(&x->seen, NULL);
	config_resolve_one(x, user, domain, 0);
	rc = x->rc < 0 ? x->rc : x->count;
	if (rc == 0 && config_is_postmaster(user)) {
		/* RFC 5321 4.5.1: postmaster is always accepted */
		const char *d = strchr(key, '@') + 1;

		if (emit != NULL)
			emit(arg, "postmaster", d);
		rc = 1;
	}
	config_htab_free(&x->seen);
	free(x);
	return rc == 0 ? -1 : rc;
}
