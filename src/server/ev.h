/* ev.h - a small epoll event loop (after Redis ae and Postfix events.c).
 * One loop per thread. File events only plus a coarse periodic tick: per-session
 * deadlines are checked from the tick, which costs one compare per session per
 * second and needs no timer heap. Not thread-safe: use it from its own thread. */
#ifndef TERN_EV_H
#define TERN_EV_H

#include <stdbool.h>

#define EV_READ 1u
#define EV_WRITE 2u

struct ev_loop;

/* fd callback: events is a mask of EV_READ/EV_WRITE (errors and hang-ups are
 * reported as EV_READ so the owner's read path sees the EOF or error). */
typedef void (*ev_fd_fn)(struct ev_loop *loop, int fd, void *arg, unsigned events);
typedef void (*ev_tick_fn)(struct ev_loop *loop, void *arg);

int ev_loop_new(struct ev_loop **out);
void ev_loop_free(struct ev_loop *loop);
/* Register fd with an interest mask; replaces an earlier registration. */
int ev_set(struct ev_loop *loop, int fd, unsigned mask, ev_fd_fn fn, void *arg);
/* Change the interest mask of a registered fd. */
int ev_mask(struct ev_loop *loop, int fd, unsigned mask);
void ev_del(struct ev_loop *loop, int fd);
/* Forget fd without a system call, right before close(fd) (closing the last
 * descriptor of a file takes it out of epoll). */
void ev_forget(struct ev_loop *loop, int fd);
/* Periodic callback every period_ms (one per loop). */
void ev_set_tick(struct ev_loop *loop, unsigned period_ms, ev_tick_fn fn, void *arg);
/* Run until ev_stop(). */
void ev_run(struct ev_loop *loop);
void ev_stop(struct ev_loop *loop);

#endif
