/* control.c - the admin socket: one request line per connection
 *   list | list-json | show QID | flush [QID] | hold QID | release QID | delete QID
 * answered with "ok\n" or "error: TEXT\n", then the output, then close.
 * It reads the queue through the spool API and asks delivery to act through
 * control_ops; it does not deliver, and it trusts nothing in the request (a qid is
 * checked by the spool before it names a file). Peer data from envelopes is
 * escaped before it is printed. */
#include "server/control.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_REQ_MAX 256
#define CONTROL_OUT_MAX (64u * 1024u * 1024u)

struct control {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct spool *sp;
	struct control_ops ops;
	pthread_t th;
	atomic_bool stop;
};

/* Text for humans: control bytes and non-ASCII as \xHH. */
static int control_text(struct buf *b, const char *s)
{
	int r = 0;
	for (const unsigned char *p = (const unsigned char *)s; s && *p && r == 0; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			r = buf_append(b, p, 1);
		else
			r = buf_printf(b, "\\x%02X", *p);
	}
	return r;
}

/* A JSON string (with quotes). */
static int control_json(struct buf *b, const char *s)
{
	int r = buf_append_str(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; s && *p && r == 0; p++) {
		if (*p == '"' || *p == '\\')
			r = buf_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			r = buf_printf(b, "\\u%04x", *p); /* bytes, not decoded UTF-8: stays ASCII */
		else
			r = buf_append(b, p, 1);
	}
	return r ? r : buf_append_str(b, "\"");
}

static const char *control_state(const struct spool_envelope *e)
{
	if (e->held)
		return "held";
	for (size_t i = 0; i < e->nrcpts; i++)
		if (!e->rcpts[i].done && e->rcpts[i].attempts > 0)
			return "deferred";
	return "queued";
}

static const char *control_last_error(const struct spool_envelope *e)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (!e->rcpts[i].done && e->rcpts[i].last_error != NULL)
			return e->rcpts[i].last_error;
	return "";
}

struct control_list {
	struct control *ctl;
	struct buf *out;
	bool json;
	size_t n;
	int err;
};

/* One row of `list` (text) or `list-json`, in three parts shared by queue files and
 * mail waiting to be placed, so both keep one format. */
static int control_row_head(struct control_list *cl, const char *qid, long long age,
                            uint64_t size, const char *from)
{
	struct buf *b = cl->out;
	int r;
	if (cl->json) {
		r = buf_append_str(b, cl->n ? ",{\"id\":" : "{\"id\":");
		r = r ? r : control_json(b, qid);
		r = r ? r : buf_printf(b, ",\"age\":%lld,\"size\":%llu,\"sender\":", age,
		                       (unsigned long long)size);
		r = r ? r : control_json(b, from);
		return r ? r : buf_append_str(b, ",\"recipients\":[");
	}
	r = control_text(b, qid);
	r = r ? r : buf_printf(b, "  %5llds  %8llu  <", age, (unsigned long long)size);
	r = r ? r : control_text(b, from);
	return r ? r : buf_append_str(b, ">  ");
}

/* Recipient i (text: only those not done). */
static int control_row_rcpt(struct control_list *cl, size_t i, const char *addr, bool remote,
                            bool done, unsigned attempts, const char *error)
{
	struct buf *b = cl->out;
	int r;
	if (cl->json) {
		r = buf_append_str(b, i ? ",{\"address\":" : "{\"address\":");
		r = r ? r : control_json(b, addr);
		r = r ? r : buf_printf(b, ",\"route\":\"%s\",\"done\":%s,\"attempts\":%u,\"error\":",
		                       remote ? "remote" : "local", done ? "true" : "false", attempts);
		r = r ? r : control_json(b, error ? error : "");
		return r ? r : buf_append_str(b, "}");
	}
	if (done)
		return 0;
	r = buf_append_str(b, "<");
	r = r ? r : control_text(b, addr);
	return r ? r : buf_append_str(b, "> ");
}

