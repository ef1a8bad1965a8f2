/* smtp_steps.c - where a session's time goes: S threads, each sending MSGS messages
 * one per connection (connect, greeting, HELO, MAIL, RCPT, DATA, content, QUIT,
 * close; every reply awaited, no pipelining, TCP_NODELAY), and the mean time of
 * each step per message. For comparing a server with smtp-sink step by step
 * (bench/RESULTS.md); a benchmark tool, not part of tern. It checks only that each
 * reply is a complete reply, not its code.
 *
 * usage: smtp_steps PORT SESSIONS MSGS_PER_SESSION SIZE [RCPT]   (127.0.0.1)
 * prints: "N msgs R msg/s; per message (us): connect+greet=.. HELO=.. ... sum=.."
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECT, ST_HELO, ST_MAIL, ST_RCPT, ST_DATA, ST_CONTENT, ST_QUIT, ST_CLOSE, ST_N };
static const char *const st_names[ST_N] = {"connect+greet", "HELO", "MAIL", "RCPT",
                                           "DATA", "content->250", "QUIT->221", "close"};

static int st_port, st_per;
static char *st_body, st_rcpt_cmd[600];
static size_t st_blen;
static double st_tot[ST_N];
static long st_msgs;
static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;

static double st_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Read until the last line received is a final reply line ("NNN "). 0 or -1. */
static int st_reply(int fd)
{
	char b[8192];
	size_t n = 0;
	for (;;) {
		if (n == sizeof b)
			return -1;
		ssize_t r = read(fd, b + n, sizeof b - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		if (n < 2 || b[n - 1] != '\n')
			continue;
		size_t i = n - 1;
		while (i > 0 && b[i - 1] != '\n')
			i--;
		if (n - i >= 5 && b[i + 3] == ' ')
			return 0;
	}
}

static int st_send(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *st_thread(void *arg)
{
	(void)arg;
	double loc[ST_N] = {0};
	const char *cmds[] = {"HELO client.test\r\n", "MAIL FROM:<bench@client.test>\r\n",
	                      st_rcpt_cmd, "DATA\r\n"};
	for (int m = 0; m < st_per; m++) {
		double t0 = st_now();
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)st_port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			perror("smtp_steps: connect");
			exit(1);
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (st_reply(fd) < 0)
			goto fail;
		loc[ST_CONNECT] += st_now() - t0;
		for (int i = 0; i < 4; i++) {
			double a = st_now();
			if (st_send(fd, cmds[i], strlen(cmds[i])) < 0 || st_reply(fd) < 0)
				goto fail;
			loc[ST_HELO + i] += st_now() - a;
		}
		double a = st_now();
		if (st_send(fd, st_body, st_blen) < 0 || st_reply(fd) < 0)
			goto fail;
		loc[ST_CONTENT] += st_now() - a;
		a = st_now();
		if (st_send(fd, "QUIT\r\n", 6) < 0 || st_reply(fd) < 0)
			goto fail;
		loc[ST_QUIT] += st_now() - a;
		a = st_now();
		close(fd);
		loc[ST_CLOSE] += st_now() - a;
	}
	pthread_mutex_lock(&st_mu);
	for (int i = 0; i < ST_N; i++)
		st_tot[i] += loc[i];
	st_msgs += st_per;
	pthread_mutex_unlock(&st_mu);
	return NULL;
fail:
	fprintf(stderr, "smtp_steps: the server closed or sent no complete reply\n");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: smtp_steps PORT SESSIONS MSGS_PER_SESSION SIZE [RCPT]\n");
		return 2;
	}
	st_port = atoi(argv[1]);
	int sessions = atoi(argv[2]);
	st_per = atoi(argv[3]);
	long size = atol(argv[4]);
	const char *rcpt = argc > 5 ? argv[5] : "user@bench.test";
	if (st_port <= 0 || sessions <= 0 || sessions > 1000 || st_per <= 0 || size < 0 ||
	    size > (64L << 20) || strlen(rcpt) > 500)
		return 2;
	snprintf(st_rcpt_cmd, sizeof st_rcpt_cmd, "RCPT TO:<%s>\r\n", rcpt);
	static const char head[] = "From: a@client.test\r\nTo: b@bench.test\r\nSubject: x\r\n\r\n";
	static const char line[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";
	st_body = malloc((size_t)size + sizeof head + sizeof line + 8);
	if (st_body == NULL)
		return 1;
	memcpy(st_body, head, sizeof head - 1);
	st_blen = sizeof head - 1;
	while (st_blen < (size_t)size) {
		memcpy(st_body + st_blen, line, sizeof line - 1);
		st_blen += sizeof line - 1;
	}
	memcpy(st_body + st_blen, ".\r\n", 3);
	st_blen += 3;
	pthread_t *th = calloc((size_t)sessions, sizeof *th);
	if (th == NULL)
		return 1;
	double t0 = st_now();
	for (int i = 0; i < sessions; i++)
		pthread_create(&th[i], NULL, st_thread, NULL);
	for (int i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	double secs = st_now() - t0, sum = 0;
	printf("%ld msgs %.0f msg/s; per message (us):", st_msgs, (double)st_msgs / secs);
	for (int i = 0; i < ST_N; i++) {
		double us = st_tot[i] / (double)st_msgs * 1e6;
		printf(" %s=%.0f", st_names[i], us);
		sum += us;
	}
	printf(" sum=%.0f\n", sum);
	return 0;
}
