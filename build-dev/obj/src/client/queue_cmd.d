build-dev/obj/src/client/queue_cmd.o: src/client/queue_cmd.c \
 src/client/queue_cmd.h src/policy/config.h src/policy/config_relay.h
src/client/queue_cmd.h:
src/policy/config.h:
src/policy/config_relay.h:
