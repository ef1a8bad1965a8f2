/* tmpdir.h - helpers for the unit tests that work on real files: a fresh directory
 * under /tmp, removed later with everything below it; counting a directory's
 * entries; reading a whole file. They fail the running cmocka test when the
 * environment does not cooperate. Linked into every unit test (Makefile). */
#ifndef TERN_TEST_TMPDIR_H
#define TERN_TEST_TMPDIR_H

#include <stddef.h>

/* mkdtemp "/tmp/<prefix>.XXXXXX" into dir (dirsz bytes); fails the test on error. */
void tmpdir_make(char *dir, size_t dirsz, const char *prefix);
/* Remove dir and everything below it. 0, or -1 if something could not be removed. */
int tmpdir_remove(const char *dir);
/* Entries of dir whose names do not start with '.'; the name of the last one read
 * is copied to name when name is not NULL. -1 when dir cannot be opened. */
int tmpdir_count(const char *dir, char *name, size_t namesz);
/* The whole file (buffer of at least 1 MiB), NUL-terminated, its length in *n; free() it. */
char *tmpdir_read(const char *path, size_t *n);

#endif
