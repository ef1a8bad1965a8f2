/* journal_test.c - unit tests of the write-ahead ring (src/queue/journal.c) and of
 * CRC-32C: records come back after a reopen in seq order with their bytes; retired
 * ones do not; the ring wraps and grows up to its maximum, then says -ENOSPC; a
 * damaged record, a record under another file's id, and a damaged file header are
 * never replayed (the damaged file is kept aside); a replay failure keeps the record
 * live. Real files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "queue/journal.h"
#include "tmpdir.h"
#include "util/crc32c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static char jt_dir[256], jt_path[300];

static int jt_setup(void **state)
{
	(void)state;
	tmpdir_make(jt_dir, sizeof jt_dir, "journal_test");
	snprintf(jt_path, sizeof jt_path, "%s/j", jt_dir);
	return 0;
}

static int jt_teardown(void **state)
{
	(void)state;
	tmpdir_remove(jt_dir);
	return 0;
}

/* What a replay saw. */
struct jt_seen {
	int n;
	uint64_t seq[4096];
	char first[4096][16]; /* first bytes of each payload */
	size_t len[4096];
	int fail_seq; /* replay returns -EIO for this seq */
};

static int jt_replay(void *arg, uint64_t seq, const void *p, size_t n)
{
	struct jt_seen *s = arg;
	assert_true(s->n < 4096);
	s->seq[s->n] = seq;
	s->len[s->n] = n;
	memset(s->first[s->n], 0, 16);
	memcpy(s->first[s->n], p, n < 15 ? n : 15);
	s->n++;
	return (int)seq == s->fail_seq ? -EIO : 0;
}

static struct jt_seen *jt_reopen(uint64_t max)
{
	static struct jt_seen s;
	memset(&s, 0, sizeof s);
	struct journal *j;
	assert_int_equal(journal_open(&j, jt_path, max, jt_replay, &s), 0);
	journal_close(j);
	return &s;
}

static void jt_crc(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c_portable(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
	char buf[1000];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)(i * 7 + 3);
	for (size_t n = 0; n < sizeof buf; n += 37) {
		uint32_t whole = crc32c(0, buf, n);
		assert_int_equal(whole, crc32c_portable(0, buf, n));
		assert_int_equal(whole, crc32c(crc32c(0, buf, n / 3), buf + n / 3, n - n / 3));
	}
}

static void jt_append_replay(void **state)
{
	(void)state;
	struct journal *j;
	struct jt_seen *s = jt_reopen(0); /* creates it */
	assert_int_equal(s->n, 0);
	assert_int_equal(journal_open(&j, jt_path, 0, jt_replay, s), 0);
	assert_int_equal(journal_append(j, "first", 5), 1);
	assert_int_equal(journal_append(j, "second", 6), 2);
	char big[70000];
	memset(big, 'b', sizeof big);
	memcpy(big, "third", 5);
	assert_int_equal(journal_append(j, big, sizeof big), 3);
	assert_int_equal(journal_append(j, NULL, 0), 4); /* a mark: never replayed */
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	s = jt_reopen(0);
	assert_int_equal(s->n, 3);
	assert_int_equal(s->seq[0], 1);
	assert_string_equal(s->first[0], "first");
	assert_int_equal(s->seq[2], 3);
	assert_int_equal(s->len[2], sizeof big);
	assert_memory_equal(s->first[2], "thirdbbb", 8);
	/* reopened twice: the same three (nothing was retired), seq goes on */
	s = jt_reopen(0);
	assert_int_equal(s->n, 3);
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	assert_int_equal(journal_next_seq(j), 5);
	journal_close(j);
}

static void jt_retire(void **state)
{
	(void)state;
	struct journal *j;
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	for (int i = 0; i < 5; i++)
		assert_true(journal_append(j, "rec", 3) > 0);
	journal_retire(j, 4); /* 1..3 done */
	journal_retire(j, 2); /* never backwards */
	uint64_t live, size;
	journal_usage(j, &live, &size);
	assert_int_equal(live, 2 * JOURNAL_ALIGN);
	/* the mark reaches the disk with the next record */
	assert_int_equal(journal_append(j, "six", 3), 6);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	struct jt_seen *s = jt_reopen(0);
	assert_int_equal(s->n, 3);
	assert_int_equal(s->seq[0], 4);
	assert_int_equal(s->seq[2], 6);
}

static void jt_wrap_and_full(void **state)
{
	(void)state;
	struct journal *j;
	uint64_t max = JOURNAL_HEADER + (1u << 20);
	char rec[100000];
	assert_int_equal(journal_open(&j, jt_path, max, NULL, NULL), 0);
	/* 60 records of ~100 KB through a 1 MiB ring: fine while they are retired */
	for (int i = 1; i <= 60; i++) {
		snprintf(rec, sizeof rec, "rec %d", i);
		int64_t seq = journal_append(j, rec, sizeof rec);
		assert_int_equal(seq, i);
		if (i > 3)
			journal_retire(j, (uint64_t)i - 2); /* keep the last three live */
	}
	assert_int_equal(journal_sync(j), 0);
	uint64_t live, size;
	journal_usage(j, &live, &size);
	assert_int_equal(size, max); /* never grew past the maximum */
	/* not retired any more: the ring fills, then says so */
	int64_t r = 0;
	int added = 0;
	while ((r = journal_append(j, rec, sizeof rec)) > 0)
		added++;
	assert_int_equal(r, -ENOSPC);
	assert_true(added >= 4 && added <= 8);
	assert_int_equal(journal_append(j, rec, 2u << 20), -EMSGSIZE);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	struct jt_seen *s = jt_reopen(max);
	/* live: 58..60 (below 58 retired; the mark went out with record 61) + added */
	assert_int_equal(s->n, 3 + added);
	assert_int_equal(s->seq[0], 58);
	assert_string_equal(s->first[0], "rec 58");
	for (int i = 1; i < s->n; i++)
		assert_int_equal(s->seq[i], s->seq[i - 1] + 1);
}

static void jt_grows(void **state)
{
	(void)state;
	struct journal *j;
	char rec[200000];
	memset(rec, 'g', sizeof rec);
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	for (int i = 0; i < 20; i++) /* 4 MB live: more than the first 1 MiB */
		assert_true(journal_append(j, rec, sizeof rec) > 0);
	uint64_t live, size;
	journal_usage(j, &live, &size);
	assert_true(size >= live && size > (3u << 20));
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	struct jt_seen *s = jt_reopen(0);
	assert_int_equal(s->n, 20);
}

/* At the end of the ring: wrap while at most half of it is live, grow instead while
 * more is (a ring that is too small for one checkpoint interval would fill). */
static void jt_grows_before_tight(void **state)
{
	(void)state;
	char rec[5000];
	memset(rec, 'w', sizeof rec);
	for (int keep = 40; keep <= 160; keep += 120) { /* ~20 % live, then ~80 % */
		struct journal *j;
		unlink(jt_path);
		assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
		uint64_t live, size, first;
		journal_usage(j, &live, &first);
		for (int i = 1; i <= 400; i++) { /* ~2 MB: passes the end of 1 MiB */
			assert_int_equal(journal_append(j, rec, sizeof rec), i);
			if (i > keep)
				journal_retire(j, (uint64_t)(i - keep));
		}
		journal_usage(j, &live, &size);
		if (keep == 40)
			assert_int_equal(size, first); /* wrapped */
		else
			assert_true(size > first); /* grew */
		journal_close(j);
	}
}

static off_t jt_find(const char *needle)
{
	int fd = open(jt_path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	char *b = malloc((size_t)st.st_size);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	char *at = memmem(b, (size_t)st.st_size, needle, strlen(needle));
	assert_non_null(at);
	off_t off = at - b;
	free(b);
	return off;
}

static void jt_poke(off_t off, const void *p, size_t n)
{
	int fd = open(jt_path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
	close(fd);
}

static void jt_damage(void **state)
{
	(void)state;
	struct journal *j;
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	assert_int_equal(journal_append(j, "alpha", 5), 1);
	assert_int_equal(journal_append(j, "bravo", 5), 2);
	assert_int_equal(journal_append(j, "charlie", 7), 3);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	jt_poke(jt_find("bravo") + 2, "X", 1); /* a torn or rotten record */
	struct jt_seen *s = jt_reopen(0);
	assert_int_equal(s->n, 2);
	assert_string_equal(s->first[0], "alpha");
	assert_string_equal(s->first[1], "charlie");

	/* a record built by someone who does not know the file's id: ignored. A copy
	 * of a real record's header with the payload changed fails the checksum too. */
	char hdr[40];
	int fd = open(jt_path, O_RDONLY);
	off_t at = jt_find("alpha") - 40;
	assert_int_equal(pread(fd, hdr, sizeof hdr, at), 40);
	close(fd);
	off_t spot = (jt_find("charlie") / JOURNAL_ALIGN + 8) * JOURNAL_ALIGN;
	char forged[64];
	memcpy(forged, hdr, 40);
	memcpy(forged + 40, "evil!", 5);
	uint64_t seq = 9;
	memcpy(forged + 16, &seq, 8);
	jt_poke(spot, forged, 45);
	s = jt_reopen(0);
	assert_int_equal(s->n, 2);
	/* with the right id and checksum it would be taken: the check is what matters */
	uint64_t bad_id = 12345;
	memcpy(forged + 8, &bad_id, 8);
	uint32_t zero = 0;
	memcpy(forged + 4, &zero, 4);
	uint32_t c = crc32c(crc32c(0, forged, 40), forged + 40, 5);
	memcpy(forged + 4, &c, 4);
	jt_poke(spot, forged, 45);
	s = jt_reopen(0);
	assert_int_equal(s->n, 2); /* right checksum, wrong id */
}

static void jt_bad_header(void **state)
{
	(void)state;
	struct jt_seen *s = jt_reopen(0);
	struct journal *j;
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	assert_int_equal(journal_append(j, "kept aside", 10), 1);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	jt_poke(0, "NOTAJRNL", 8);
	s = jt_reopen(0);
	assert_int_equal(s->n, 0); /* a new journal */
	DIR *d = opendir(jt_dir);
	struct dirent *de;
	int aside = 0;
	while ((de = readdir(d)) != NULL)
		aside += strncmp(de->d_name, "j.corrupt-", 10) == 0;
	closedir(d);
	assert_int_equal(aside, 1);
	/* a file too short to be a journal goes aside as well */
	d = opendir(jt_dir);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "j.corrupt-", 10) == 0) {
			char p[600];
			snprintf(p, sizeof p, "%s/%s", jt_dir, de->d_name);
			unlink(p);
		}
	}
	closedir(d);
	int fd = open(jt_path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	s = jt_reopen(0);
	assert_int_equal(s->n, 0);
}

