/* authlimit.h - failed AUTH attempts per client address, across sessions (issue 5
 * brute-force throttling). A bounded hash table of counters with decay: each
 * address keeps the failures of the current and the previous window, and the count
 * "in the last window" is estimated as prev * (part of the previous window still
 * inside the sliding window) + cur, the usual two-bucket sliding window. After
 * max failures in that window the address is throttled until enough of them age out.
 *
 * IPv4 addresses (also IPv4-mapped IPv6) count one by one; IPv6 addresses count
 * per /64, since one host usually holds a whole /64.
 *
 * No I/O, no clock: the caller passes `now` and the configured max and window (so a
 * config reload takes effect at once). Not thread-safe: the event loop owns it. */
#ifndef TERN_AUTHLIMIT_H
#define TERN_AUTHLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

/* Most addresses tracked at once; when full, expired entries are pruned and if that
 * frees nothing the new failure is not recorded (logged by the caller). */
#define AUTHLIMIT_ENTRIES_MAX 100000

struct authlimit;

struct authlimit *authlimit_new(void);
void authlimit_free(struct authlimit *t);
/* Record one failed AUTH from sa. 0, -ENOSPC (table full), -ENOMEM. */
int authlimit_fail(struct authlimit *t, const struct sockaddr *sa, time_t now,
                   unsigned window);
/* The estimated failures from sa in the last `window` seconds. */
unsigned authlimit_count(const struct authlimit *t, const struct sockaddr *sa, time_t now,
                         unsigned window);
/* count >= max (max 0: never throttled). */
bool authlimit_is_throttled(const struct authlimit *t, const struct sockaddr *sa, time_t now,
                            unsigned max, unsigned window);
/* Drop entries with nothing left in the window; returns how many remain. */
size_t authlimit_prune(struct authlimit *t, time_t now, unsigned window);

#endif