static void control_row_tail(struct control_list *cl, int r, const char *state,
                             const char *last_error)
{
	struct buf *b = cl->out;
	if (cl->json) {
		r = r ? r : buf_printf(b, "],\"state\":\"%s\",\"last_error\":", state);
		r = r ? r : control_json(b, last_error);
		r = r ? r : buf_append_str(b, "}");
	} else {
		r = r ? r : buf_printf(b, " %s", state);
		if (r == 0 && last_error[0] != '\0') {
			r = buf_append_str(b, "  ");
			r = r ? r : control_text(b, last_error);
		}
		r = r ? r : buf_append_str(b, "\n");
	}
	cl->n++;
	if (r < 0)
		cl->err = r;
}

static void control_list_one(void *arg, const char *qid)
{
	struct control_list *cl = arg;
	struct spool_envelope e;
	uint64_t off;
	char path[PATH_MAX];
	struct stat st;
	if (cl->err < 0 || spool_read_envelope(cl->ctl->sp, qid, &e, &off) < 0)
		return; /* gone meanwhile, or unreadable: skip */
	uint64_t size = 0;
	if (spool_queue_path(cl->ctl->sp, qid, path, sizeof path) == 0 && stat(path, &st) == 0 &&
	    (uint64_t)st.st_size >= off)
		size = (uint64_t)st.st_size - off;
	int r = control_row_head(cl, qid, (long long)(time(NULL) - e.arrival), size, e.from);
	for (size_t i = 0; r == 0 && i < e.nrcpts; i++) {
		const struct spool_rcpt *rc = &e.rcpts[i];
		char a[600];
		spool_rcpt_address(rc, a, sizeof a);
		r = control_row_rcpt(cl, i, a, rc->remote, rc->done, rc->attempts, rc->last_error);
	}
	control_row_tail(cl, r, control_state(&e), control_last_error(&e));
	spool_envelope_free(&e);
}

/* One acknowledged local message waiting to be placed (direct_pending_list): listed
 * like a queue file, with state "placing". Its qid comes from a journal record (ternd's
 * own, under a keyed checksum), not from a checked file name: escaped like the rest. */
static void control_list_placing(void *arg, const struct direct_pending *p)
{
	struct control_list *cl = arg;
	if (cl->err < 0)
		return;
	int r = control_row_head(cl, p->qid, (long long)(time(NULL) - p->since), p->size,
	                         p->from);
	for (size_t i = 0; r == 0 && i < p->nrcpts; i++)
		r = control_row_rcpt(cl, i, p->rcpts[i], false, false, p->attempts, p->error);
	control_row_tail(cl, r, "placing", p->error);
}

struct control_find {
	const char *qid;
	bool found;
};

static void control_find_placing(void *arg, const struct direct_pending *p)
{
	struct control_find *f = arg;
	if (strcmp(p->qid, f->qid) == 0)
		f->found = true;
}

static int control_show(struct control *ctl, const char *qid, struct buf *b)
{
	struct spool_envelope e;
	uint64_t off;
	char path[PATH_MAX];
	int r = spool_read_envelope(ctl->sp, qid, &e, &off);
	if (r < 0)
		return r;
	r = buf_printf(b, "id: %s\narrival: %lld\nstate: %s\nsender: <", qid, (long long)e.arrival,
	               control_state(&e));
	r = r ? r : control_text(b, e.from);
	r = r ? r : buf_append_str(b, ">\nclient: ");
	r = r ? r : control_text(b, e.client_addr);
	r = r ? r : buf_append_str(b, " helo ");
	r = r ? r : control_text(b, e.helo);
	r = r ? r : buf_append_str(b, "\n");
	for (size_t i = 0; r == 0 && i < e.nrcpts; i++) {
		const struct spool_rcpt *rc = &e.rcpts[i];
		char a[600];
		spool_rcpt_address(rc, a, sizeof a);
		r = buf_append_str(b, "recipient: <");
		r = r ? r : control_text(b, a);
		r = r ? r : buf_printf(b, "> route=%s state=%s attempts=%u", rc->remote ? "remote" : "local",
		                       rc->done ? "done" : rc->failed ? "failed" : "pending",
		                       rc->attempts);
		if (r == 0 && rc->last_error != NULL) {
			r = buf_append_str(b, " error=\"");
			r = r ? r : control_text(b, rc->last_error);
			r = r ? r : buf_append_str(b, "\"");
		}
		r = r ? r : buf_append_str(b, "\n");
	}
	r = r ? r : buf_append_str(b, "\n");
	/* the header, up to the first empty line (at most 64 KiB) */
	if (r == 0 && spool_queue_path(ctl->sp, qid, path, sizeof path) == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			char *h = malloc(65536);
			ssize_t n = h ? pread(fd, h, 65536, (off_t)off) : -1;
			size_t end = n > 0 ? (size_t)n : 0;
			for (size_t i = 0; i + 3 < end; i++)
				if (memcmp(h + i, "\r\n\r\n", 4) == 0) {
					end = i + 2;
					break;
				}
			for (size_t i = 0; r == 0 && i < end; i++) {
				unsigned char ch = (unsigned char)h[i];
				if (ch == '\r')
					continue;
				if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f))
					r = buf_append(b, &h[i], 1);
				else
					r = buf_printf(b, "\\x%02X", ch);
			}
			free(h);
			close(fd);
		}
	}
	spool_envelope_free(&e);
	return r;
}

static bool control_qid_ok(const char *q)
{
	size_t n = strlen(q);
	if (n == 0 || n >= SPOOL_QID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((q[i] >= '0' && q[i] <= '9') || (q[i] >= 'A' && q[i] <= 'Z') ||
		      (q[i] >= 'a' && q[i] <= 'z')))
			return false;
	return true;
}

/* Answer one request into out ("ok\n..." or "error: ...\n"). */
static void control_handle(struct control *ctl, char *req, struct buf *out)
{
	char *arg = strchr(req, ' ');
	struct buf body;
	char path[PATH_MAX];
	int r = 0;
	buf_init(&body, CONTROL_OUT_MAX);
	if (arg != NULL)
		*arg++ = '\0';
	if (arg != NULL && !control_qid_ok(arg)) {
		buf_append_str(out, "error: bad queue id\n");
		goto done;
	}
	bool needs = strcmp(req, "show") == 0 || strcmp(req, "hold") == 0 ||
	             strcmp(req, "release") == 0 || strcmp(req, "delete") == 0;
	if (needs && arg == NULL) {
		buf_printf(out, "error: %s needs a queue id\n", req);
		goto done;
	}
	if (needs && (spool_queue_path(ctl->sp, arg, path, sizeof path) < 0 ||
	              access(path, F_OK) < 0)) {
		struct control_find f = {.qid = arg};
		if (ctl->ops.placing != NULL)
			ctl->ops.placing(ctl->ops.arg, control_find_placing, &f);
		if (f.found)
			buf_printf(out, "error: %s is local mail already accepted, waiting to be put "
			                "into its mailbox (retried every second; see the log): only "
			                "flush applies to it\n", arg);
		else
			buf_printf(out, "error: no message %s in the queue\n", arg);
		goto done;
	}
	if (strcmp(req, "list") == 0 || strcmp(req, "list-json") == 0) {
		struct control_list cl = {.ctl = ctl, .out = &body, .json = req[4] == '-'};
		if (cl.json)
			buf_append_str(&body, "[");
		r = spool_list(ctl->sp, control_list_one, &cl);
		if (r == 0 && ctl->ops.placing != NULL)
			ctl->ops.placing(ctl->ops.arg, control_list_placing, &cl);
		if (r == 0)
			r = cl.err;
		if (cl.json)
			buf_append_str(&body, "]\n");
	} else if (strcmp(req, "show") == 0) {
		r = control_show(ctl, arg, &body);
	} else if (strcmp(req, "flush") == 0) {
		ctl->ops.flush(ctl->ops.arg, arg);
		if (arg != NULL)
			ctl->ops.enqueue(ctl->ops.arg, arg);
		if (ctl->ops.place_now != NULL)
			ctl->ops.place_now(ctl->ops.arg);
		buf_printf(&body, "flushed %s\n", arg ? arg : "all");
	} else if (strcmp(req, "hold") == 0) {
		r = spool_set_hold(ctl->sp, arg, true);
		if (r == 0)
			buf_printf(&body, "held %s\n", arg);
	} else if (strcmp(req, "release") == 0) {
		r = spool_set_hold(ctl->sp, arg, false);
		if (r == 0) {
			ctl->ops.enqueue(ctl->ops.arg, arg);
			buf_printf(&body, "released %s\n", arg);
		}
	} else if (strcmp(req, "delete") == 0) {
		r = spool_remove(ctl->sp, arg);
		if (r == 0) {
			log_info("qid=%s event=deleted by=\"tern queue\"", arg);
			buf_printf(&body, "deleted %s\n", arg);
		}
	} else {
		buf_append_str(out, "error: unknown command (list, list-json, show, flush, hold, "
		                    "release, delete)\n");
		goto done;
	}
	if (r < 0) {
		buf_printf(out, "error: %s\n", strerror(-r));
		goto done;
	}
	buf_append_str(out, "ok\n");
	buf_append(out, body.ptr, body.len);
done:
	buf_free(&body);
}

static void control_serve(struct control *ctl, int fd)
{
	char req[CONTROL_REQ_MAX + 1] = "";
	size_t n = 0;
	struct buf out;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	buf_init(&out, CONTROL_OUT_MAX + 1024);
	while (n < CONTROL_REQ_MAX) {
		ssize_t r = read(fd, req + n, CONTROL_REQ_MAX - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(req, '\n', n) != NULL)
			break;
	}
	char *nl = memchr(req, '\n', n);
	if (nl == NULL) {
		buf_append_str(&out, "error: request line missing or too long\n");
	} else {
		*nl = '\0';
		if (nl > req && nl[-1] == '\r')
			nl[-1] = '\0';
		control_handle(ctl, req, &out);
	}
	for (size_t off = 0; off < out.len;) {
		ssize_t w = send(fd, out.ptr + off, out.len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	buf_free(&out);
}

static void *control_main(void *arg)
{
	pthread_setname_np(pthread_self(), "control"); /* top -H, ps -L */
	struct control *ctl = arg;
	while (!atomic_load(&ctl->stop)) {
		struct pollfd p = {.fd = ctl->fd, .events = POLLIN};
		if (poll(&p, 1, 500) <= 0)
			continue;
		int c = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		control_serve(ctl, c);
		close(c);
	}
	return NULL;
}

int control_start(struct control **out, const char *path, struct spool *sp,
                  const struct control_ops *ops)
{
	struct sockaddr_un sa;
	int r;
	struct control *ctl = calloc(1, sizeof *ctl);
	*out = NULL;
	if (ctl == NULL)
		return -ENOMEM;
	ctl->sp = sp;
	ctl->ops = *ops;
	ctl->fd = -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path) >= (int)sizeof sa.sun_path) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(ctl->path, sizeof ctl->path, "%s", path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0) {
		r = -errno;
		goto fail;
	}
	unlink(path); /* a stale socket of an earlier run */
	/* no umask change (it is process-wide); the data dir is 0700 anyway */
	if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 ||
	    listen(ctl->fd, 16) < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&ctl->th, NULL, control_main, ctl);
	if (r < 0)
		goto fail;
	*out = ctl;
	return 0;
fail:
	if (ctl->fd >= 0)
		close(ctl->fd);
	free(ctl);
	return r;
}

void control_stop(struct control *ctl)
{
	if (ctl == NULL)
		return;
	atomic_store(&ctl->stop, true);
	pthread_join(ctl->th, NULL);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl);
}
