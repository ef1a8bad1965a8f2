/* ev.c - epoll event loop. Registrations live in a table indexed by fd, so lookup
 * is O(1) and a callback may delete any fd (including its own) safely: events for
 * an fd deleted earlier in the same batch are skipped by a generation check. */
#include "server/ev.h"
#include "util/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct ev_reg {
	ev_fd_fn fn;
	void *arg;
	unsigned mask;
	uint32_t gen; /* bumped on every set/del; 0 = unused */
};

struct ev_loop {
	int epfd;
	struct ev_reg *regs;
	size_t nregs;
	uint32_t gen;
	bool stop;
	unsigned tick_ms;
	ev_tick_fn tick_fn;
	void *tick_arg;
};

static uint64_t ev_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ev_loop_new(struct ev_loop **out)
{
	struct ev_loop *l = calloc(1, sizeof *l);
	if (l == NULL)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = errno;
		free(l);
		return -e;
	}
	*out = l;
	return 0;
}

void ev_loop_free(struct ev_loop *loop)
{
	if (loop == NULL)
		return;
	close(loop->epfd);
	free(loop->regs);
	free(loop);
}

static int ev_grow(struct ev_loop *l, int fd)
{
	if ((size_t)fd < l->nregs)
		return 0;
	size_t n = l->nregs ? l->nregs : 256;
	while (n <= (size_t)fd)
		n *= 2;
	struct ev_reg *r = realloc(l->regs, n * sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	memset(r + l->nregs, 0, (n - l->nregs) * sizeof *r);
	l->regs = r;
	l->nregs = n;
	return 0;
}

static uint32_t ev_epmask(unsigned mask)
{
	uint32_t m = 0;
	if (mask & EV_READ)
		m |= EPOLLIN | EPOLLRDHUP;
	if (mask & EV_WRITE)
		m |= EPOLLOUT;
	return m;
}

int ev_set(struct ev_loop *l, int fd, unsigned mask, ev_fd_fn fn, void *arg)
{
	if (fd < 0 || ev_grow(l, fd) < 0)
		return -ENOMEM;
	struct ev_reg *r = &l->regs[fd];
	struct epoll_event ee = {.events = ev_epmask(mask), .data.fd = fd};
	int op = r->gen ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ee) < 0)
		return -errno;
	r->fn = fn;
	r->arg = arg;
	r->mask = mask;
	if (++l->gen == 0)
		l->gen = 1;
	r->gen = l->gen;
	return 0;
}

int ev_mask(struct ev_loop *l, int fd, unsigned mask)
{
	if (fd < 0 || (size_t)fd >= l->nregs || l->regs[fd].gen == 0)
		return -ENOENT;
	struct ev_reg *r = &l->regs[fd];
	if (r->mask == mask)
		return 0;
	struct epoll_event ee = {.events = ev_epmask(mask), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ee) < 0)
		return -errno;
	r->mask = mask;
	return 0;
}

void ev_del(struct ev_loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nregs || l->regs[fd].gen == 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&l->regs[fd], 0, sizeof l->regs[fd]);
}

void ev_forget(struct ev_loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nregs)
		return;
	memset(&l->regs[fd], 0, sizeof l->regs[fd]);
}

void ev_set_tick(struct ev_loop *l, unsigned period_ms, ev_tick_fn fn, void *arg)
{
	l->tick_ms = period_ms;
	l->tick_fn = fn;
	l->tick_arg = arg;
}

void ev_stop(struct ev_loop *l) { l->stop = true; }

void ev_run(struct ev_loop *l)
{
	struct epoll_event evs[256];
	uint32_t gens[256];
	uint64_t next_tick = ev_now_ms() + l->tick_ms;
	l->stop = false;
	log_hold(true); /* this thread's log lines: one write per round */
	while (!l->stop) {
		int timeout = -1;
		if (l->tick_fn) {
			uint64_t now = ev_now_ms();
			timeout = now >= next_tick ? 0 : (int)(next_tick - now);
		}
		log_flush();
		int n = epoll_wait(l->epfd, evs, 256, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* Remember generations first: a callback may delete and re-add fds. */
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			gens[i] = (size_t)fd < l->nregs ? l->regs[fd].gen : 0;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if ((size_t)fd >= l->nregs)
				continue;
			struct ev_reg *r = &l->regs[fd];
			if (r->gen == 0 || r->gen != gens[i])
				continue;
			unsigned what = 0;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				what |= EV_READ;
			if (evs[i].events & EPOLLOUT)
				what |= EV_WRITE;
			what &= r->mask | EV_READ;
			if (what)
				r->fn(l, fd, r->arg, what);
		}
		if (l->tick_fn) {
			uint64_t now = ev_now_ms();
			if (now >= next_tick) {
				next_tick = now + l->tick_ms;
				l->tick_fn(l, l->tick_arg);
			}
		}
	}
	log_hold(false);
}
