/* tmpdir.c - see tmpdir.h. Test code only; never linked into ternd or tern. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define TMPDIR_READ_MAX (1 << 20)

void tmpdir_make(char *dir, size_t dirsz, const char *prefix)
{
	int n = snprintf(dir, dirsz, "/tmp/%s.XXXXXX", prefix);

	assert_true(n > 0 && (size_t)n < dirsz);
	assert_non_null(mkdtemp(dir));
}

static int tmpdir_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

int tmpdir_remove(const char *dir)
{
	return nftw(dir, tmpdir_rm, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int tmpdir_count(const char *dir, char *name, size_t namesz)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (name != NULL)
			snprintf(name, namesz, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

char *tmpdir_read(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *b;

	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	size_t max = (size_t)st.st_size > TMPDIR_READ_MAX ? (size_t)st.st_size : TMPDIR_READ_MAX;
	b = malloc(max + 1);
	assert_non_null(b);
	*n = fread(b, 1, max, f);
	fclose(f);
	b[*n] = '\0';
	return b;
}
