/* config_relay.c - parse and query the relay keys (resolver, relay_port, smarthost,
 * transport, retry_first, retry_max, give_up, delay_warning, relay_threads,
 * relay_timeout, relay_max_per_destination, relay_max_messages_per_connection,
 * relay_starttls, relay_tls_verify, relay_tls_ca_file).
 * It does no DNS and no I/O; relay.c uses the values. */
#include "policy/config_relay.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void config_relay_defaults(struct config_relay *r)
{
	memset(r, 0, sizeof *r);
	r->port = 25;
	r->retry_first_s = 300;
	r->retry_max_s = 3600;
	r->give_up_s = 5 * 24 * 3600;
	r->delay_warning_s = 4 * 3600;
	r->threads = 4;
	r->timeout_s = 300;
	r->max_per_destination = 5;
	r->max_msgs_per_conn = 100;
	r->starttls = true;
}

void config_relay_free(struct config_relay *r)
{
	if (r == NULL)
		return;
	explicit_bzero(r->auth_pass, sizeof r->auth_pass);
	free(r->transports);
	r->transports = NULL;
	r->ntransports = 0;
}

static int config_relay_num(const char *val, bool dur, unsigned min, unsigned max, unsigned *out,
                            char *msg, size_t msgsz)
{
	uint64_t v = 0, mul = 1;
	const char *s = val;
	if (*s < '0' || *s > '9')
		goto bad;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			goto bad;
	}
	if (*s != '\0') {
		if (!dur || s[1] != '\0')
			goto bad;
		if (*s == 's')
			mul = 1;
		else if (*s == 'm')
			mul = 60;
		else if (*s == 'h')
			mul = 3600;
		else if (*s == 'd')
			mul = 86400;
		else
			goto bad;
	}
	v *= mul;
	if (v < min || v > max) {
		snprintf(msg, msgsz, "%s is out of range (%u..%u%s)", val, min, max, dur ? " seconds" : "");
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
bad:
	snprintf(msg, msgsz, "bad %s '%s'%s", dur ? "duration" : "number", val,
	         dur ? " (digits with an optional s, m, h or d suffix)" : "");
	return -EINVAL;
}

/* "host:port", "[v6]:port" or "host" (port dflt). host: letters, digits, '.', '-', ':'. */
static int config_relay_hostport(const char *val, char *host, size_t hsz, unsigned *port,
                                 unsigned dflt, char *msg, size_t msgsz)
{
	const char *h = val, *colon;
	size_t hl;
	if (val[0] == '[') {
		const char *rb = strchr(val, ']');
		if (rb == NULL)
			goto bad;
		h = val + 1;
		hl = (size_t)(rb - h);
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] != '\0' && colon == NULL)
			goto bad;
	} else {
		colon = strrchr(val, ':');
		if (colon != NULL && strchr(val, ':') != colon)
			goto bad; /* bare IPv6 needs brackets */
		hl = colon ? (size_t)(colon - val) : strlen(val);
	}
	if (hl == 0 || hl >= hsz)
		goto bad;
	for (size_t i = 0; i < hl; i++) {
		char ch = h[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '-' || ch == ':'))
			goto bad;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = dflt;
	if (colon != NULL && config_relay_num(colon + 1, false, 1, 65535, port, msg, msgsz) < 0)
		return -EINVAL;
	return 0;
bad:
	snprintf(msg, msgsz, "expected HOST:PORT or [IPv6]:PORT, not '%s'", val);
	return -EINVAL;
}

static const char *const config_relay_keys[] = {
	"resolver",      "relay_port",    "smarthost",     "transport",
	"retry_first",   "retry_max",     "give_up",       "delay_warning",
	"relay_threads", "relay_timeout", "relay_max_per_destination", "relay_starttls",
	"smarthost_tls", "smarthost_auth", "relay_max_messages_per_connection",
	"relay_tls_verify", "relay_tls_ca_file",
};

static int config_relay_bool(const char *val, bool *out, char *m2, size_t m2sz)
{
	if (strcasecmp(val, "yes") == 0 || strcasecmp(val, "true") == 0 ||
	    strcasecmp(val, "on") == 0)
		*out = true;
	else if (strcasecmp(val, "no") == 0 || strcasecmp(val, "false") == 0 ||
	         strcasecmp(val, "off") == 0)
		*out = false;
	else {
		snprintf(m2, m2sz, "expected yes or no, not '%s'", val);
		return -EINVAL;
	}
	return 0;
}

/* "user:password" on the first line of path (relative to the config's dir). */
static int config_relay_auth_file(struct config_relay *r, const char *val, const char *dir,
                                  char *m2, size_t m2sz)
{
	char path[1024], line[600];
	if (val[0] == '/' || dir == NULL || dir[0] == '\0')
		snprintf(path, sizeof path, "%s", val);
	else
		snprintf(path, sizeof path, "%s/%s", dir, val);
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		snprintf(m2, m2sz, "cannot open %.200s: %.60s", path, strerror(errno));
		return -EINVAL;
	}
	bool got = fgets(line, sizeof line, f) != NULL;
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	char *colon = got ? strchr(line, ':') : NULL;
	if (colon == NULL || colon == line || colon[1] == '\0' ||
	    (size_t)(colon - line) >= sizeof r->auth_user || strlen(colon + 1) >= sizeof r->auth_pass) {
		explicit_bzero(line, sizeof line);
		snprintf(m2, m2sz, "%.200s: expected one line USER:PASSWORD", path);
		return -EINVAL;
	}
	*colon = '\0';
	memcpy(r->auth_user, line, (size_t)(colon - line) + 1);
	snprintf(r->auth_pass, sizeof r->auth_pass, "%s", colon + 1);
	explicit_bzero(line, sizeof line);
	return 0;
}

