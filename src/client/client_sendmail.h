/* client_sendmail.h - what `tern sendmail` (client_sendmail.c) and its SMTP-on-pipes
 * mode `tern sendmail -bs` (client_sendmail_bs.c) share. */
#ifndef TERN_CLIENT_SENDMAIL_H
#define TERN_CLIENT_SENDMAIL_H

#include "client/client_send.h"
#include "util/buf.h"

/* Prepend From: (from, with fullname as display name if given), Date: and
 * Message-ID: when the message (CRLF text) lacks them. May replace msg's storage.
 * 0 or -ENOMEM. */
int client_sendmail_fix_headers(struct buf *msg, const char *from, const char *fullname);

/* Hand one message (CRLF text) over as sendmail does: add the missing headers, submit
 * it to ternd (o), and when ternd cannot take it now write it into the maildrop
 * (NULL: $TERN_MAILDROP or the default). Returns the submission's sysexits code;
 * EX_OK with path set (else "") when it went into the maildrop; EX_TEMPFAIL with
 * *drop_err < 0 when the maildrop failed too; EX_OSERR without memory. */
int client_sendmail_handover(const struct client_send_opts *o, const char *maildrop,
                             const char *fullname, const char *from, char *const *rcpts,
                             size_t nrcpts, struct buf *msg, char *path, size_t pathsz,
                             int *drop_err);

/* -bs: SMTP on stdin/stdout until QUIT or end of input; every message is submitted
 * to ternd (o) or written into the maildrop (NULL: $TERN_MAILDROP or the default)
 * before its 250. Returns a sysexits code. */
int client_sendmail_bs(const struct client_send_opts *o, const char *maildrop,
                       const char *fullname);

#endif
