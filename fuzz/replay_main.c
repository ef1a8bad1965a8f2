/* replay_main.c - a main() for libFuzzer targets built without libFuzzer: feeds
 * each file named on the command line (or each regular file inside a directory
 * named there) to LLVMFuzzerTestOneInput once. No arguments: does nothing, exits 0.
 * Does not mutate inputs or search for crashes by itself; it replays corpora so
 * the targets always build and their seeds are exercised by the test run.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			uint8_t *nd = realloc(data, ncap);

			if (nd == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			data = nd;
			cap = ncap;
		}
		got = fread(data + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = -EIO;
		goto fail;
	}
	LLVMFuzzerTestOneInput(data, len);
fail:
	free(data);
	fclose(f);
	return rc;
}

static int replay_path(const char *path, unsigned *count)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = replay_file(path);
		if (rc == 0)
			(*count)++;
		return rc;
	}
	d = opendir(path);
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char sub[4096];
		int n;

		if (de->d_name[0] == '.')
			continue;
		n = snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		if (n < 0 || (size_t)n >= sizeof sub)
			continue;
		if (stat(sub, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (replay_file(sub) < 0)
			rc = -EIO;
		else
			(*count)++;
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int i, failed = 0;

	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) < 0)
			failed = 1;
	if (argc > 1)
		fprintf(stderr, "replay: %u inputs\n", count);
	return failed;
}
