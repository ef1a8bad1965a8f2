/* privdrop.h - give up root: when ternd runs as root, switch to an unprivileged
 * user (config `user`, default "tern") after the listeners are bound and the TLS
 * keys are read, before the data directory is touched or a byte is read from the
 * network. Started as any other user it changes nothing. */
#ifndef TERN_PRIVDROP_H
#define TERN_PRIVDROP_H

/* user "" means the default, "tern": if that user does not exist, ternd warns and
 * stays root (development containers); a user named in the config must exist.
 * 0, or -errno (-ENOENT: no such user; -EPERM: the user is root, or root could be
 * regained). */
int privdrop_apply(const char *user);

#endif
