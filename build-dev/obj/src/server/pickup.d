build-dev/obj/src/server/pickup.o: src/server/pickup.c \
 src/server/pickup.h src/policy/config.h src/policy/config_relay.h \
 src/queue/spool.h src/server/envelope.h src/util/buf.h src/util/limits.h \
 src/util/log.h
src/server/pickup.h:
src/policy/config.h:
src/policy/config_relay.h:
src/queue/spool.h:
src/server/envelope.h:
src/util/buf.h:
src/util/limits.h:
src/util/log.h:
