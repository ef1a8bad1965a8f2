/* client_mime.c - compose RFC 5322/MIME messages for `tern send`, and the small set
 * of header operations on existing messages (`tern sendmail -t`, `--message`).
 * Does not talk SMTP, does not dot-stuff (the session does), does not decode MIME.
 * Only client_attach_load touches the file system. */
#include "client/client_mime.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_codec.h"
#include "util/limits.h"

int client_strv_push(struct client_strv *sv, const char *s, size_t n)
{
	char **nv = realloc(sv->v, (sv->n + 2) * sizeof *nv);
	if (nv == NULL)
		return -ENOMEM;
	sv->v = nv;
	char *copy = strndup(s, n);
	if (copy == NULL)
		return -ENOMEM;
	sv->v[sv->n++] = copy;
	sv->v[sv->n] = NULL;
	return 0;
}

void client_strv_free(struct client_strv *sv)
{
	if (sv == NULL)
		return;
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

static bool client_is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int client_push_trimmed(struct client_strv *out, const char *s, size_t n)
{
	while (n > 0 && client_is_ws(*s)) {
		s++;
		n--;
	}
	while (n > 0 && client_is_ws(s[n - 1]))
		n--;
	return n == 0 ? 0 : client_strv_push(out, s, n);
}

int client_addr_split(const char *s, size_t n, struct client_strv *out)
{
	size_t start = 0;
	int angle = 0, square = 0, comment = 0, rc;
	bool quote = false;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (quote) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '"')
				quote = false;
			continue;
		}
		if (comment > 0) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '(')
				comment++;
			else if (c == ')')
				comment--;
			continue;
		}
		switch (c) {
		case '"': quote = true; break;
		case '(': comment++; break;
		case '<': angle++; break;
		case '>': if (angle > 0) angle--; break;
		case '[': square++; break;
		case ']': if (square > 0) square--; break;
		case ':':
			if (angle == 0 && square == 0)
				start = i + 1; /* group display name: drop it */
			break;
		case ',':
		case ';':
			if (angle == 0 && square == 0) {
				if ((rc = client_push_trimmed(out, s + start, i - start)) < 0)
					return rc;
				start = i + 1;
			}
			break;
		default: break;
		}
	}
	return client_push_trimmed(out, s + start, n - start);
}

int client_addr_spec(const char *entry, char *out, size_t outsz, bool allow_local)
{
	const char *p = entry;
	size_t n = strlen(entry), o = 0;
	const char *lt = NULL;
	bool quote = false;

	for (size_t i = 0; i < n; i++) {
		if (entry[i] == '"')
			quote = !quote;
		else if (entry[i] == '\\' && quote && i + 1 < n)
			i++;
		else if (entry[i] == '<' && !quote) {
			lt = entry + i;
			break;
		}
	}
	if (lt != NULL) {
		const char *gt = strchr(lt, '>');
		if (gt == NULL)
			return -EINVAL;
		p = lt + 1;
		n = (size_t)(gt - p);
	}
	/* copy, dropping comments and surrounding white space */
	int comment = 0;
	quote = false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!quote && c == '(') {
			comment++;
			continue;
		}
		if (comment > 0) {
			if (c == ')')
				comment--;
			continue;
		}
		if (c == '"')
			quote = !quote;
		if (!quote && client_is_ws(c)) {
			if (o > 0 && i + 1 < n && !client_is_ws(p[i + 1]) && p[i + 1] != '(')
				return -EINVAL; /* space inside an address */
			continue;
		}
		if ((unsigned char)c < 0x20 || c == 0x7f || c == '<' || c == '>')
			return -EINVAL;
		if (o + 1 >= outsz || o + 2 >= TERN_PATH_MAX)
			return -EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	if (o == 0 || quote)
		return -EINVAL;
	char *at = strrchr(out, '@');
	if (at == NULL)
		return allow_local ? 0 : -EINVAL;
	if (at == out || at[1] == '\0')
		return -EINVAL;
	return 0;
}

/* --- attachments and types --- */

const char *client_mime_guess_type(const char *name, const char *data, size_t len)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *type;
	} magics[] = {
		{"\x89PNG\r\n\x1a\n", 8, "image/png"},
		{"\xff\xd8\xff", 3, "image/jpeg"},
		{"GIF87a", 6, "image/gif"},
		{"GIF89a", 6, "image/gif"},
		{"%PDF-", 5, "application/pdf"},
		{"\x1f\x8b", 2, "application/gzip"},
		{"BZh", 3, "application/x-bzip2"},
		{"\xfd" "7zXZ", 5, "application/x-xz"},
		{"OggS", 4, "audio/ogg"},
		{"ID3", 3, "audio/mpeg"},
	};
	static const struct {
		const char *ext;
		const char *type;
	} exts[] = {
		{"txt", "text/plain"}, {"text", "text/plain"}, {"log", "text/plain"},
		{"html", "text/html"}, {"htm", "text/html"}, {"css", "text/css"},
		{"csv", "text/csv"}, {"md", "text/markdown"}, {"ics", "text/calendar"},
		{"js", "text/javascript"}, {"diff", "text/x-diff"}, {"patch", "text/x-diff"},
		{"c", "text/x-c"}, {"h", "text/x-c"}, {"py", "text/x-python"},
		{"xml", "application/xml"}, {"json", "application/json"},
		{"pdf", "application/pdf"}, {"zip", "application/zip"},
		{"gz", "application/gzip"}, {"tgz", "application/gzip"},
		{"tar", "application/x-tar"}, {"sh", "application/x-sh"},
		{"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
		{"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"webp", "image/webp"},
		{"bmp", "image/bmp"}, {"ico", "image/vnd.microsoft.icon"},
		{"mp3", "audio/mpeg"}, {"wav", "audio/wav"}, {"ogg", "audio/ogg"},
		{"mp4", "video/mp4"}, {"webm", "video/webm"},
		{"doc", "application/msword"},
		{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
		{"odt", "application/vnd.oasis.opendocument.text"},
		{"ods", "application/vnd.oasis.opendocument.spreadsheet"},
	};
	for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
		if (len >= magics[i].len && memcmp(data, magics[i].magic, magics[i].len) == 0)
			return magics[i].type;
	const char *dot = name != NULL ? strrchr(name, '.') : NULL;
	if (dot != NULL && strchr(dot, '/') == NULL)
		for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
			if (strcasecmp(dot + 1, exts[i].ext) == 0)
				return exts[i].type;
	if (len >= 4 && memcmp(data, "PK\x03\x04", 4) == 0)
		return "application/zip";
	if (memchr(data, '\0', len) == NULL && client_is_utf8(data, len))
		return "text/plain";
	return "application/octet-stream";
}

int client_attach_load(struct client_attach *a, const char *path)
{
	struct stat st;
	int fd = -1, rc = 0;
	memset(a, 0, sizeof *a);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto fail;
	}
	if ((uint64_t)st.st_size > TERN_MSG_SIZE_DEFAULT) {
		rc = -EFBIG;
		goto fail;
	}
	size_t cap = (size_t)st.st_size + 1, len = 0;
	a->data = malloc(cap);
	if (a->data == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (;;) {
		if (len == cap) {
			if (cap > TERN_MSG_SIZE_DEFAULT) {
				rc = -EFBIG;
				goto fail;
			}
			char *np = realloc(a->data, cap * 2);
			if (np == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			a->data = np;
			cap *= 2;
		}
		ssize_t r = read(fd, a->data + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	a->len = len;
	const char *base = strrchr(path, '/');
	a->name = strdup(base != NULL ? base + 1 : path);
	if (a->name == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	a->type = client_mime_guess_type(a->name, a->data, a->len);
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	client_attach_free(a);
	return rc;
}

void client_attach_free(struct client_attach *a)
{
	if (a == NULL)
		return;
	free(a->name);
	free(a->data);
	a->name = NULL;
	a->data = NULL;
	a->len = 0;
}

void client_compose_free(struct client_compose *c)
{
	if (c == NULL)
		return;
	client_strv_free(&c->to);
	client_strv_free(&c->cc);
	client_strv_free(&c->headers);
	for (size_t i = 0; i < c->natt; i++)
		client_attach_free(&c->att[i]);
	free(c->att);
	c->att = NULL;
	c->natt = 0;
}

/* --- small helpers --- */

void client_random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[64];
	size_t want = (n + 1) / 2;
	if (want > sizeof rnd)
		want = sizeof rnd;
	if (RAND_bytes(rnd, (int)want) != 1) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		ssize_t r = fd >= 0 ? read(fd, rnd, want) : -1;
		if (fd >= 0)
			close(fd);
		if (r != (ssize_t)want)
			for (size_t i = 0; i < want; i++)
				rnd[i] = (unsigned char)(rand() & 0xff);
	}
	for (size_t i = 0; i < n && i / 2 < want; i++)
		out[i] = hex[(rnd[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
	out[n] = '\0';
}

void client_rfc5322_date(time_t t, char *out, size_t outsz)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
	         tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	         tm.tm_sec, sign, off / 60, off % 60);
}

void client_message_id(const char *domain, char *out, size_t outsz)
{
	char host[256] = "localhost";
	char rnd[17];
	if (domain == NULL) {
		if (gethostname(host, sizeof host - 1) < 0 || host[0] == '\0')
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		for (char *h = host; *h; h++)
			if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
			      (*h >= '0' && *h <= '9') || *h == '.' || *h == '-'))
				*h = '-';
		domain = host;
	}
	client_random_hex(rnd, 16);
	snprintf(out, outsz, "<%lld.%d.%s@%s>", (long long)time(NULL), (int)getpid(), rnd, domain);
}

void client_msg_scan(const char *p, size_t n, size_t *longest, bool *has_8bit)
{
	size_t cur = 0, max = 0;
	bool hi = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\n') {
			if (cur > 0 && p[i - 1] == '\r')
				cur--;
			if (cur > max)
				max = cur;
			cur = 0;
			continue;
		}
		if (c >= 0x80)
			hi = true;
		cur++;
	}
	if (cur > max)
		max = cur;
	*longest = max;
	*has_8bit = hi;
}

/* NUL or a CR not followed by LF: text that only quoted-printable can carry. */
static bool client_has_raw_bytes(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\0' || (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')))
			return true;
	return false;
}

int client_msg_to_crlf(const char *p, size_t n, struct buf *out)
{
	int rc = 0;
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		if ((rc = buf_append(out, p + start, i - start)) < 0)
			return rc;
		if ((rc = buf_append(out, "\r\n", 2)) < 0)
			return rc;
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	if (start < n) {
		if ((rc = buf_append(out, p + start, n - start)) < 0)
			return rc;
		rc = buf_append(out, "\r\n", 2);
	}
	return rc;
}

/* --- composing --- */

static int client_text_part(struct buf *out, const char *subtype, const char *p, size_t n,
                            bool allow_8bit, bool *used_8bit)
{
	size_t longest;
	bool has8;
	int rc;
	client_msg_scan(p, n, &longest, &has8);
	bool raw = client_has_raw_bytes(p, n);
	const char *charset = !has8 ? "us-ascii" : client_is_utf8(p, n) ? "utf-8" : "unknown-8bit";
	const char *cte = "quoted-printable";
	if (!raw && longest <= 998 && !has8)
		cte = "7bit";
	else if (!raw && longest <= 998 && allow_8bit)
		cte = "8bit";
	if ((rc = buf_printf(out,
	                     "Content-Type: text/%s; charset=%s\r\n"
	                     "Content-Transfer-Encoding: %s\r\n\r\n",
	                     subtype, charset, cte)) < 0)
		return rc;
	if (cte[0] == 'q') {
		if ((rc = client_qp_encode(out, p, n)) < 0)
			return rc;
		if (n > 0 && p[n - 1] != '\n')
			rc = buf_append(out, "\r\n", 2);
		return rc;
	}
	if (cte[0] == '8')
		*used_8bit = true;
	return client_msg_to_crlf(p, n, out);
}

static int client_param_filename(struct buf *out, const char *name)
{
	size_t n = strlen(name);
	bool plain = client_is_ascii(name, n);
	for (size_t i = 0; i < n && plain; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == '"' || name[i] == '\\' ||
		    name[i] == 0x7f)
			plain = false;
	if (plain)
		return buf_printf(out, "; filename=\"%s\"", name);
	int rc = buf_append_str(out, ";\r\n filename*=UTF-8''");
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-' || c == '_')
			rc = buf_append(out, &name[i], 1);
		else
			rc = buf_printf(out, "%%%02X", c);
	}
	return rc;
}

static int client_attach_part(struct buf *out, const struct client_attach *a)
{
	int rc;
	if ((rc = buf_printf(out, "Content-Type: %s\r\nContent-Disposition: attachment",
	                     a->type)) < 0)
		return rc;
	if ((rc = client_param_filename(out, a->name)) < 0)
		return rc;
	if ((rc = buf_append_str(out, "\r\nContent-Transfer-Encoding: base64\r\n\r\n")) < 0)
		return rc;
	return client_b64_encode(out, a->data, a->len, 76);
}

/* Body of a text-only or alternative section, headers included. */
static int client_body_section(const struct client_compose *c, struct buf *out,
                               const char *boundary, bool *used_8bit)
{
	int rc;
	const char *body = c->body != NULL ? c->body : "";
	if (c->html == NULL)
		return client_text_part(out, "plain", body, c->body != NULL ? c->body_len : 0,
		                        c->allow_8bit, used_8bit);
	if (c->body == NULL)
		return client_text_part(out, "html", c->html, c->html_len, c->allow_8bit, used_8bit);
	if ((rc = buf_printf(out,
	                     "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n"
	                     "--%s\r\n",
	                     boundary, boundary)) < 0)
		return rc;
	if ((rc = client_text_part(out, "plain", c->body, c->body_len, c->allow_8bit, used_8bit)) < 0)
		return rc;
	if ((rc = buf_printf(out, "\r\n--%s\r\n", boundary)) < 0)
		return rc;
	if ((rc = client_text_part(out, "html", c->html, c->html_len, c->allow_8bit, used_8bit)) < 0)
		return rc;
	return buf_printf(out, "\r\n--%s--\r\n", boundary);
}

/* One address entry for a header: display name encoded, addr kept. */
static int client_addr_format(struct buf *out, const char *entry, size_t col)
{
	const char *lt = strrchr(entry, '<');
	int rc;
	if (lt == NULL || strchr(lt, '>') == NULL)
		return buf_append_str(out, entry);
	const char *np = entry;
	size_t nn = (size_t)(lt - entry);
	while (nn > 0 && client_is_ws(np[nn - 1]))
		nn--;
	if (nn >= 2 && np[0] == '"' && np[nn - 1] == '"') {
		/* already quoted: keep ASCII as written, re-encode the rest */
		if (client_is_ascii(np, nn))
			goto raw;
		np++;
		nn -= 2;
	}
	if (nn == 0)
		return buf_append_str(out, lt);
	if ((rc = client_rfc2047_phrase(out, np, nn, col)) < 0)
		return rc;
	if ((rc = buf_append(out, " ", 1)) < 0)
		return rc;
	return buf_append_str(out, lt);
raw:
	return buf_append_str(out, entry);
}

static int client_addr_header(struct buf *out, const char *name, const struct client_strv *sv)
{
	struct buf one;
	size_t col;
	int rc;
	buf_init(&one, 0);
	if ((rc = buf_printf(out, "%s: ", name)) < 0)
		goto fail;
	col = strlen(name) + 2;
	for (size_t i = 0; i < sv->n; i++) {
		buf_reset(&one);
		if ((rc = client_addr_format(&one, sv->v[i], i == 0 ? col : 1)) < 0)
			goto fail;
		bool multi = memchr(one.ptr, '\n', one.len) != NULL;
		if (i > 0) {
			if (!multi && col + 2 + one.len <= 78) {
				rc = buf_append(out, ", ", 2);
				col += 2;
			} else {
				rc = buf_append(out, ",\r\n ", 4);
				col = 1;
			}
			if (rc < 0)
				goto fail;
		}
		if ((rc = buf_append(out, one.ptr, one.len)) < 0)
			goto fail;
		col += one.len;
	}
	rc = buf_append(out, "\r\n", 2);
fail:
	buf_free(&one);
	return rc;
}

static bool client_user_has(const struct client_compose *c, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < c->headers.n; i++)
		if (strncasecmp(c->headers.v[i], name, nl) == 0 && c->headers.v[i][nl] == ':')
			return true;
	return false;
}

static int client_user_header(struct buf *out, const char *h)
{
	static const char *const forbidden[] = {"Bcc", "MIME-Version", "Content-Type",
	                                        "Content-Transfer-Encoding", NULL};
	const char *colon = strchr(h, ':');
	int rc;
	if (colon == NULL || colon == h)
		return -EINVAL;
	for (const char *q = h; q < colon; q++)
		if ((unsigned char)*q <= 32 || (unsigned char)*q >= 127)
			return -EINVAL;
	for (size_t i = 0; forbidden[i] != NULL; i++)
		if ((size_t)(colon - h) == strlen(forbidden[i]) &&
		    strncasecmp(h, forbidden[i], strlen(forbidden[i])) == 0)
			return -EINVAL;
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if ((rc = buf_append(out, h, (size_t)(colon - h))) < 0)
		return rc;
	if ((rc = buf_append(out, ": ", 2)) < 0)
		return rc;
	if ((rc = client_rfc2047_encode(out, v, strlen(v), (size_t)(colon - h) + 2)) < 0)
		return rc;
	return buf_append(out, "\r\n", 2);
}

int client_compose_build(const struct client_compose *c, struct buf *out, bool *used_8bit)
{
	char date[64], msgid[512], rnd[25], b_mix[128], b_alt[128];
	int rc = 0;
	static const struct client_strv empty = {NULL, 0};

	*used_8bit = false;
	if (c->boundary != NULL) {
		snprintf(b_mix, sizeof b_mix, "%s_mix", c->boundary);
		snprintf(b_alt, sizeof b_alt, "%s_alt", c->boundary);
	} else {
		client_random_hex(rnd, 24);
		snprintf(b_mix, sizeof b_mix, "=_tern_%s_mix", rnd);
		snprintf(b_alt, sizeof b_alt, "=_tern_%s_alt", rnd);
	}
	if (c->from != NULL && !client_user_has(c, "From")) {
		struct client_strv one = {NULL, 0};
		char *v[2] = {(char *)c->from, NULL};
		one.v = v;
		one.n = 1;
		if ((rc = client_addr_header(out, "From", &one)) < 0)
			goto fail;
	}
	if (!client_user_has(c, "To")) {
		if (c->to.n > 0)
			rc = client_addr_header(out, "To", &c->to);
		else if (c->cc.n == 0)
			rc = buf_append_str(out, "To: undisclosed-recipients:;\r\n");
		if (rc < 0)
			goto fail;
	}
	if (c->cc.n > 0 && !client_user_has(c, "Cc") &&
	    (rc = client_addr_header(out, "Cc", &c->cc)) < 0)
		goto fail;
	if (c->subject != NULL && !client_user_has(c, "Subject")) {
		if ((rc = buf_append_str(out, "Subject: ")) < 0)
			goto fail;
		if ((rc = client_rfc2047_encode(out, c->subject, strlen(c->subject), 9)) < 0)
			goto fail;
		if ((rc = buf_append(out, "\r\n", 2)) < 0)
			goto fail;
	}
	if (!client_user_has(c, "Date")) {
		client_rfc5322_date(c->now != 0 ? c->now : time(NULL), date, sizeof date);
		if ((rc = buf_printf(out, "Date: %s\r\n", date)) < 0)
			goto fail;
	}
	if (!client_user_has(c, "Message-ID")) {
		client_message_id(c->msgid_domain, msgid, sizeof msgid);
		if ((rc = buf_printf(out, "Message-ID: %s\r\n", msgid)) < 0)
			goto fail;
	}
	for (size_t i = 0; i < c->headers.n; i++)
		if ((rc = client_user_header(out, c->headers.v[i])) < 0)
			goto fail;
	if ((rc = buf_append_str(out, "MIME-Version: 1.0\r\n")) < 0)
		goto fail;
	if (c->natt == 0) {
		rc = client_body_section(c, out, b_alt, used_8bit);
		goto fail;
	}
	if ((rc = buf_printf(out,
	                     "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n"
	                     "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n",
	                     b_mix, b_mix)) < 0)
		goto fail;
	if ((rc = client_body_section(c, out, b_alt, used_8bit)) < 0)
		goto fail;
	for (size_t i = 0; i < c->natt; i++) {
		if ((rc = buf_printf(out, "\r\n--%s\r\n", b_mix)) < 0)
			goto fail;
		if ((rc = client_attach_part(out, &c->att[i])) < 0)
			goto fail;
	}
	rc = buf_printf(out, "\r\n--%s--\r\n", b_mix);
	(void)empty;
fail:
	return rc;
}

/* --- header operations on existing messages --- */

struct client_field {
	size_t start, end;    /* whole field incl. continuation lines and line ends */
	size_t name_len;
	size_t val_start;
};

/* Next header field at *pos within the header section [0, hlen). */
static bool client_msg_next_field(const char *p, size_t hlen, size_t *pos, struct client_field *f)
{
	size_t i = *pos;
	if (i >= hlen)
		return false;
	/* a blank line ends the header */
	if (p[i] == '\n' || (p[i] == '\r' && i + 1 < hlen && p[i + 1] == '\n'))
		return false;
	f->start = i;
	const char *colon = memchr(p + i, ':', hlen - i);
	const char *nl = memchr(p + i, '\n', hlen - i);
	f->name_len = (colon != NULL && (nl == NULL || colon < nl)) ? (size_t)(colon - (p + i)) : 0;
	f->val_start = f->name_len > 0 ? i + f->name_len + 1 : i;
	for (;;) {
		nl = memchr(p + i, '\n', hlen - i);
		i = nl == NULL ? hlen : (size_t)(nl - p) + 1;
		if (i >= hlen || (p[i] != ' ' && p[i] != '\t'))
			break;
	}
	f->end = i;
	*pos = i;
	return true;
}

size_t client_msg_header_len(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (p[i] == '\n')
			return i + 1;
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			return i + 2;
		const char *nl = memchr(p + i, '\n', n - i);
		if (nl == NULL)
			return n;
		i = (size_t)(nl - p) + 1;
	}
	return n;
}

static bool client_field_is(const char *p, const struct client_field *f, const char *name)
{
	size_t nl = strlen(name);
	size_t len = f->name_len;
	while (len > 0 && (p[f->start + len - 1] == ' ' || p[f->start + len - 1] == '\t'))
		len--;
	return len == nl && strncasecmp(p + f->start, name, nl) == 0;
}

static int client_field_value(const char *p, const struct client_field *f, struct buf *v)
{
	for (size_t i = f->val_start; i < f->end; i++) {
		char c = (p[i] == '\r' || p[i] == '\n') ? ' ' : p[i];
		int rc = buf_append(v, &c, 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int client_msg_header_addrs(const char *p, size_t n, const char *name, struct client_strv *out)
{
	size_t hlen = client_msg_header_len(p, n), pos = 0;
	struct client_field f;
	struct client_strv entries = {NULL, 0};
	struct buf v;
	char spec[TERN_PATH_MAX];
	int rc = 0;

	buf_init(&v, 0);
	while (client_msg_next_field(p, hlen, &pos, &f)) {
		if (!client_field_is(p, &f, name))
			continue;
		buf_reset(&v);
		if ((rc = client_field_value(p, &f, &v)) < 0)
			goto fail;
		if ((rc = client_addr_split(v.ptr, v.len, &entries)) < 0)
			goto fail;
	}
	for (size_t i = 0; i < entries.n; i++)
		if (client_addr_spec(entries.v[i], spec, sizeof spec, true) == 0 &&
		    (rc = client_strv_push(out, spec, strlen(spec))) < 0)
			goto fail;
fail:
	client_strv_free(&entries);
	buf_free(&v);
	return rc;
}

bool client_msg_has_header(const char *p, size_t n, const char *name, char *val, size_t valsz)
{
	size_t hlen = client_msg_header_len(p, n), pos = 0;
	struct client_field f;
	while (client_msg_next_field(p, hlen, &pos, &f)) {
		if (!client_field_is(p, &f, name))
			continue;
		if (val != NULL && valsz > 0) {
			struct buf v;
			buf_init(&v, valsz - 1);
			client_field_value(p, &f, &v); /* -ENOSPC: a truncated value is fine */
			size_t s = 0, e = v.len;
			while (s < e && client_is_ws(v.ptr[s]))
				s++;
			while (e > s && client_is_ws(v.ptr[e - 1]))
				e--;
			if (e > s)
				memcpy(val, v.ptr + s, e - s);
			val[e - s] = '\0';
			buf_free(&v);
		}
		return true;
	}
	return false;
}

void client_msg_remove_header(struct buf *msg, const char *name)
{
	size_t pos = 0;
	struct client_field f;
	for (;;) {
		size_t hlen = client_msg_header_len(msg->ptr, msg->len);
		if (!client_msg_next_field(msg->ptr, hlen, &pos, &f))
			return;
		if (!client_field_is(msg->ptr, &f, name))
			continue;
		memmove(msg->ptr + f.start, msg->ptr + f.end, msg->len - f.end);
		msg->len -= f.end - f.start;
		pos = f.start;
	}
}
