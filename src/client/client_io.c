/* client_io.c - whole-file reads and no-echo password prompts for the tern command.
 * Does not interpret what it reads. */
#include "client/client_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

int client_io_read_fd(int fd, struct buf *out)
{
	char tmp[65536];
	for (;;) {
		ssize_t r = read(fd, tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		int rc = buf_append(out, tmp, (size_t)r);
		if (rc < 0)
			return rc == -ENOSPC ? -EFBIG : rc;
	}
}

int client_io_read_file(const char *path, struct buf *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		rc = -EISDIR;
	else
		rc = client_io_read_fd(fd, out);
	close(fd);
	return rc;
}

int client_io_read_line_fd(int fd, char *out, size_t outsz)
{
	size_t o = 0;
	bool any = false;
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (!any)
				return -ENODATA;
			break;
		}
		any = true;
		if (c == '\n')
			break;
		if (o + 1 >= outsz)
			return -EINVAL;
		out[o++] = c;
	}
	if (o > 0 && out[o - 1] == '\r')
		o--;
	out[o] = '\0';
	return 0;
}

int client_io_password(const char *prompt, char *out, size_t outsz)
{
	struct termios old, raw;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	int rc;
	if (fd < 0)
		return -ENXIO;
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		return -ENXIO;
	}
	raw = old;
	raw.c_lflag &= ~(tcflag_t)ECHO;
	raw.c_lflag |= ECHONL;
	ssize_t w = write(fd, prompt, strlen(prompt));
	(void)w;
	tcsetattr(fd, TCSAFLUSH, &raw);
	rc = client_io_read_line_fd(fd, out, outsz);
	tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	return rc == -ENODATA ? -EINVAL : rc;
}

const char *client_io_exit_name(int code)
{
	switch (code) {
	case EX_OK: return "ok";
	case EX_USAGE: return "usage error";
	case EX_DATAERR: return "bad input data";
	case EX_NOINPUT: return "input missing";
	case EX_NOHOST: return "unknown host";
	case EX_UNAVAILABLE: return "permanent failure";
	case EX_SOFTWARE: return "internal error";
	case EX_OSERR: return "system error";
	case EX_IOERR: return "I/O error";
	case EX_TEMPFAIL: return "temporary failure";
	case EX_PROTOCOL: return "protocol error";
	case EX_NOPERM: return "permission denied";
	case EX_CONFIG: return "configuration error";
	default: return "error";
	}
}
