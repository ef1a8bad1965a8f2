/* bounce.c - delivery status notifications (RFC 3464, RFC 3462 multipart/report):
 * a human-readable part, a message/delivery-status part with one block per
 * recipient (Final-Recipient, Original-Recipient, Action, Status, Diagnostic-Code),
 * and the original message (message/rfc822) or its header (text/rfc822-headers).
 *
 * It does not decide who gets a DSN (relay.c: never the null sender, NOTIFY), and
 * does no I/O. Peer text in Diagnostic-Code was escaped by smtp_client. */
#include "deliver/bounce.h"
#include "queue/spool.h"

#include <stdio.h>
#include <string.h>

static void bounce_date(time_t t, char *out, size_t n)
{
	struct tm tm;
	localtime_r(&t, &tm);
	if (strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		out[0] = '\0';
}

/* Status code "d.d.d" from "550 5.1.1 text", else 5.0.0 / 4.0.0. */
static void bounce_status(const char *err, bool delayed, char *out, size_t n)
{
	snprintf(out, n, "%s", delayed ? "4.0.0" : "5.0.0");
	if (err == NULL)
		return;
	const char *p = err;
	if (strlen(p) > 4 && p[3] == ' ')
		p += 4;
	if ((p[0] == '4' || p[0] == '5') && p[1] == '.') {
		size_t l = strspn(p, "0123456789.");
		if (l >= 5 && l < n) {
			memcpy(out, p, l);
			out[l] = '\0';
			if (!delayed)
				out[0] = '5';
			else
				out[0] = '4';
		}
	}
}

/* Header-safe copy: no CR/LF/control bytes. */
static int bounce_safe(struct buf *b, const char *s)
{
	int r = 0;
	for (const unsigned char *p = (const unsigned char *)s; p && *p && r == 0; p++) {
		char c = (*p < 0x20 || *p >= 0x7f) ? '?' : (char)*p;
		r = buf_append(b, &c, 1);
	}
	return r;
}

int bounce_build(struct buf *out, const char *hostname, const struct spool_envelope *env,
                 const bool *pick, bool delayed, const char *orig, size_t orig_len,
                 size_t full_max, time_t now)
{
	char date[64], adate[64], bnd[96];
	int r;
	bounce_date(now, date, sizeof date);
	bounce_date(env->arrival, adate, sizeof adate);
	snprintf(bnd, sizeof bnd, "%s/%lld/%s", env->qid, (long long)now, hostname);
	r = buf_printf(out,
	               "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	               "To: <",
	               hostname);
	r = r ? r : bounce_safe(out, env->from);
	r = r ? r : buf_printf(out,
	                       ">\r\nSubject: %s\r\n"
	                       "Date: %s\r\n"
	                       "Message-ID: <%s.%s.%lld@%s>\r\n"
	                       "Auto-Submitted: auto-replied\r\n"
	                       "MIME-Version: 1.0\r\n"
	                       "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	                       "\tboundary=\"%s\"\r\n"
	                       "\r\n"
	                       "This is a MIME-encapsulated message.\r\n"
	                       "\r\n--%s\r\n"
	                       "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	                       "This is the mail system at host %s.\r\n\r\n%s\r\n\r\n",
	                       delayed ? "Delayed Mail (still being retried)"
	                               : "Undelivered Mail Returned to Sender",
	                       date, env->qid, delayed ? "delay" : "bounce", (long long)now,
	                       hostname, bnd, bnd, hostname,
	                       delayed ? "Your message could not be delivered yet to the "
	                                 "recipients below.\r\nDelivery will be retried; you "
	                                 "need not resend it."
	                               : "Your message could not be delivered to the recipients "
	                                 "below.\r\nThe errors are listed with each.");
	for (size_t i = 0; r == 0 && i < env->nrcpts; i++) {
		if (!pick[i])
			continue;
		char a[600];
		spool_rcpt_address(&env->rcpts[i], a, sizeof a);
		r = buf_append_str(out, "<");
		r = r ? r : bounce_safe(out, a);
		r = r ? r : buf_append_str(out, ">: ");
		r = r ? r : bounce_safe(out, env->rcpts[i].last_error ? env->rcpts[i].last_error
		                                                       : "unknown error");
		r = r ? r : buf_append_str(out, "\r\n");
	}
	r = r ? r : buf_printf(out,
	                       "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n"
	                       "Reporting-MTA: dns; %s\r\n",
	                       bnd, hostname);
	if (r == 0 && env->envid != NULL) {
		r = buf_append_str(out, "Original-Envelope-Id: ");
		r = r ? r : bounce_safe(out, env->envid);
		r = r ? r : buf_append_str(out, "\r\n");
	}
	r = r ? r : buf_printf(out, "Arrival-Date: %s\r\n", adate);
	for (size_t i = 0; r == 0 && i < env->nrcpts; i++) {
		const struct spool_rcpt *rc = &env->rcpts[i];
		char st[16];
		if (!pick[i])
			continue;
		bounce_status(rc->last_error, delayed, st, sizeof st);
		char a[600];
		spool_rcpt_address(rc, a, sizeof a);
		r = buf_append_str(out, "\r\nFinal-Recipient: rfc822; ");
		r = r ? r : bounce_safe(out, a);
		if (r == 0 && rc->orcpt != NULL) {
			r = buf_append_str(out, "\r\nOriginal-Recipient: ");
			r = r ? r : bounce_safe(out, rc->orcpt);
		} else if (r == 0 && strcmp(a, rc->orig) != 0) {
			r = buf_append_str(out, "\r\nOriginal-Recipient: rfc822; ");
			r = r ? r : bounce_safe(out, rc->orig);
		}
		r = r ? r : buf_printf(out, "\r\nAction: %s\r\nStatus: %s\r\n",
		                       delayed ? "delayed" : "failed", st);
		if (r == 0 && rc->last_error != NULL) {
			r = buf_append_str(out, "Diagnostic-Code: smtp; ");
			r = r ? r : bounce_safe(out, rc->last_error);
			r = r ? r : buf_append_str(out, "\r\n");
		}
		r = r ? r : buf_printf(out, "Last-Attempt-Date: %s\r\n", date);
	}
	/* the original: full (RET=FULL, or unspecified and small), else its header */
	size_t hdr_len = orig_len;
	for (size_t i = 0; i + 3 < orig_len; i++)
		if (memcmp(orig + i, "\r\n\r\n", 4) == 0) {
			hdr_len = i + 2;
			break;
		}
	bool full = env->ret != 2 && orig_len <= full_max;
	r = r ? r : buf_printf(out, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", bnd,
	                       full ? "message/rfc822" : "text/rfc822-headers");
	r = r ? r : buf_append(out, orig, full ? orig_len : hdr_len);
	if (r == 0 && (full ? orig_len : hdr_len) > 0 &&
	    orig[(full ? orig_len : hdr_len) - 1] != '\n')
		r = buf_append_str(out, "\r\n");
	r = r ? r : buf_printf(out, "\r\n--%s--\r\n", bnd);
	return r;
}
