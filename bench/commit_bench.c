/* commit_bench.c - micro-benchmark of the spool commit: M client threads each
 * commit N/M messages of 4 KiB, one at a time (like M SMTP sessions, each waiting
 * for its 250), and the main thread plays the event loop (eventfd + completions).
 * Prints msgs/s for each sync strategy, from one fsync per message (nobatch) to
 * group commit. Not part of the tests. Build and run:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Isrc -pthread -o build/commit_bench \
 *       bench/commit_bench.c src/queue/spool.c src/util/buf.c src/util/log.c
 *   build/commit_bench [N=2000] [M=32] [dir=./bench-spool]
 */
#include "queue/spool.h"
#include "queue/spool_test_hooks.h"
#include "util/log.h"

#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct bench_client {
	struct spool *sp;
	int n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int err;
};

static atomic_int bench_left;

static void bench_done(void *arg, int err, const char *qid)
{
	struct bench_client *c = arg;
	(void)qid;
	pthread_mutex_lock(&c->mu);
	c->done = true;
	c->err = err;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_sub(&bench_left, 1);
}

static void *bench_client_main(void *arg)
{
	struct bench_client *c = arg;
	static struct spool_rcpt rc = {.orig = "u@example.com", .user = "u", .domain = "example.com"};
	char body[4096];
	memset(body, 'x', sizeof body);
	for (int i = 0; i < c->n; i++) {
		struct spool_envelope e = {.from = "s@example.org", .rcpts = &rc, .nrcpts = 1,
		                           .helo = "bench", .client_addr = "127.0.0.1"};
		struct spool_msg *m;
		if (spool_msg_begin(c->sp, &m, &e) != 0 || spool_msg_write(m, body, sizeof body) != 0)
			abort();
		c->done = false;
		spool_msg_commit(m, bench_done, c);
		pthread_mutex_lock(&c->mu);
		while (!c->done)
			pthread_cond_wait(&c->cv, &c->mu);
		pthread_mutex_unlock(&c->mu);
		if (c->err)
			abort();
	}
	return NULL;
}

static int bench_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2000;
	int nthr = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 32;
	const char *dir = argc > 3 ? argv[3] : "./bench-spool";
	static const struct {
		enum spool_sync_mode mode;
		const char *name;
	} modes[] = {
		{SPOOL_SYNC_NOBATCH, "nobatch (fsync per msg)"},
		{SPOOL_SYNC_SERIAL, "group, serial fdatasync"},
		{SPOOL_SYNC_PARALLEL, "group, parallel fdatasync"},
		{SPOOL_SYNC_SYNCFS, "group, one syncfs"},
	};
	log_init("commit_bench", LOG_LV_ERROR, 0);
	if (n < 1 || nthr < 1 || nthr > 1024)
		return 2;
	for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
		struct spool *sp;
		nftw(dir, bench_rm, 16, FTW_DEPTH | FTW_PHYS);
		if (spool_open(&sp, dir) != 0)
			return 1;
		spool_set_sync_mode(sp, modes[k].mode);
		/* every mode commits the same number of messages */
		int total = n;
		int per = total / nthr ? total / nthr : 1;
		total = per * nthr;
		struct bench_client *cl = calloc((size_t)nthr, sizeof *cl);
		pthread_t *th = calloc((size_t)nthr, sizeof *th);
		atomic_store(&bench_left, total);
		double t0 = bench_now();
		for (int i = 0; i < nthr; i++) {
			cl[i].sp = sp;
			cl[i].n = per;
			pthread_mutex_init(&cl[i].mu, NULL);
			pthread_cond_init(&cl[i].cv, NULL);
			pthread_create(&th[i], NULL, bench_client_main, &cl[i]);
		}
		while (atomic_load(&bench_left) > 0) {
			struct pollfd p = {.fd = spool_event_fd(sp), .events = POLLIN};
			poll(&p, 1, 100);
			spool_run_completions(sp);
		}
		double dt = bench_now() - t0;
		for (int i = 0; i < nthr; i++)
			pthread_join(th[i], NULL);
		unsigned long batches, msgs;
		spool_stats(sp, &batches, &msgs);
		printf("%-28s %6d msgs %3d threads %8.0f msgs/s  %6.1f msgs/batch\n", modes[k].name,
		       total, nthr, total / dt, batches ? (double)msgs / (double)batches : 0.0);
		fflush(stdout);
		spool_close(sp);
		free(cl);
		free(th);
	}
	nftw(dir, bench_rm, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
