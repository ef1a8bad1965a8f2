/* client_cmd.h - the subcommands of the tern tool, each a main-like function that
 * parses its own arguments and returns a sysexits(3) code. src/cmd/tern.c only
 * dispatches. Usage text and examples live in docs/CLIENT.md. */
#ifndef TERN_CLIENT_CMD_H
#define TERN_CLIENT_CMD_H

int client_send_main(int argc, char **argv);
int client_sendmail_main(int argc, char **argv);
int client_chat_main(int argc, char **argv);
int client_check_config_main(int argc, char **argv);
int client_passwd_main(int argc, char **argv);
void client_usage(void);

#endif
