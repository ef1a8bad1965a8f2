build-dev/obj/src/smtp/smtp_reply.o: src/smtp/smtp_reply.c \
 src/smtp/smtp_reply.h src/util/buf.h src/util/limits.h
src/smtp/smtp_reply.h:
src/util/buf.h:
src/util/limits.h:
