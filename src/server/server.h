/* server.h - the ternd daemon glue: listeners, connections, the SMTP engine per
 * connection, the spool and local delivery, signals. Owns the event loop. */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

struct config;
struct server;

/* Takes ownership of cfg. config_path is re-read on SIGHUP (NULL: nothing to reload). */
int server_new(struct server **out, struct config *cfg, const char *config_path);
/* Bind listeners, recover the queue, start delivery, run until SIGTERM/SIGINT.
 * Returns the process exit status. */
int server_run(struct server *srv);
void server_free(struct server *srv);

#endif
