/* config_int.h - internals shared by the config_*.c files: a small string hash table
 * (case-insensitive keys, stored lowercase), the users and aliases tables built on
 * it, the bounded line reader and the error formatter used by every loader.
 * Not an interface for other modules: include src/policy/config.h instead. */
#ifndef TERN_CONFIG_INT_H
#define TERN_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policy/config.h"

/* Longest line (without its newline) in a config, users or aliases file. */
#define CONFIG_LINE_MAX 4096

struct config_hent {
	char *key;                /* lowercase, owned */
	void *val;                /* owned; freed by the table's val_free */
	unsigned line;            /* line it was defined on (for "duplicate" errors) */
	struct config_hent *next;
};

struct config_htab {
	struct config_hent **b;
	size_t nb;                /* bucket count, a power of two (0 before first insert) */
	size_t n;                 /* entries */
	void (*val_free)(void *);
};

/* The alias value: targets "user" or "user@domain", lowercase, NULL-terminated. */
struct config_targets {
	char **v;
	size_t n;
	size_t cap;
};

struct config_users {
	struct config_htab t;     /* "user" or "user@domain" -> crypt hash (char *) or NULL */
};

struct config_alias {
	struct config_htab t;     /* "name" or "name@domain" -> struct config_targets * */
};

void config_htab_init(struct config_htab *t, void (*val_free)(void *));
void config_htab_free(struct config_htab *t);
/* Insert key (copied, lowercased). -EEXIST if present (*old gets the entry). */
int config_htab_put(struct config_htab *t, const char *key, void *val, unsigned line,
                    struct config_hent **old);
/* Find key, compared case-insensitively. NULL if absent. */
struct config_hent *config_htab_get(const struct config_htab *t, const char *key);

/* Read one line into buf (NUL-terminated, newline and a trailing CR removed).
 * Returns 1 for a line, 0 at end of file, -E2BIG for a line over CONFIG_LINE_MAX,
 * -EINVAL for a NUL byte, -EIO on a read error. */
int config_read_line(FILE *f, char *buf, size_t cap);

/* "file:line: message" into err (line 0: "file: message"). Always returns -EINVAL. */
int config_err(char *err, size_t errsz, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Trim ASCII whitespace at both ends in place; returns the new start. */
char *config_trim(char *s);
void config_lower(char *s);
/* Syntax checks for names kept in the tables (no I/O). */
bool config_is_valid_local(const char *s);
bool config_is_valid_domain(const char *s);

/* Load a users file (docs/CONFIG.md "Users file"). *out is NULL on error. */
int config_users_load(const char *path, struct config_users **out, char *err, size_t errsz);
void config_users_free(struct config_users *u);
/* Load an aliases file (docs/CONFIG.md "Aliases file"). */
int config_aliases_load(const char *path, struct config_alias **out, char *err, size_t errsz);
void config_aliases_free(struct config_alias *a);

/* Load a sender_login_maps file (docs/CONFIG.md "Sender-login map"). */
int config_senders_load(const char *path, struct config_senders **out, char *err,
                        size_t errsz);
void config_senders_free(struct config_senders *s);

/* Parse "10.0.0.0/8, 192.168.1.7 ::1 2001:db8::/32" (spaces and/or commas) and append
 * to v (at most max). A bare address is a /32 or /128. -EINVAL with msg on error. */
int config_cidr_list_parse(const char *val, struct config_cidr *v, size_t max, size_t *n,
                           char *msg, size_t msgsz);

#endif
