/* nosync.c - negative control for tests/stress/power_loss.py: an LD_PRELOAD shim that
 * turns fsync, fdatasync, syncfs and sync_file_range into no-ops. With it, the
 * power-loss test must report acknowledged messages missing; if it did not, the test
 * could not catch a missing sync. Test-only; never linked into tern.
 *   cc -shared -fPIC -o /tmp/nosync.so tests/stress/nosync.c
 *   LD_PRELOAD=/tmp/nosync.so tests/stress/power_loss.py build 8   # must FAIL */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
int syncfs(int fd) { (void)fd; return 0; }
int sync_file_range(int fd, __off64_t off, __off64_t n, unsigned int flags)
{
	(void)fd;
	(void)off;
	(void)n;
	(void)flags;
	return 0;
}
