/* queue_cmd.c - `tern queue list [--json] | show ID | flush [ID] | hold ID |
 * release ID | delete ID`: sends one request line to ternd's admin socket
 * (<data_dir>/ternd.sock; file permissions are the access control) and prints the
 * answer. It never touches the queue files itself, so it cannot race delivery.
 * The data dir comes from -d DIR, or from -c CONFIG's data_dir, or is ./var. */
#include "client/queue_cmd.h"
#include "policy/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

static void queue_usage(FILE *f)
{
	fputs("usage: tern queue [-d DATA_DIR | -c CONFIG] COMMAND\n"
	      "  list [--json]   id, age, size, sender, recipients, state, last error\n"
	      "  show ID         envelope and headers of one message\n"
	      "  flush [ID]      retry now (one message, or all)\n"
	      "  hold ID         no delivery attempts until released\n"
	      "  release ID      undo hold\n"
	      "  delete ID       remove from the queue (no bounce)\n",
	      f);
}

int client_queue_main(int argc, char **argv)
{
	const char *data = NULL, *cfgfile = NULL;
	char dir[512], req[300], err[1024];
	int opt;
	optind = 1;
	while ((opt = getopt(argc, argv, "+d:c:h")) != -1) {
		switch (opt) {
		case 'd':
			data = optarg;
			break;
		case 'c':
			cfgfile = optarg;
			break;
		case 'h':
			queue_usage(stdout);
			return EX_OK;
		default:
			queue_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		queue_usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[optind];
	const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (strcmp(cmd, "list") == 0) {
		if (arg != NULL && strcmp(arg, "--json") != 0) {
			queue_usage(stderr);
			return EX_USAGE;
		}
		snprintf(req, sizeof req, "%s\n", arg ? "list-json" : "list");
	} else if (strcmp(cmd, "flush") == 0 || strcmp(cmd, "show") == 0 ||
	           strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0 ||
	           strcmp(cmd, "delete") == 0) {
		if ((arg == NULL && strcmp(cmd, "flush") != 0) || optind + 2 < argc ||
		    (arg != NULL && (strlen(arg) > 64 || strpbrk(arg, " \r\n") != NULL))) {
			queue_usage(stderr);
			return EX_USAGE;
		}
		snprintf(req, sizeof req, "%s%s%s\n", cmd, arg ? " " : "", arg ? arg : "");
	} else {
		fprintf(stderr, "tern queue: unknown command \"%s\"\n", cmd);
		queue_usage(stderr);
		return EX_USAGE;
	}
	if (data != NULL) {
		snprintf(dir, sizeof dir, "%s", data);
	} else if (cfgfile != NULL) {
		struct config *c = config_load(cfgfile, err, sizeof err);
		if (c == NULL) {
			fprintf(stderr, "tern queue: %s\n", err);
			return EX_CONFIG;
		}
		snprintf(dir, sizeof dir, "%s", c->data_dir);
		config_free(c);
	} else {
		snprintf(dir, sizeof dir, "./var");
	}
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s/ternd.sock", dir) >=
	    (int)sizeof sa.sun_path) {
		fprintf(stderr, "tern queue: data directory path too long for a socket\n");
		return EX_USAGE;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr, "tern queue: ternd is not running (no server on %s)\n",
			        sa.sun_path);
		else if (e == EACCES || e == EPERM)
			fprintf(stderr, "tern queue: %s: permission denied (run as the user ternd "
			                "runs as)\n", sa.sun_path);
		else
			fprintf(stderr, "tern queue: %s: %s\n", sa.sun_path, strerror(e));
		return EX_UNAVAILABLE;
	}
	size_t rl = strlen(req);
	if (write(fd, req, rl) != (ssize_t)rl) {
		fprintf(stderr, "tern queue: write: %s\n", strerror(errno));
		close(fd);
		return EX_IOERR;
	}
	char buf[65536];
	size_t have = 0;
	bool first = true, ok = false;
	ssize_t n;
	while ((n = read(fd, buf + have, sizeof buf - have)) > 0) {
		have += (size_t)n;
		if (first) {
			char *nl = memchr(buf, '\n', have);
			if (nl == NULL && have < sizeof buf)
				continue;
			first = false;
			size_t l = nl ? (size_t)(nl - buf) + 1 : have;
			ok = l == 3 && memcmp(buf, "ok\n", 3) == 0;
			if (!ok)
				fprintf(stderr, "tern queue: %.*s", (int)l, buf);
			memmove(buf, buf + l, have - l);
			have -= l;
		}
		fwrite(buf, 1, have, ok ? stdout : stderr);
		have = 0;
	}
	close(fd);
	if (first) {
		fprintf(stderr, "tern queue: no answer from ternd\n");
		return EX_UNAVAILABLE;
	}
	return ok ? EX_OK : EX_DATAERR;
}
