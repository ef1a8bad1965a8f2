/* privdrop.c - setgroups/setgid/setuid to the configured user when running as root
 * (see privdrop.h), then a check that root cannot be regained. Does not chroot and
 * does not create the user (docs/SECURITY.md has the install step). */
#include "server/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "util/log.h"

int privdrop_apply(const char *user)
{
	struct passwd pw, *res = NULL;
	bool dflt = user == NULL || user[0] == '\0';
	char *bufp = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	int rc;

	if (geteuid() != 0 && getuid() != 0)
		return 0;
	if (sz < 1024)
		sz = 16384;
	bufp = malloc((size_t)sz);
	if (bufp == NULL)
		return -ENOMEM;
	if (dflt)
		user = "tern";
	rc = getpwnam_r(user, &pw, bufp, (size_t)sz, &res);
	if (dflt && rc == 0 && res == NULL) {
		log_warn("event=running-as-root reason=\"no user 'tern'; create it or set user= "
		         "(docs/SECURITY.md)\"");
		rc = 0;
		goto fail;
	}
	if (rc != 0 || res == NULL) {
		rc = rc ? -rc : -ENOENT;
		goto fail;
	}
	if (pw.pw_uid == 0) {
		rc = -EPERM;
		goto fail;
	}
	if (setgroups(1, &pw.pw_gid) < 0 || setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) < 0 ||
	    setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) < 0) {
		rc = -errno;
		goto fail;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		rc = -EPERM; /* root could be regained: do not run */
		goto fail;
	}
	log_info("event=privileges-dropped user=%s uid=%u gid=%u", user, (unsigned)pw.pw_uid,
	         (unsigned)pw.pw_gid);
	rc = 0;
fail:
	free(bufp);
	return rc;
}
