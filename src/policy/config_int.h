/* config_int.h - internals shared by the config_*.c files: a small string hash table
 * (case-insensitive keys, stored lowercase), the users and aliases tables built on
 * it, the line reader and the error formatter used by every loader.
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

/* A list of "user" or "user@domain", lowercase, NULL-terminated: an alias's targets,
 * a sender's logins. */
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

/* How config_reader_next hands out lines. */
enum config_read_mode {
	CONFIG_READ_RAW,      /* every line as read (newline and a trailing CR removed) */
	CONFIG_READ_ENTRIES,  /* trimmed; blank lines and lines starting with '#' skipped */
	CONFIG_READ_SETTINGS, /* comment cut off ('#' at the start or after a space or
	                         tab), then trimmed; blank lines skipped */
};

/* One line reader for every config file: opens, reads bounded lines, drops comments
 * as its mode says and reports "file:line: ..." errors. The caller owns the struct. */
struct config_reader {
	FILE *f;
	const char *path;         /* borrowed: must outlive the reader */
	char *buf;                /* CONFIG_LINE_MAX + 2 */
	unsigned lineno;          /* of the line last returned (or of the error) */
	enum config_read_mode mode;
	char *err;                /* borrowed */
	size_t errsz;
};

/* Open path. what names it in the error ("users file": "path: cannot open users
 * file: No such file or directory"; NULL: "path: cannot open: ..."). Returns 0, or
 * -errno when the file cannot be opened, -EINVAL when out of memory (err set);
 * on error nothing is left to close. */
int config_reader_open(struct config_reader *r, const char *path, const char *what,
                       enum config_read_mode mode, char *err, size_t errsz);
/* Next line: 1 with *line (in the reader's buffer, valid until the next call; the
 * caller may change it in place), 0 at end of file, or -EINVAL with err set to
 * "path:line: line too long (over 4096 bytes)", "NUL byte in line" or "read error". */
int config_reader_next(struct config_reader *r, char **line);
/* Close the file and free the buffer; a zeroed or closed reader is fine. */
void config_reader_close(struct config_reader *r);

/* "file:line: message" into err (line 0: "file: message"). Always returns -EINVAL. */
int config_err(char *err, size_t errsz, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Trim ASCII whitespace at both ends in place; returns the new start. */
char *config_trim(char *s);
/* The next item of the comma-separated list at *p, cut off in place and trimmed (""
 * for an empty item); *p moves past it. NULL once the list is used up. */
char *config_list_next(char **p);
void config_lower(char *s);
/* Syntax checks for names kept in the tables (no I/O). */
bool config_is_valid_local(const char *s);
bool config_is_valid_domain(const char *s);
/* "local" or "local@domain" as written in our files; lowercases s in place. */
bool config_is_valid_name(char *s);

/* A list of names, deduplicated (users, alias targets, sender logins). */
int config_targets_add(struct config_targets *t, const char *s); /* 0 or -ENOMEM */
void config_targets_free(void *p); /* a struct config_targets *; NULL is fine */

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
