/* tern.c - main of the tern command: dispatch to a subcommand (send, sendmail, chat,
 * check-config, passwd, help), or act as sendmail(8) when called as "sendmail".
 * All work is in src/client/; this file only picks the function. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "client/client_cmd.h"
#include "client/queue_cmd.h"

int main(int argc, char **argv)
{
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	base = base != NULL ? base + 1 : (argc > 0 ? argv[0] : "tern");
	if (strcmp(base, "sendmail") == 0)
		return client_sendmail_main(argc, argv);
	if (argc < 2) {
		client_usage();
		return EX_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "send") == 0)
		return client_send_main(argc - 1, argv + 1);
	if (strcmp(cmd, "sendmail") == 0)
		return client_sendmail_main(argc - 1, argv + 1);
	if (strcmp(cmd, "queue") == 0)
		return client_queue_main(argc - 1, argv + 1);
	if (strcmp(cmd, "chat") == 0)
		return client_chat_main(argc - 1, argv + 1);
	if (strcmp(cmd, "check-config") == 0)
		return client_check_config_main(argc - 1, argv + 1);
	if (strcmp(cmd, "passwd") == 0)
		return client_passwd_main(argc - 1, argv + 1);
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		client_usage();
		return EX_OK;
	}
	fprintf(stderr, "tern: unknown command \"%s\"\n", cmd);
	client_usage();
	return EX_USAGE;
}
