/* client_maildrop.h - the durable fallback of `tern sendmail`: when ternd cannot be
 * reached, the message is written into a maildrop directory that ternd picks up
 * later. File format (docs/CLIENT.md "Maildrop format"):
 *   X-Tern-Sender: <sender>        one line; "<>" for the null sender; then, if
 *                                  given, the DSN parameters " RET=.. ENVID=.."
 *   X-Tern-Rcpt: <recipient>       one line per recipient, at least one; then, if
 *                                  given, " NOTIFY=.. ORCPT=.." (RFC 3461)
 *   (empty line)
 *   the message, lines ending in LF
 * Written to DIR/tmp/NAME, fsynced, renamed to DIR/new/NAME, DIR/new fsynced: a file
 * in new/ is always complete. Does not talk SMTP and does not read maildrops. */
#ifndef TERN_CLIENT_MAILDROP_H
#define TERN_CLIENT_MAILDROP_H

#include <stddef.h>

#define CLIENT_MAILDROP_DEFAULT "./var/maildrop"

struct client_dsn;

/* dir NULL: $TERN_MAILDROP or CLIENT_MAILDROP_DEFAULT. dsn may be NULL. msg has CRLF
 * or LF line ends. path (may be NULL) gets the final file name. 0 or -errno. */
int client_maildrop_write(const char *dir, const char *from, char *const *rcpts, size_t nrcpts,
                          const struct client_dsn *dsn, const char *msg, size_t len, char *path,
                          size_t pathsz);

#endif
