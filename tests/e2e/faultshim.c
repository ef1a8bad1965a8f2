/* faultshim.c - LD_PRELOAD fault injector for tests/e2e/test_faults.py.
 *
 * While the file named by $FAULTSHIM_CTL exists, its first word selects a fault for
 * file descriptors whose path contains "/spool/" (ternd's queue) or "/Maildir/" (where
 * local-only messages are stored directly, docs/QUEUE.md "Direct delivery"):
 *   enospc  write(2) fails with ENOSPC
 *   short   write(2) writes at most 7 bytes (a legal short count, not an error)
 *   eio     fsync/fdatasync/syncfs fail with EIO, and so do asynchronous writes
 *           (the journal's O_DIRECT writes with RWF_DSYNC: their completion, as
 *           io_getevents(2) reports it through syscall(2), says EIO)
 *   nosubmit io_submit(2) refuses every request with EINVAL, as a kernel whose AIO
 *           does not know RWF_DSYNC would (whatever the file: ternd submits only
 *           journal writes)
 * Remove the file and everything works again (service must resume). Anything else
 * (sockets, logs) is never touched. Test-only; not part of ternd. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int faultshim_mode(char *out, size_t outsz)
{
	const char *ctl = getenv("FAULTSHIM_CTL");
	if (ctl == NULL)
		return -1;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = syscall(SYS_read, fd, out, outsz - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return -1;
	out[n] = '\0';
	out[strcspn(out, " \t\r\n")] = '\0';
	return 0;
}

static int faultshim_is_spool(int fd)
{
	char p[64], t[4096];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, t, sizeof t - 1);
	if (n < 0)
		return 0;
	t[n] = '\0';
	/* the spool, and Maildirs: local-only messages are stored straight into them
	 * (direct delivery, docs/QUEUE.md) */
	return strstr(t, "/spool/") != NULL || strstr(t, "/Maildir/") != NULL;
}

static int faultshim_hit(int fd, const char *mode)
{
	char m[32];
	return faultshim_mode(m, sizeof m) == 0 && strcmp(m, mode) == 0 && faultshim_is_spool(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (real == NULL)
		real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (faultshim_hit(fd, "enospc")) {
		errno = ENOSPC;
		return -1;
	}
	if (n > 7 && faultshim_hit(fd, "short"))
		n = 7;
	return real(fd, buf, n);
}

#define FAULTSHIM_SYNC(name)                                                       \
	int name(int fd)                                                           \
	{                                                                          \
		static int (*real)(int);                                           \
		if (real == NULL)                                                  \
			real = (int (*)(int))dlsym(RTLD_NEXT, #name);              \
		if (faultshim_hit(fd, "eio")) {                                    \
			errno = EIO;                                               \
			return -1;                                                 \
		}                                                                  \
		return real(fd);                                                   \
	}

FAULTSHIM_SYNC(fsync)
FAULTSHIM_SYNC(fdatasync)
FAULTSHIM_SYNC(syncfs)

/* ternd makes the Linux AIO calls through syscall(2) (glibc has no wrappers): a
 * completed write on a spool file reports EIO, as a failing device would. */
long syscall(long number, ...)
{
	static long (*real)(long, ...);
	if (real == NULL)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_list ap;
	long a[6];
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_io_submit) {
		char m[32];
		if (faultshim_mode(m, sizeof m) == 0 && strcmp(m, "nosubmit") == 0) {
			errno = EINVAL;
			return -1;
		}
	}
	long r = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (number == SYS_io_getevents && r > 0) {
		struct io_event *ev = (struct io_event *)a[3];
		for (long i = 0; i < r; i++) {
			const struct iocb *cb = (const struct iocb *)(uintptr_t)ev[i].obj;
			if (cb != NULL && cb->aio_lio_opcode == IOCB_CMD_PWRITE &&
			    faultshim_hit((int)cb->aio_fildes, "eio"))
				ev[i].res = -EIO;
		}
	}
	return r;
}
