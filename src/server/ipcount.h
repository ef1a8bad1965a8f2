/* ipcount.h - concurrent connections per client IP address (for the per-IP cap).
 * A small open hash keyed by the address bytes. No I/O. */
#ifndef TERN_IPCOUNT_H
#define TERN_IPCOUNT_H

#include <stddef.h>
#include <sys/socket.h>

struct ipcount;

struct ipcount *ipcount_new(void);
void ipcount_free(struct ipcount *t);
/* Increment the count for sa; returns the new count, or -1 on ENOMEM. */
int ipcount_inc(struct ipcount *t, const struct sockaddr *sa);
void ipcount_dec(struct ipcount *t, const struct sockaddr *sa);

#endif
