/* client_maildrop.c - write one message durably into a maildrop directory (format in
 * client_maildrop.h). Create tmp/ and new/ as needed, write, fsync, rename, fsync
 * the directory. Does not read or deliver maildrop files (ternd does). */
#include "client/client_maildrop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client_mime.h"
#include "client/client_smtp.h"
#include "util/buf.h"
#include "util/dirsync.h"

static int client_maildrop_mkdirs(const char *path)
{
	char tmp[1024];
	int w = snprintf(tmp, sizeof tmp, "%s", path);
	if (w < 0 || (size_t)w >= sizeof tmp)
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int client_maildrop_write(const char *dir, const char *from, char *const *rcpts, size_t nrcpts,
                          const struct client_dsn *dsn, const char *msg, size_t len, char *path,
                          size_t pathsz)
{
	char tmpdir[1024], newdir[1024], tmpf[1200], newf[1200], name[128], rnd[17];
	struct buf b;
	int fd = -1, rc;

	buf_init(&b, 0);
	if (dir == NULL)
		dir = getenv("TERN_MAILDROP");
	if (dir == NULL || dir[0] == '\0')
		dir = CLIENT_MAILDROP_DEFAULT;
	if (nrcpts == 0) {
		rc = -EINVAL;
		goto fail;
	}
	snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir);
	snprintf(newdir, sizeof newdir, "%s/new", dir);
	if ((rc = client_maildrop_mkdirs(tmpdir)) < 0 || (rc = client_maildrop_mkdirs(newdir)) < 0)
		goto fail;
	client_random_hex(rnd, 16);
	snprintf(name, sizeof name, "%lld.%d.%s", (long long)time(NULL), (int)getpid(), rnd);
	snprintf(tmpf, sizeof tmpf, "%s/%s", tmpdir, name);
	snprintf(newf, sizeof newf, "%s/%s", newdir, name);

	char params[CLIENT_DSN_PARAMS_MAX];
	client_dsn_mail_params(dsn, params, sizeof params);
	if ((rc = buf_printf(&b, "X-Tern-Sender: <%s>%s\n", from, params)) < 0)
		goto fail;
	for (size_t i = 0; i < nrcpts; i++) {
		client_dsn_rcpt_params(dsn, i, params, sizeof params);
		if ((rc = buf_printf(&b, "X-Tern-Rcpt: <%s>%s\n", rcpts[i], params)) < 0)
			goto fail;
	}
	if ((rc = buf_append(&b, "\n", 1)) < 0)
		goto fail;
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
			continue;
		if ((rc = buf_append(&b, msg[i] == '\r' ? "\n" : msg + i, 1)) < 0)
			goto fail;
	}
	if (len > 0 && msg[len - 1] != '\n' && msg[len - 1] != '\r' &&
	    (rc = buf_append(&b, "\n", 1)) < 0)
		goto fail;

	fd = open(tmpf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(fd, b.ptr + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			goto fail_unlink;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		rc = -errno;
		goto fail_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto fail_unlink;
	}
	fd = -1;
	if (rename(tmpf, newf) < 0) {
		rc = -errno;
		goto fail_unlink;
	}
	if ((rc = dirsync(newdir)) < 0)
		goto fail; /* the file is complete in new/; report, do not remove */
	if (path != NULL)
		snprintf(path, pathsz, "%s", newf);
	rc = 0;
	goto fail;
fail_unlink:
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlink(tmpf);
fail:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	return rc;
}