static void jt_replay_failure_stays_live(void **state)
{
	(void)state;
	struct journal *j;
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_true(journal_append(j, "r", 1) > 0);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	static struct jt_seen s;
	memset(&s, 0, sizeof s);
	s.fail_seq = 2;
	assert_int_equal(journal_open(&j, jt_path, 0, jt_replay, &s), 0);
	assert_int_equal(s.n, 3); /* every record was offered; 2 failed */
	journal_retire(j, 2);     /* the caller retires up to the failure */
	assert_int_equal(journal_append(j, NULL, 0), 4);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	struct jt_seen *t = jt_reopen(0);
	assert_int_equal(t->n, 2);
	assert_int_equal(t->seq[0], 2);
}

/* A new journal is made in a scratch directory (gone afterwards) and renamed into
 * place; on ext4 the directory holding it is marked FS_TOPDIR_FL, so the scratch
 * directory and the file's inode land in another block group (journal.c
 * journal_scratch_dir). */
static void jt_created_aside(void **state)
{
	(void)state;
	struct journal *j;
	assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
	assert_true(journal_append(j, "x", 1) > 0);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	char p[400];
	snprintf(p, sizeof p, "%s/.journal-new", jt_dir);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	struct statfs sf;
	int fd = open(jt_dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	int fl = 0;
	if (fstatfs(fd, &sf) == 0 && sf.f_type == EXT4_SUPER_MAGIC &&
	    ioctl(fd, FS_IOC_GETFLAGS, &fl) == 0)
		assert_true(fl & FS_TOPDIR_FL);
	close(fd);
	struct jt_seen *s = jt_reopen(0);
	assert_int_equal(s->n, 1);
}

/* Each way of writing (asynchronous O_DIRECT, O_DIRECT, buffered): records appended
 * before a submit, between a submit and the sync (the append waits for the write in
 * flight) and after it all come back, in order, with their bytes. */
static void jt_io_modes(void **state)
{
	(void)state;
	static const struct {
		const char *direct, *aio, *mode;
	} modes[] = {
	    {NULL, NULL, "direct-aio"}, {NULL, "0", "direct"}, {"0", NULL, "buffered"}};
	struct statfs sf;
	assert_int_equal(statfs(jt_dir, &sf), 0);
	for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
		unlink(jt_path);
		if (modes[k].direct)
			setenv("TERN_JOURNAL_DIRECT", modes[k].direct, 1);
		if (modes[k].aio)
			setenv("TERN_JOURNAL_AIO", modes[k].aio, 1);
		struct journal *j;
		assert_int_equal(journal_open(&j, jt_path, 0, NULL, NULL), 0);
		unsetenv("TERN_JOURNAL_DIRECT");
		unsetenv("TERN_JOURNAL_AIO");
		if (sf.f_type == EXT4_SUPER_MAGIC) /* O_DIRECT and AIO there */
			assert_string_equal(journal_io_mode(j), modes[k].mode);
		char rec[3000];
		for (int i = 1; i <= 9; i++) {
			memset(rec, 'a' + i, sizeof rec);
			snprintf(rec, sizeof rec, "rec %d", i);
			assert_int_equal(journal_append(j, rec, sizeof rec - (size_t)i * 100), i);
			if (i == 3 || i == 5)
				assert_int_equal(journal_submit(j), 0);
			if (i == 7)
				assert_int_equal(journal_sync(j), 0);
		}
		assert_int_equal(journal_sync(j), 0);
		assert_int_equal(journal_sync(j), 0); /* nothing new: still fine */
		journal_close(j);
		struct jt_seen *s = jt_reopen(0);
		assert_int_equal(s->n, 9);
		for (int i = 0; i < 9; i++) {
			char want[16];
			snprintf(want, sizeof want, "rec %d", i + 1);
			assert_int_equal(s->seq[i], i + 1);
			assert_string_equal(s->first[i], want);
			assert_int_equal(s->len[i], 3000 - (size_t)(i + 1) * 100);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(jt_crc),
	    cmocka_unit_test_setup_teardown(jt_append_replay, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_retire, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_wrap_and_full, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_grows, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_grows_before_tight, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_damage, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_bad_header, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_replay_failure_stays_live, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_created_aside, jt_setup, jt_teardown),
	    cmocka_unit_test_setup_teardown(jt_io_modes, jt_setup, jt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
