/* dirsync_test.c - unit tests of util/dirsync: a directory is fsynced, anything else
 * is an error (never silently "durable"); the parent of a path is found for
 * "a/b", "b" and "/b"; a path longer than PATH_MAX is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "util/dirsync.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void dirsync_t_all(void **state)
{
	(void)state;
	char dir[256], file[300], missing[300];
	tmpdir_make(dir, sizeof dir, "dirsync_test");
	snprintf(file, sizeof file, "%s/f", dir);
	snprintf(missing, sizeof missing, "%s/none/f", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(dirsync(dir), 0);
	assert_int_equal(dirsync(file), -ENOTDIR);
	assert_int_equal(dirsync(missing), -ENOENT);
	assert_int_equal(dirsync_parent(file), 0);     /* dir */
	assert_int_equal(dirsync_parent(missing), -ENOENT);
	assert_int_equal(dirsync_parent("no-slash"), 0); /* "." */
	assert_int_equal(dirsync_parent("/tmp"), 0);     /* "/" */
	static char longp[PATH_MAX + 10];
	memset(longp, 'a', sizeof longp - 1);
	assert_int_equal(dirsync_parent(longp), -ENAMETOOLONG);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dirsync_t_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
