build-dev/obj/src/server/server.o: src/server/server.c \
 src/server/server.h src/deliver/direct.h src/queue/spool.h \
 src/deliver/local.h src/deliver/relay.h src/policy/config.h \
 src/policy/config_relay.h src/server/control.h src/policy/sasl.h \
 src/server/authcheck.h src/server/authlimit.h src/server/envelope.h \
 src/server/ev.h src/server/ipcount.h src/server/pickup.h \
 src/server/privdrop.h src/server/tls.h src/smtp/smtp_server.h \
 src/smtp/smtp_addr.h src/util/limits.h src/smtp/smtp_dsn.h \
 src/util/buf.h src/util/log.h
src/server/server.h:
src/deliver/direct.h:
src/queue/spool.h:
src/deliver/local.h:
src/deliver/relay.h:
src/policy/config.h:
src/policy/config_relay.h:
src/server/control.h:
src/policy/sasl.h:
src/server/authcheck.h:
src/server/authlimit.h:
src/server/envelope.h:
src/server/ev.h:
src/server/ipcount.h:
src/server/pickup.h:
src/server/privdrop.h:
src/server/tls.h:
src/smtp/smtp_server.h:
src/smtp/smtp_addr.h:
src/util/limits.h:
src/smtp/smtp_dsn.h:
src/util/buf.h:
src/util/log.h:
