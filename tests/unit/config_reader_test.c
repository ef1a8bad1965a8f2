/* config_reader_test.c - unit tests for the one line reader every config loader uses
 * (struct config_reader in src/policy/config_table.c): a missing file, the line length
 * limit, NUL bytes, comment and blank lines in each mode, CRLF line ends and a last
 * line without a newline, each error checked with its exact "file:line:" text.
 * Files are written into a temporary directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config_int.h"
#include "tmpdir.h"

static char test_dir[256];

static int reader_test_setup(void **state)
{
	tmpdir_make(test_dir, sizeof(test_dir), "tern-reader-test");
	return 0;
}

static int reader_test_teardown(void **state)
{
	return tmpdir_remove(test_dir);
}

/* Write n bytes to test_dir/name; returns the path (static buffer). */
static const char *reader_test_write(const char *name, const char *text, size_t n)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", test_dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Open text in mode and check the lines it yields: want[i] on line lines[i]. */
static void reader_test_expect(const char *text, enum config_read_mode mode,
                               const char *const *want, const unsigned *lines, size_t n)
{
	struct config_reader r;
	char err[256] = "";
	const char *path = reader_test_write("f", text, strlen(text));
	char *line;
	size_t i = 0;
	int rc;

	assert_int_equal(config_reader_open(&r, path, "test file", mode, err, sizeof(err)), 0);
	while ((rc = config_reader_next(&r, &line)) > 0) {
		assert_true(i < n);
		assert_string_equal(line, want[i]);
		assert_int_equal(r.lineno, lines[i]);
		i++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, n);
	assert_string_equal(err, "");
	/* end of file stays end of file */
	assert_int_equal(config_reader_next(&r, &line), 0);
	config_reader_close(&r);
	config_reader_close(&r); /* a closed reader may be closed again */
}

static void test_missing_file(void **state)
{
	struct config_reader r;
	char path[512], err[600], want[700];

	snprintf(path, sizeof(path), "%s/absent", test_dir);
	assert_int_equal(config_reader_open(&r, path, "users file", CONFIG_READ_ENTRIES, err,
	                                    sizeof(err)),
	                 -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot open users file: No such file or directory",
	         path);
	assert_string_equal(err, want);
	config_reader_close(&r); /* nothing left open, closing is harmless */

	assert_int_equal(
		config_reader_open(&r, path, NULL, CONFIG_READ_SETTINGS, err, sizeof(err)),
		-ENOENT);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
}

static void test_long_line(void **state)
{
	size_t n = CONFIG_LINE_MAX;
	char *text = malloc(2 * n + 16);
	struct config_reader r;
	char err[600], want[700];
	const char *path;
	char *line;

	assert_non_null(text);
	/* line 1: exactly CONFIG_LINE_MAX bytes (fits); line 2: one more (refused) */
	memset(text, 'a', n);
	text[n] = '\n';
	memset(text + n + 1, 'b', n + 1);
	memcpy(text + 2 * n + 2, "\nok\n", 4);
	path = reader_test_write("long", text, 2 * n + 6);

	assert_int_equal(config_reader_open(&r, path, "x", CONFIG_READ_RAW, err, sizeof(err)), 0);
	assert_int_equal(config_reader_next(&r, &line), 1);
	assert_int_equal(strlen(line), n);
	assert_int_equal(config_reader_next(&r, &line), -EINVAL);
	assert_int_equal(r.lineno, 2);
	snprintf(want, sizeof(want), "%s:2: line too long (over %d bytes)", path,
	         CONFIG_LINE_MAX);
	assert_string_equal(err, want);
	/* the rest of the long line was swallowed: the next line is line 3 */
	assert_int_equal(config_reader_next(&r, &line), 1);
	assert_string_equal(line, "ok");
	assert_int_equal(r.lineno, 3);
	config_reader_close(&r);
	free(text);
}

static void test_nul_byte(void **state)
{
	static const char text[] = "fine\nbad\0byte\n";
	struct config_reader r;
	char err[600], want[700];
	const char *path = reader_test_write("nul", text, sizeof(text) - 1);
	char *line;

	assert_int_equal(
		config_reader_open(&r, path, "x", CONFIG_READ_ENTRIES, err, sizeof(err)), 0);
	assert_int_equal(config_reader_next(&r, &line), 1);
	assert_int_equal(config_reader_next(&r, &line), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	assert_string_equal(err, want);
	config_reader_close(&r);
}

static void test_entries_skip_comments_and_blanks(void **state)
{
	static const char *const want[] = {"alice", "bob: x # not a comment here", "carol"};
	static const unsigned lines[] = {2, 5, 7};

	reader_test_expect("# head\n  alice  \n\n   # indented comment\n"
	                   "bob: x # not a comment here\n\t \ncarol",
	                   CONFIG_READ_ENTRIES, want, lines, 3);
}

static void test_raw_keeps_everything(void **state)
{
	static const char *const want[] = {"# c", "a:", "  b,", "", "\tc"};
	static const unsigned lines[] = {1, 2, 3, 4, 5};

	reader_test_expect("# c\na:\n  b,\n\n\tc\n", CONFIG_READ_RAW, want, lines, 5);
}

static void test_settings_cut_comments(void **state)
{
	static const char *const want[] = {"a = 1", "b = x#y", "[s]"};
	static const unsigned lines[] = {2, 3, 5};

	reader_test_expect("# whole line\na = 1 # trailing\nb = x#y\n  #\n[s]\t# c\n",
	                   CONFIG_READ_SETTINGS, want, lines, 3);
}

static void test_crlf_and_last_line(void **state)
{
	static const char *const raw[] = {"one", " two", "", "three"};
	static const unsigned raw_lines[] = {1, 2, 3, 4};
	static const char *const ent[] = {"one", "two", "three"};
	static const unsigned ent_lines[] = {1, 2, 4};

	/* CRLF ends, a bare blank CRLF line and a last line without a newline */
	reader_test_expect("one\r\n two\r\n\r\nthree", CONFIG_READ_RAW, raw, raw_lines, 4);
	reader_test_expect("one\r\n two\r\n\r\nthree", CONFIG_READ_ENTRIES, ent, ent_lines, 3);
	/* a last line ending in CR alone loses that CR too */
	reader_test_expect("one\r\n two\r\n\r\nthree\r", CONFIG_READ_RAW, raw, raw_lines, 4);
}

static void test_empty_file(void **state)
{
	reader_test_expect("", CONFIG_READ_RAW, NULL, NULL, 0);
	reader_test_expect("\n\n# only comments\n", CONFIG_READ_ENTRIES, NULL, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_entries_skip_comments_and_blanks),
		cmocka_unit_test(test_raw_keeps_everything),
		cmocka_unit_test(test_settings_cut_comments),
		cmocka_unit_test(test_crlf_and_last_line),
		cmocka_unit_test(test_empty_file),
	};

	return cmocka_run_group_tests(tests, reader_test_setup, reader_test_teardown);
}
