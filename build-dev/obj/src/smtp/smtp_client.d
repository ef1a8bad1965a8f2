build-dev/obj/src/smtp/smtp_client.o: src/smtp/smtp_client.c \
 src/smtp/smtp_client.h src/util/buf.h
src/smtp/smtp_client.h:
src/util/buf.h:
