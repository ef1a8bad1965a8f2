/* smtp_reply.c - format SMTP replies into a buffer: multi-line continuation,
 * enhanced status codes, 512-octet line limit, peer text made harmless.
 * Does not decide which reply to send, and does not send it.
 */
#include "smtp/smtp_reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/limits.h"

int smtp_reply_format(struct buf *out, int code, const char *enh, const char *text)
{
	char line[TERN_REPLY_LINE_MAX + 1];
	const char *p = text ? text : "";
	size_t start = out->len;
	int rc = 0;

	if (code < 200 || code > 599) {
		rc = -EINVAL;
		goto fail;
	}
	if (enh == NULL)
		enh = "";
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t tlen = nl ? (size_t)(nl - p) : strlen(p);
		size_t room, k;
		int n;

		n = snprintf(line, sizeof line, "%03d%c%s%s", code, nl ? '-' : ' ', enh,
		             enh[0] ? " " : "");
		if (n < 0 || (size_t)n >= sizeof line) {
			rc = -EINVAL;
			goto fail;
		}
		/* room for text, leaving 2 octets for CRLF */
		room = TERN_REPLY_LINE_MAX - 2 - (size_t)n;
		if (tlen > room)
			tlen = room;
		for (k = 0; k < tlen; k++) {
			unsigned char ch = (unsigned char)p[k];
			line[n + k] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
		}
		line[n + tlen] = '\r';
		line[n + tlen + 1] = '\n';
		rc = buf_append(out, line, (size_t)n + tlen + 2);
		if (rc < 0)
			goto fail;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
fail:
	out->len = start;
	return rc;
}
