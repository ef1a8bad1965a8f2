build-dev/obj/src/server/envelope.o: src/server/envelope.c \
 src/server/envelope.h src/policy/config.h src/policy/config_relay.h \
 src/queue/spool.h
src/server/envelope.h:
src/policy/config.h:
src/policy/config_relay.h:
src/queue/spool.h:
