build-dev/obj/src/deliver/relay.o: src/deliver/relay.c \
 src/deliver/relay.h src/policy/config.h src/policy/config_relay.h \
 src/deliver/bounce.h src/util/buf.h src/queue/spool.h \
 src/smtp/smtp_client.h src/util/log.h
src/deliver/relay.h:
src/policy/config.h:
src/policy/config_relay.h:
src/deliver/bounce.h:
src/util/buf.h:
src/queue/spool.h:
src/smtp/smtp_client.h:
src/util/log.h:
