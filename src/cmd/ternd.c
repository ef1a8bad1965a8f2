/* ternd.c - the daemon's main(): parse flags, load the config (a file or the
 * built-in default), run the server. All the work is in src/server/. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "policy/config.h"
#include "server/server.h"
#include "server/tls.h"
#include "util/log.h"

#define TERND_VERSION "0.1.0"

static void ternd_usage(FILE *f)
{
	fprintf(f,
	        "usage: ternd [-c FILE] [--listen ADDR:PORT]... [--data DIR] [--hostname NAME]\n"
	        "             [--debug] [--check] [--help] [--version]\n"
	        "\n"
	        "Runs the tern SMTP server in the foreground, logging to stderr.\n"
	        "Without -c it runs the built-in default: listen on 127.0.0.1:2525, accept\n"
	        "mail for any domain, store it in Maildirs under ./var/mail/<domain>/<user>/Maildir,\n"
	        "never relay.\n"
	        "\n"
	        "  -c, --config FILE     run with FILE (docs/CONFIG.md); errors print FILE:LINE\n"
	        "  -l, --listen ADDR:PORT listen here instead of the configured listeners\n"
	        "                        (repeatable; IPv6 as [::1]:2525)\n"
	        "  -d, --data DIR        data directory (spool and mailboxes), default ./var\n"
	        "  -H, --hostname NAME   our name in the greeting and Received headers\n"
	        "      --debug           log debug events too\n"
	        "      --check           load the configuration, report, and exit\n"
	        "  -h, --help            this text\n"
	        "  -V, --version         print the version\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT stop (in-flight messages are committed first, open\n"
	        "sessions get 421), SIGHUP reloads the config file (a bad file keeps the old one).\n");
}

/* Each session is a descriptor: take every one the hard limit allows (the soft
 * limit is often 1024, far below max_connections). */
static void ternd_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_debug("event=nofile-raised from=%llu to=%llu", (unsigned long long)old,
			          (unsigned long long)rl.rlim_cur);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"data", required_argument, NULL, 'd'},
		{"hostname", required_argument, NULL, 'H'},
		{"debug", no_argument, NULL, 'D'},
		{"check", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *cfgfile = NULL, *data = NULL, *hostname = NULL;
	const char *listens[64];
	size_t nlistens = 0;
	int debug = 0, check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:l:d:H:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cfgfile = optarg;
			break;
		case 'l':
			if (nlistens == sizeof listens / sizeof listens[0]) {
				fprintf(stderr, "ternd: too many --listen\n");
				return 64;
			}
			listens[nlistens++] = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 'H':
			hostname = optarg;
			break;
		case 'D':
			debug = 1;
			break;
		case 'C':
			check = 1;
			break;
		case 'h':
			ternd_usage(stdout);
			return 0;
		case 'V':
			printf("ternd %s\n", TERND_VERSION);
			return 0;
		default:
			ternd_usage(stderr);
			return 64;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ternd: unexpected argument '%s'\n", argv[optind]);
		ternd_usage(stderr);
		return 64;
	}

	char err[1024];
	struct config *cfg;
	if (cfgfile != NULL) {
		cfg = config_load(cfgfile, err, sizeof err);
		if (cfg == NULL) {
			fprintf(stderr, "ternd: %s\n", err);
			return 78; /* EX_CONFIG */
		}
	} else {
		cfg = config_default();
		if (cfg == NULL) {
			fprintf(stderr, "ternd: out of memory\n");
			return 71;
		}
	}
	for (size_t i = 0; i < nlistens; i++) {
		if (config_add_listener(cfg, listens[i], i == 0, err, sizeof err) < 0) {
			fprintf(stderr, "ternd: --listen %s: %s\n", listens[i], err);
			config_free(cfg);
			return 64;
		}
	}
	if (data != NULL && snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data) >=
	                        (int)sizeof cfg->data_dir) {
		fprintf(stderr, "ternd: --data: path too long\n");
		config_free(cfg);
		return 64;
	}
	if (hostname != NULL && snprintf(cfg->hostname, sizeof cfg->hostname, "%s", hostname) >=
	                            (int)sizeof cfg->hostname) {
		fprintf(stderr, "ternd: --hostname: too long\n");
		config_free(cfg);
		return 64;
	}
	if (check) {
		if (tls_check_config(cfg, err, sizeof err) < 0) {
			fprintf(stderr, "ternd: %s\n", err);
			config_free(cfg);
			return 78; /* EX_CONFIG */
		}
		printf("%s: ok\n", cfgfile ? cfgfile : "(built-in default)");
		config_free(cfg);
		return 0;
	}
	log_init("ternd", debug ? LOG_LV_DEBUG : LOG_LV_INFO, cfg->use_syslog);
	ternd_raise_nofile();

	struct server *srv;
	if (server_new(&srv, cfg, cfgfile) < 0) {
		fprintf(stderr, "ternd: out of memory\n");
		config_free(cfg);
		return 71;
	}
	int rc = server_run(srv);
	server_free(srv);
	return rc;
}
