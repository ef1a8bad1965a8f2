/* config_table.c - small helpers for the config loaders: a chained string hash table
 * with case-insensitive keys (FNV-1a over the lowercased key), the line reader every
 * loader uses (open, bounded lines, comments, "file:line:" errors), the error
 * formatter and name syntax checks.
 * It does not know about any file format; config.c and config_lists.c do. */
#include "policy/config_int.h"
#include "util/limits.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t config_htab_hash(const char *key)
{
	uint64_t h = 1469598103934665603ull;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= (uint64_t)tolower(*p);
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

void config_htab_init(struct config_htab *t, void (*val_free)(void *))
{
	t->b = NULL;
	t->nb = 0;
	t->n = 0;
	t->val_free = val_free;
}

void config_htab_free(struct config_htab *t)
{
	if (t == NULL || t->b == NULL)
		return;
	for (size_t i = 0; i < t->nb; i++) {
		struct config_hent *e = t->b[i];

		while (e != NULL) {
			struct config_hent *next = e->next;

			if (t->val_free != NULL)
				t->val_free(e->val);
			free(e->key);
			free(e);
			e = next;
		}
	}
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

static int config_htab_grow(struct config_htab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 16;
	struct config_hent **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->nb; i++) {
		struct config_hent *e = t->b[i];

		while (e != NULL) {
			struct config_hent *next = e->next;
			size_t j = config_htab_hash(e->key) & (nb - 1);

			e->next = b[j];
			b[j] = e;
			e = next;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

struct config_hent *config_htab_get(const struct config_htab *t, const char *key)
{
	if (t == NULL || t->nb == 0 || key == NULL)
		return NULL;
	for (struct config_hent *e = t->b[config_htab_hash(key) & (t->nb - 1)]; e != NULL;
	     e = e->next) {
		if (strcasecmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

int config_htab_put(struct config_htab *t, const char *key, void *val, unsigned line,
                    struct config_hent **old)
{
	struct config_hent *e = config_htab_get(t, key);
	size_t i;
	int rc;

	if (e != NULL) {
		if (old != NULL)
			*old = e;
		return -EEXIST;
	}
	if (t->n >= t->nb - t->nb / 4 || t->nb == 0) {
		rc = config_htab_grow(t);
		if (rc < 0)
			return rc;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->key = strdup(key);
	if (e->key == NULL) {
		free(e);
		return -ENOMEM;
	}
	config_lower(e->key);
	e->val = val;
	e->line = line;
	i = config_htab_hash(e->key) & (t->nb - 1);
	e->next = t->b[i];
	t->b[i] = e;
	t->n++;
	return 0;
}

/* Read one line into buf (NUL-terminated, newline and a trailing CR removed).
 * Returns 1 for a line, 0 at end of file, -E2BIG for a line over CONFIG_LINE_MAX,
 * -EINVAL for a NUL byte, -EIO on a read error. */
static int config_read_line(FILE *f, char *buf, size_t cap)
{
	size_t len = 0;
	bool nul = false;
	int ch;

	for (;;) {
		ch = getc(f);
		if (ch == EOF) {
			if (ferror(f))
				return -EIO;
			if (len == 0)
				return 0;
			break;
		}
		if (ch == '\n')
			break;
		if (ch == '\0')
			nul = true;
		if (len + 1 >= cap || len >= CONFIG_LINE_MAX) {
			/* swallow the rest so a caller that goes on stays in step */
			while ((ch = getc(f)) != EOF && ch != '\n')
				;
			return -E2BIG;
		}
		buf[len++] = (char)ch;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return nul ? -EINVAL : 1;
}

int config_reader_open(struct config_reader *r, const char *path, const char *what,
                       enum config_read_mode mode, char *err, size_t errsz)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->path = path;
	r->mode = mode;
	r->err = err;
	r->errsz = errsz;
	r->f = fopen(path, "r");
	if (r->f == NULL) {
		rc = -errno;
		config_err(err, errsz, path, 0, "cannot open%s%s: %s", what ? " " : "",
		           what ? what : "", strerror(-rc));
		return rc;
	}
	r->buf = malloc(CONFIG_LINE_MAX + 2);
	if (r->buf == NULL) {
		config_reader_close(r);
		return config_err(err, errsz, path, 0, "out of memory");
	}
	return 0;
}

/* Cut a comment: '#' at the start of the line or after a space or tab. */
static void config_reader_cut_comment(char *s)
{
	for (char *h = s; (h = strchr(h, '#')) != NULL; h++) {
		if (h == s || h[-1] == ' ' || h[-1] == '\t') {
			*h = '\0';
			return;
		}
	}
}

int config_reader_next(struct config_reader *r, char **line)
{
	for (;;) {
		char *s;
		int rc = config_read_line(r->f, r->buf, CONFIG_LINE_MAX + 2);

		if (rc == 0)
			return 0;
		r->lineno++;
		if (rc == -E2BIG)
			return config_err(r->err, r->errsz, r->path, r->lineno,
			                  "line too long (over %d bytes)", CONFIG_LINE_MAX);
		if (rc < 0)
			return config_err(r->err, r->errsz, r->path, r->lineno, "%s",
			                  rc == -EINVAL ? "NUL byte in line" : "read error");
		s = r->buf;
		if (r->mode == CONFIG_READ_SETTINGS)
			config_reader_cut_comment(s);
		if (r->mode != CONFIG_READ_RAW) {
			s = config_trim(s);
			if (*s == '\0' || (r->mode == CONFIG_READ_ENTRIES && *s == '#'))
				continue;
		}
		*line = s;
		return 1;
	}
}

void config_reader_close(struct config_reader *r)
{
	if (r->f != NULL)
		fclose(r->f);
	free(r->buf);
	r->f = NULL;
	r->buf = NULL;
}

int config_err(char *err, size_t errsz, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errsz == 0)
		return -EINVAL;
	if (line > 0)
		n = snprintf(err, errsz, "%s:%u: ", file, line);
	else
		n = snprintf(err, errsz, "%s: ", file);
	if (n < 0 || (size_t)n >= errsz)
		return -EINVAL; /* truncated prefix; err stays NUL-terminated */
	va_start(ap, fmt);
	vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

char *config_trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\v' || *s == '\f')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
	                 s[n - 1] == '\v' || s[n - 1] == '\f' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

char *config_list_next(char **p)
{
	char *s = *p, *comma;

	if (s == NULL)
		return NULL;
	comma = strchr(s, ',');
	if (comma != NULL)
		*comma = '\0';
	*p = comma != NULL ? comma + 1 : NULL;
	return config_trim(s);
}

void config_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* A local part we accept in our own files: dot-atom of letters, digits and
 * "!#$%&'*+-=?^_`{|}~" (RFC 5322 atext without '/'), at most 64 octets. '/' is
 * left out because local parts become mailbox path components. */
bool config_is_valid_local(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TERN_LOCAL_PART_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (s[i + 1] == '.')
				return false;
			continue;
		}
		if (isalnum(ch))
			continue;
		if (ch >= 0x80 || strchr("!#$%&'*+-=?^_`{|}~", ch) == NULL)
			return false;
	}
	return true;
}

/* A domain name: labels of letters, digits and '-', 1..63 octets each, no leading or
 * trailing '-', at most 255 octets. Address literals are not local domains. */
bool config_is_valid_domain(const char *s)
{
	size_t n = strlen(s), lab = 0;

	if (n == 0 || n > TERN_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.' || ch == '\0') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (lab == 0 && ch == '-')
			return false;
		if (!isalnum(ch) && ch != '-')
			return false;
		if (++lab > 63)
			return false;
	}
	return true;
}
