/* client_misc.c - the small tern subcommands: usage text, `tern check-config`
 * (parse a ternd config file with the daemon's own loader) and `tern passwd`
 * (yescrypt hash via libcrypt). No SMTP here. */
#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/client_cmd.h"
#include "client/client_io.h"
#include "policy/config.h"
#include "policy/sasl.h"
#include "server/tls.h"

void client_usage(void)
{
	fputs("usage: tern COMMAND [options]\n"
	      "commands:\n"
	      "  send          compose and send a message over SMTP (tern send --help)\n"
	      "  sendmail      sendmail(8)-compatible injection into the local ternd\n"
	      "                (also when run as \"sendmail\"); -bs: SMTP on stdin/stdout\n"
	      "  chat HOST[:PORT]  interactive SMTP session with explained replies\n"
	      "  check-config FILE  check a ternd configuration file\n"
	      "  passwd        hash a password (yescrypt) for a users file\n"
	      "  help          this text\n"
	      "see docs/CLIENT.md for examples\n",
	      stdout);
}

int client_check_config_main(int argc, char **argv)
{
	char err[1024] = "";
	if (argc != 2 || argv[1][0] == '-') {
		fputs("usage: tern check-config FILE\n"
		      "prints \"FILE: ok\" (exit 0) or \"FILE:LINE: problem\" on stderr (exit 78)\n",
		      argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? EX_OK : EX_USAGE;
	}
	if (access(argv[1], R_OK) < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return EX_NOINPUT;
	}
	struct config *c = config_load(argv[1], err, sizeof err);
	if (c == NULL) {
		fprintf(stderr, "%s\n", err[0] != '\0' ? err : "config: invalid");
		return EX_CONFIG;
	}
	/* what the loader cannot see: certificates and keys are read when ternd starts */
	if (tls_check_config(c, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		config_free(c);
		return EX_CONFIG;
	}
	config_free(c);
	printf("%s: ok\n", argv[1]);
	return EX_OK;
}

int client_passwd_main(int argc, char **argv)
{
	char pw[512], again[512], salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *prefix = "$y$";
	int ex = EX_OK, rc;
	struct crypt_data *cd = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sha512") == 0) {
			prefix = "$6$";
		} else if (strcmp(argv[i], "--bcrypt") == 0) {
			prefix = "$2b$";
		} else if (strcmp(argv[i], "--yescrypt") == 0) {
			prefix = "$y$";
		} else if (strcmp(argv[i], "--scram") == 0) {
			prefix = NULL; /* SCRAM-SHA-256 stored keys (policy/sasl.h) */
		} else {
			fputs("usage: tern passwd [--yescrypt|--sha512|--bcrypt|--scram]\n"
			      "reads the password from the terminal (twice, no echo) or one line of "
			      "stdin;\nprints its crypt(3) hash (yescrypt \"$y$...\" by default)\n",
			      strcmp(argv[i], "--help") == 0 ? stdout : stderr);
			return strcmp(argv[i], "--help") == 0 ? EX_OK : EX_USAGE;
		}
	}
	if (isatty(STDIN_FILENO)) {
		if (client_io_password("Password: ", pw, sizeof pw) < 0 ||
		    client_io_password("Again: ", again, sizeof again) < 0) {
			fprintf(stderr, "tern: cannot read the password\n");
			ex = EX_IOERR;
			goto fail;
		}
		if (strcmp(pw, again) != 0) {
			fprintf(stderr, "tern: the passwords differ\n");
			ex = EX_DATAERR;
			goto fail;
		}
	} else if ((rc = client_io_read_line_fd(STDIN_FILENO, pw, sizeof pw)) < 0) {
		fprintf(stderr, "tern: cannot read the password from stdin: %s\n",
		        rc == -ENODATA ? "no input" : rc == -EINVAL ? "line too long" : strerror(-rc));
		ex = EX_DATAERR;
		goto fail;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "tern: empty password\n");
		ex = EX_DATAERR;
		goto fail;
	}
	if (prefix == NULL) {
		char sec[300];

		if (sasl_scram_secret(pw, SASL_SCRAM_ITER_DEFAULT, sec, sizeof sec) < 0) {
			fprintf(stderr, "tern: cannot compute the SCRAM keys\n");
			ex = EX_SOFTWARE;
			goto fail;
		}
		printf("%s\n", sec);
		goto fail; /* done: same cleanup */
	}
	if (crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof salt) == NULL) {
		fprintf(stderr, "tern: crypt_gensalt: %s\n", strerror(errno));
		ex = EX_SOFTWARE;
		goto fail;
	}
	cd = calloc(1, sizeof *cd);
	if (cd == NULL) {
		ex = EX_OSERR;
		goto fail;
	}
	const char *h = crypt_r(pw, salt, cd);
	if (h == NULL || h[0] == '*') {
		fprintf(stderr, "tern: crypt failed\n");
		ex = EX_SOFTWARE;
		goto fail;
	}
	printf("%s\n", h);
fail:
	OPENSSL_cleanse(pw, sizeof pw);
	OPENSSL_cleanse(again, sizeof again);
	if (cd != NULL)
		OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return ex;
}
