/* client_io.h - small I/O helpers of the tern command: read a whole file or stdin
 * into a bounded buffer, and read a password from the terminal without echo. No
 * SMTP and no message handling. */
#ifndef TERN_CLIENT_IO_H
#define TERN_CLIENT_IO_H

#include <stddef.h>

#include "util/buf.h"

/* Append everything from fd (until EOF) to out; -EFBIG past out->max. */
int client_io_read_fd(int fd, struct buf *out);
/* Read a whole file; -ENOENT, -EISDIR, -EACCES... */
int client_io_read_file(const char *path, struct buf *out);
/* Prompt on /dev/tty and read one line with echo off. -ENXIO when there is no
 * terminal, -EINVAL when the line is too long for out. */
int client_io_password(const char *prompt, char *out, size_t outsz);
/* One line from a stream without its line end; -ENODATA at EOF. */
int client_io_read_line_fd(int fd, char *out, size_t outsz);
/* Human text for a sysexits code, e.g. "temporary failure". */
const char *client_io_exit_name(int code);

#endif
