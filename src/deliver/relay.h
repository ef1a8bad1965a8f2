/* relay.h - outbound delivery: worker threads that deliver the remote recipients of
 * queued messages to other SMTP servers (MX lookup with c-ares, transport map,
 * smarthost), retry with exponential backoff, and bounce (RFC 3464 DSN) what fails
 * for good. Runs off the event loop, with blocking sockets and timeouts. */
#ifndef TERN_RELAY_H
#define TERN_RELAY_H

#include <stdbool.h>

#include "policy/config.h"

struct spool;
struct relay;

struct relay_opts {
	struct config_relay cfg;   /* copied; transports pointer borrowed (see relay_start) */
	const char *hostname;      /* EHLO name, Reporting-MTA */
	/* Which domains are ours (a DSN to the sender is then delivered locally);
	 * relay_start copies what it needs. */
	const struct config *local;
	/* Hand a qid to local delivery (for DSNs and released messages). */
	void (*local_enqueue)(void *arg, const char *qid);
	void *arg;
};

int relay_start(struct relay **out, struct spool *sp, const struct relay_opts *o);
/* Look at qid's remote recipients now (or when each is due). Thread-safe. */
void relay_enqueue(struct relay *rl, const char *qid);
/* Make every waiting remote recipient of qid (NULL: of every message) due now. */
void relay_flush(struct relay *rl, const char *qid);
/* Stop the workers (enqueues become no-ops); relay_free after every thread that
 * might call relay_enqueue (local delivery) has stopped. */
void relay_stop(struct relay *rl);
void relay_free(struct relay *rl);

#endif
