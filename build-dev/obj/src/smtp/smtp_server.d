build-dev/obj/src/smtp/smtp_server.o: src/smtp/smtp_server.c \
 src/smtp/smtp_server.h src/smtp/smtp_addr.h src/util/limits.h \
 src/smtp/smtp_dsn.h src/smtp/smtp_reply.h src/util/buf.h \
 src/util/base64.h
src/smtp/smtp_server.h:
src/smtp/smtp_addr.h:
src/util/limits.h:
src/smtp/smtp_dsn.h:
src/smtp/smtp_reply.h:
src/util/buf.h:
src/util/base64.h:
