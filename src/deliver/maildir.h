/* maildir.h - deliver one message into one Maildir (the layout Dovecot reads):
 * create tmp/new/cur if missing, write tmp/<unique>, fsync, link/rename into new/,
 * fsync new/. Prepends the given header lines (Return-Path, Delivered-To). */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stddef.h>
#include <sys/types.h>

/* Deliver len bytes of fd starting at off (the message, CRLF line ends as stored)
 * into maildir, preceded by the prefix bytes. Lines are stored with LF endings
 * (Maildir convention; Dovecot expects LF). name_out gets the new/ file name.
 * Returns 0 or -errno; on error nothing is left in new/. */
int maildir_deliver(const char *maildir, const char *hostname, const char *prefix, size_t plen,
                    int fd, off_t off, off_t len, char *name_out, size_t name_sz);
/* mkdir -p of maildir and its tmp/new/cur. */
int maildir_create(const char *maildir);
/* Unique-name parts for other Maildir writers (direct.c): the next Q sequence number
 * (shared with maildir_deliver) and the escaped host part. */
unsigned long maildir_next_seq(void);
void maildir_host_part(char *out, size_t outsz, const char *hostname);

#endif
