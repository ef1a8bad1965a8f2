/* queue_cmd.h - `tern queue`: talk to a running ternd over its admin socket. */
#ifndef TERN_QUEUE_CMD_H
#define TERN_QUEUE_CMD_H

int client_queue_main(int argc, char **argv);

#endif