int config_relay_assign(struct config_relay *r, const char *key, const char *val,
                        const char *dir, char *msg, size_t msgsz)
{
	size_t k = 0, nk = sizeof config_relay_keys / sizeof config_relay_keys[0];
	for (; k < nk; k++)
		if (strcmp(key, config_relay_keys[k]) == 0)
			break;
	if (k == nk)
		return -ENOENT;
	if (k != 3 && (r->seen & (1u << k))) {
		snprintf(msg, msgsz, "%s: given twice", key);
		return -EINVAL;
	}
	r->seen |= 1u << k;
	char m2[300];
	int rc = 0;
	unsigned dummy;
	switch (k) {
	case 0:
		rc = config_relay_hostport(val, r->resolver, sizeof r->resolver, &dummy, 53, m2,
		                           sizeof m2);
		if (rc == 0)
			snprintf(r->resolver, sizeof r->resolver, "%s", val);
		break;
	case 1:
		rc = config_relay_num(val, false, 1, 65535, &r->port, m2, sizeof m2);
		break;
	case 2:
		rc = config_relay_hostport(val, r->smarthost, sizeof r->smarthost, &r->smarthost_port,
		                           25, m2, sizeof m2);
		break;
	case 3: {
		/* "domain host:port" */
		struct config_transport t;
		const char *sp = strpbrk(val, " \t");
		memset(&t, 0, sizeof t);
		if (sp == NULL || (size_t)(sp - val) >= sizeof t.domain) {
			snprintf(m2, sizeof m2, "expected 'DOMAIN HOST:PORT', not '%s'", val);
			rc = -EINVAL;
			break;
		}
		memcpy(t.domain, val, (size_t)(sp - val));
		for (char *d = t.domain; *d; d++)
			if (*d >= 'A' && *d <= 'Z')
				*d = (char)(*d - 'A' + 'a');
		while (*sp == ' ' || *sp == '\t')
			sp++;
		rc = config_relay_hostport(sp, t.host, sizeof t.host, &t.port, 25, m2, sizeof m2);
		if (rc < 0)
			break;
		struct config_transport *nt =
			realloc(r->transports, (r->ntransports + 1) * sizeof *nt);
		if (nt == NULL) {
			snprintf(m2, sizeof m2, "out of memory");
			rc = -EINVAL;
			break;
		}
		r->transports = nt;
		nt[r->ntransports++] = t;
		break;
	}
	case 4:
		rc = config_relay_num(val, true, 1, 30 * 86400, &r->retry_first_s, m2, sizeof m2);
		break;
	case 5:
		rc = config_relay_num(val, true, 1, 30 * 86400, &r->retry_max_s, m2, sizeof m2);
		break;
	case 6:
		rc = config_relay_num(val, true, 1, 365 * 86400, &r->give_up_s, m2, sizeof m2);
		break;
	case 7:
		rc = config_relay_num(val, true, 0, 365 * 86400, &r->delay_warning_s, m2, sizeof m2);
		break;
	case 8:
		rc = config_relay_num(val, false, 1, 256, &r->threads, m2, sizeof m2);
		break;
	case 9:
		rc = config_relay_num(val, true, 1, 3600, &r->timeout_s, m2, sizeof m2);
		break;
	case 10:
		rc = config_relay_num(val, false, 1, 1000, &r->max_per_destination, m2, sizeof m2);
		break;
	case 11:
		if (strcasecmp(val, "yes") == 0 || strcasecmp(val, "true") == 0 ||
		    strcasecmp(val, "on") == 0)
			r->starttls = true;
		else if (strcasecmp(val, "no") == 0 || strcasecmp(val, "false") == 0 ||
		         strcasecmp(val, "off") == 0)
			r->starttls = false;
		else {
			snprintf(m2, sizeof m2, "expected yes or no, not '%s'", val);
			rc = -EINVAL;
		}
		break;
	case 12:
		if (strcasecmp(val, "implicit") == 0)
			r->smarthost_implicit_tls = true;
		else if (strcasecmp(val, "starttls") == 0)
			r->smarthost_implicit_tls = false;
		else {
			snprintf(m2, sizeof m2, "expected starttls or implicit, not '%s'", val);
			rc = -EINVAL;
		}
		break;
	case 13:
		rc = config_relay_auth_file(r, val, dir, m2, sizeof m2);
		break;
	case 14:
		rc = config_relay_num(val, false, 1, 100000, &r->max_msgs_per_conn, m2, sizeof m2);
		break;
	case 15:
		rc = config_relay_bool(val, &r->tls_verify, m2, sizeof m2);
		break;
	case 16: {
		int w;
		if (val[0] == '/' || dir == NULL || dir[0] == '\0')
			w = snprintf(r->tls_ca_file, sizeof r->tls_ca_file, "%s", val);
		else
			w = snprintf(r->tls_ca_file, sizeof r->tls_ca_file, "%s/%s", dir, val);
		if (w < 0 || (size_t)w >= sizeof r->tls_ca_file) {
			snprintf(m2, sizeof m2, "path too long");
			rc = -EINVAL;
		} else if (access(r->tls_ca_file, R_OK) < 0) {
			snprintf(m2, sizeof m2, "cannot read %.200s: %.60s", r->tls_ca_file,
			         strerror(errno));
			rc = -EINVAL;
		}
		break;
	}
	}
	if (rc < 0) {
		snprintf(msg, msgsz, "%s: %s", key, m2);
		return -EINVAL;
	}
	return 0;
}

const struct config_transport *config_relay_route(const struct config_relay *r,
                                                  const char *domain,
                                                  struct config_transport *tmp)
{
	for (size_t i = 0; i < r->ntransports; i++)
		if (strcasecmp(r->transports[i].domain, domain) == 0)
			return &r->transports[i];
	if (r->smarthost[0] != '\0') {
		memset(tmp, 0, sizeof *tmp);
		tmp->smarthost = true;
		snprintf(tmp->host, sizeof tmp->host, "%s", r->smarthost);
		tmp->port = r->smarthost_port;
		return tmp;
	}
	return NULL;
}
