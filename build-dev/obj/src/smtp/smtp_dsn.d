build-dev/obj/src/smtp/smtp_dsn.o: src/smtp/smtp_dsn.c \
 src/smtp/smtp_dsn.h
src/smtp/smtp_dsn.h:
