/* smtp_latency.c - end-of-data latency under load, for bench/bench.py: S sessions
 * (one thread each) keep one connection open and send messages one after another
 * (MAIL, RCPT, DATA, content, each reply awaited: no pipelining); the time from
 * writing the final "\r\n.\r\n" to reading the 250 is recorded for every message.
 * Prints one line: "msgs=N errors=E secs=T p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..".
 *
 * It does not check what the server stored (bench.py counts the Maildir files) and
 * is a benchmark tool, not part of tern.
 *
 * usage: smtp_latency HOST PORT SESSIONS MSGS_PER_SESSION SIZE RCPT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct lat_ctx {
	struct sockaddr_in sa;
	int msgs;
	const char *rcpt;
	char *body;
	size_t body_len;
	double *lat; /* msgs per session */
	int errors;
	pthread_mutex_t mu;
};

struct lat_thread {
	struct lat_ctx *ctx;
	int idx;
	pthread_t th;
};

static double lat_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int lat_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one (possibly multi-line) reply; returns its code, or -1. */
static int lat_reply(int fd, char *buf, size_t cap, size_t *have)
{
	for (;;) {
		/* complete lines in buf? */
		size_t start = 0;
		for (size_t i = 0; i + 1 < *have; i++) {
			if (buf[i] == '\r' && buf[i + 1] == '\n') {
				if (i - start >= 4 && buf[start + 3] == ' ') {
					int code = 0;
					for (size_t k = start; k < start + 3; k++)
						code = buf[k] >= '0' && buf[k] <= '9'
						           ? code * 10 + (buf[k] - '0')
						           : -1000;
					size_t used = i + 2;
					memmove(buf, buf + used, *have - used);
					*have -= used;
					return code >= 200 && code < 600 ? code : -1;
				}
				start = i + 2;
			}
		}
		if (*have == cap)
			return -1;
		ssize_t r = read(fd, buf + *have, cap - *have);
		if (r <= 0)
			return -1;
		*have += (size_t)r;
	}
}

static int lat_cmd(int fd, const char *line, char *buf, size_t cap, size_t *have)
{
	if (lat_write_all(fd, line, strlen(line)) < 0)
		return -1;
	return lat_reply(fd, buf, cap, have);
}

static void *lat_main(void *arg)
{
	struct lat_thread *t = arg;
	struct lat_ctx *c = t->ctx;
	char buf[8192], line[600];
	size_t have = 0;
	int errors = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (fd < 0 || connect(fd, (struct sockaddr *)&c->sa, sizeof c->sa) < 0 ||
	    lat_reply(fd, buf, sizeof buf, &have) != 220 ||
	    lat_cmd(fd, "EHLO latency.test\r\n", buf, sizeof buf, &have) != 250) {
		errors = c->msgs;
		goto out;
	}
	for (int i = 0; i < c->msgs; i++) {
		double *slot = &c->lat[(size_t)t->idx * (size_t)c->msgs + (size_t)i];
		*slot = -1;
		snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", c->rcpt);
		if (lat_cmd(fd, "MAIL FROM:<bench@client.test>\r\n", buf, sizeof buf, &have) !=
		        250 ||
		    lat_cmd(fd, line, buf, sizeof buf, &have) != 250 ||
		    lat_cmd(fd, "DATA\r\n", buf, sizeof buf, &have) != 354) {
			errors++;
			break;
		}
		if (lat_write_all(fd, c->body, c->body_len - 5) < 0) {
			errors++;
			break;
		}
		double t0 = lat_now();
		if (lat_write_all(fd, c->body + c->body_len - 5, 5) < 0 ||
		    lat_reply(fd, buf, sizeof buf, &have) != 250) {
			errors++;
			break;
		}
		*slot = lat_now() - t0;
	}
	lat_cmd(fd, "QUIT\r\n", buf, sizeof buf, &have);
out:
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&c->mu);
	c->errors += errors;
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static int lat_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr,
		        "usage: smtp_latency HOST PORT SESSIONS MSGS_PER_SESSION SIZE RCPT\n");
		return 64;
	}
	struct lat_ctx c;
	memset(&c, 0, sizeof c);
	pthread_mutex_init(&c.mu, NULL);
	c.sa.sin_family = AF_INET;
	c.sa.sin_port = htons((unsigned short)strtoul(argv[2], NULL, 10));
	if (inet_pton(AF_INET, argv[1], &c.sa.sin_addr) != 1) {
		fprintf(stderr, "smtp_latency: bad address\n");
		return 64;
	}
	int sessions = (int)strtol(argv[3], NULL, 10);
	c.msgs = (int)strtol(argv[4], NULL, 10);
	size_t size = strtoul(argv[5], NULL, 10);
	c.rcpt = argv[6];
	if (sessions < 1 || c.msgs < 1 || size < 64) {
		fprintf(stderr, "smtp_latency: bad numbers\n");
		return 64;
	}
	/* headers, then lines of 78 'x' + CRLF up to size, then CRLF.CRLF */
	c.body = malloc(size + 200);
	if (c.body == NULL)
		return 71;
	size_t n = (size_t)snprintf(c.body, 200,
	                            "From: bench@client.test\r\nTo: %s\r\n"
	                            "Subject: latency\r\n\r\n",
	                            c.rcpt);
	while (n + 80 <= size) {
		memset(c.body + n, 'x', 78);
		memcpy(c.body + n + 78, "\r\n", 2);
		n += 80;
	}
	memcpy(c.body + n, "\r\n.\r\n", 5); /* the body ends in CRLF; ".\r\n" closes */
	c.body_len = n + 5;
	c.lat = calloc((size_t)sessions * (size_t)c.msgs, sizeof *c.lat);
	struct lat_thread *t = calloc((size_t)sessions, sizeof *t);
	if (c.lat == NULL || t == NULL)
		return 71;
	double t0 = lat_now();
	for (int i = 0; i < sessions; i++) {
		t[i].ctx = &c;
		t[i].idx = i;
		if (pthread_create(&t[i].th, NULL, lat_main, &t[i]) != 0) {
			fprintf(stderr, "smtp_latency: pthread_create failed\n");
			return 71;
		}
	}
	for (int i = 0; i < sessions; i++)
		pthread_join(t[i].th, NULL);
	double secs = lat_now() - t0;
	size_t total = (size_t)sessions * (size_t)c.msgs, ok = 0;
	for (size_t i = 0; i < total; i++)
		if (c.lat[i] >= 0)
			c.lat[ok++] = c.lat[i];
	qsort(c.lat, ok, sizeof *c.lat, lat_cmp);
#define LAT_P(q) (ok ? c.lat[(size_t)((double)(ok - 1) * (q))] * 1000.0 : 0.0)
	printf("msgs=%zu errors=%d secs=%.3f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", ok,
	       c.errors, secs, LAT_P(0.50), LAT_P(0.90), LAT_P(0.99), LAT_P(1.0));
	return c.errors ? 1 : 0;
}
