/* maildir_test.c - unit tests of Maildir delivery: one file in new/ with LF line
 * ends and the prefix, nothing left in tmp/, ",S=" matches the size, CRLF split
 * across the 64 KiB read boundary, lone CR kept, host name sanitised, errors leave
 * nothing in new/. Real files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/maildir.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char maildir_t_dir[256];

static int maildir_t_setup(void **state)
{
	(void)state;
	tmpdir_make(maildir_t_dir, sizeof maildir_t_dir, "maildir_test");
	return 0;
}

static int maildir_t_teardown(void **state)
{
	(void)state;
	tmpdir_remove(maildir_t_dir);
	return 0;
}

/* A file holding junk, then the message at offset 5. */
static int maildir_t_src(const char *body, size_t n)
{
	char p[300];
	snprintf(p, sizeof p, "%s/src", maildir_t_dir);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "JUNK!", 5), 5);
	assert_int_equal(write(fd, body, n), (ssize_t)n);
	return fd;
}

static void maildir_t_basic(void **state)
{
	(void)state;
	static const char body[] = "Subject: t\r\n\r\nhello\r\nbare\rcr\r\n";
	static const char pre[] = "Return-Path: <a@b>\r\nDelivered-To: c@d\r\n";
	static const char want[] = "Return-Path: <a@b>\nDelivered-To: c@d\nSubject: t\n\nhello\nbare\rcr\n";
	char md[300], name[300], p[700], newdir[400];
	snprintf(md, sizeof md, "%s/a/b/Maildir", maildir_t_dir);
	int fd = maildir_t_src(body, sizeof body - 1);
	assert_int_equal(maildir_deliver(md, "host.example", pre, sizeof pre - 1, fd, 5,
	                                 sizeof body - 1, name, sizeof name),
	                 0);
	close(fd);
	snprintf(newdir, sizeof newdir, "%s/new", md);
	char listed[300];
	assert_int_equal(tmpdir_count(newdir, listed, sizeof listed), 1);
	assert_string_equal(listed, name);
	snprintf(p, sizeof p, "%s/tmp", md);
	assert_int_equal(tmpdir_count(p, NULL, 0), 0);
	snprintf(p, sizeof p, "%s/cur", md);
	assert_int_equal(tmpdir_count(p, NULL, 0), 0);
	struct stat st;
	assert_int_equal(stat(md, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	snprintf(p, sizeof p, "%s/%s", newdir, name);
	size_t n;
	char *got = tmpdir_read(p, &n);
	assert_int_equal(n, sizeof want - 1);
	assert_memory_equal(got, want, n);
	free(got);
	char sz[32];
	snprintf(sz, sizeof sz, ",S=%zu", n);
	assert_non_null(strstr(name, sz));
	assert_non_null(strstr(name, ".host.example"));
	assert_null(strchr(name, ':'));

	/* a second delivery is a second, distinct file */
	fd = maildir_t_src(body, sizeof body - 1);
	char name2[300];
	assert_int_equal(maildir_deliver(md, "host.example", pre, sizeof pre - 1, fd, 5,
	                                 sizeof body - 1, name2, sizeof name2),
	                 0);
	close(fd);
	assert_string_not_equal(name, name2);
	assert_int_equal(tmpdir_count(newdir, NULL, 0), 2);
}

static void maildir_t_boundary(void **state)
{
	(void)state;
	/* CRLF pairs straddling every 64 KiB read boundary */
	size_t n = 3 * 65536 + 10;
	char *body = malloc(n);
	for (size_t i = 0; i < n; i++)
		body[i] = 'a';
	for (size_t k = 1; k <= 3; k++) {
		body[k * 65536 - 1] = '\r';
		body[k * 65536] = '\n';
	}
	body[n - 2] = '\r';
	body[n - 1] = '\n';
	char md[300], name[300], p[700];
	snprintf(md, sizeof md, "%s/Maildir", maildir_t_dir);
	int fd = maildir_t_src(body, n);
	/* offset 5: the message's bytes line up with the reads so CR ends a chunk */
	assert_int_equal(maildir_deliver(md, "h", "", 0, fd, 5, (off_t)n, name, sizeof name), 0);
	close(fd);
	snprintf(p, sizeof p, "%s/new/%s", md, name);
	size_t got_n;
	char *got = tmpdir_read(p, &got_n);
	assert_int_equal(got_n, n - 4);
	assert_null(memchr(got, '\r', got_n));
	size_t lf = 0;
	for (size_t i = 0; i < got_n; i++)
		lf += got[i] == '\n';
	assert_int_equal(lf, 4);
	free(got);
	free(body);
}

static void maildir_t_hostname(void **state)
{
	(void)state;
	char md[300], name[300];
	snprintf(md, sizeof md, "%s/M", maildir_t_dir);
	int fd = maildir_t_src("x\r\n", 3);
	assert_int_equal(maildir_deliver(md, "evil/../host:2,S", "", 0, fd, 5, 3, name, sizeof name),
	                 0);
	close(fd);
	assert_null(strchr(name, '/'));
	assert_null(strchr(name, ':'));
	assert_non_null(strstr(name, "evil\\057..\\057host\\0722,S"));
}

static void maildir_t_errors(void **state)
{
	(void)state;
	char file[300], md[400], name[300];
	/* a regular file where a directory should be */
	snprintf(file, sizeof file, "%s/notadir", maildir_t_dir);
	int f = open(file, O_WRONLY | O_CREAT, 0600);
	close(f);
	snprintf(md, sizeof md, "%s/Maildir", file);
	int fd = maildir_t_src("x\r\n", 3);
	assert_int_equal(maildir_deliver(md, "h", "", 0, fd, 5, 3, name, sizeof name), -ENOTDIR);
	assert_int_equal(maildir_create(file), -ENOTDIR);
	/* the message is shorter than claimed: error, nothing in new/, tmp/ cleaned */
	snprintf(md, sizeof md, "%s/Short", maildir_t_dir);
	assert_int_equal(maildir_deliver(md, "h", "", 0, fd, 5, 100, name, sizeof name), -EIO);
	char p[500];
	snprintf(p, sizeof p, "%s/new", md);
	assert_int_equal(tmpdir_count(p, NULL, 0), 0);
	snprintf(p, sizeof p, "%s/tmp", md);
	assert_int_equal(tmpdir_count(p, NULL, 0), 0);
	/* a bad source fd */
	assert_int_equal(maildir_deliver(md, "h", "", 0, -1, 0, 3, name, sizeof name), -EBADF);
	snprintf(p, sizeof p, "%s/new", md);
	assert_int_equal(tmpdir_count(p, NULL, 0), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(maildir_t_basic, maildir_t_setup, maildir_t_teardown),
		cmocka_unit_test_setup_teardown(maildir_t_boundary, maildir_t_setup, maildir_t_teardown),
		cmocka_unit_test_setup_teardown(maildir_t_hostname, maildir_t_setup, maildir_t_teardown),
		cmocka_unit_test_setup_teardown(maildir_t_errors, maildir_t_setup, maildir_t_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
