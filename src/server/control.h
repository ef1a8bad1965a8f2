/* control.h - the admin socket of a running ternd (<data_dir>/ternd.sock, mode
 * 0600): `tern queue` sends one command line and reads the answer. File
 * permissions are the access control. A thread of its own; never the event loop. */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#include <stddef.h>

#include "deliver/direct.h"

struct spool;
struct control;

struct control_ops {
	void (*flush)(void *arg, const char *qid);   /* qid NULL: everything */
	void (*enqueue)(void *arg, const char *qid); /* hand to delivery now */
	/* acknowledged local mail waiting to be placed (direct_pending_list), and
	 * retrying it now (direct_retry_soon); either may be NULL */
	size_t (*placing)(void *arg, direct_pending_fn fn, void *farg);
	void (*place_now)(void *arg);
	void *arg;
};

/* Listen on path (an old socket file there is replaced). 0 or -errno. */
int control_start(struct control **out, const char *path, struct spool *sp,
                  const struct control_ops *ops);
void control_stop(struct control *ctl); /* stops the thread, removes the socket */

#endif
