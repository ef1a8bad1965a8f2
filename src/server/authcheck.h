/* authcheck.h - password verification off the event loop. yescrypt and PBKDF2 are
 * slow on purpose (milliseconds each), so ternd runs sasl_verify_password on one
 * worker thread and gets the result back through an eventfd, like the spool's
 * commits. Jobs are answered in submission order. */
#ifndef TERN_AUTHCHECK_H
#define TERN_AUTHCHECK_H

typedef void (*authcheck_done_fn)(void *arg, int rc);

struct authcheck;

int authcheck_start(struct authcheck **out);
/* Joins the thread; pending jobs are finished, their callbacks are not called. */
void authcheck_stop(struct authcheck *a);
int authcheck_event_fd(const struct authcheck *a);
/* Verify pass against secret (both copied; the copy of pass is wiped after use).
 * done(arg, rc) runs later on the loop thread from authcheck_run_completions with
 * sasl_verify_password's result. 0 or -ENOMEM. */
int authcheck_submit(struct authcheck *a, const char *secret, const char *pass,
                     authcheck_done_fn done, void *arg);
void authcheck_run_completions(struct authcheck *a);

#endif
