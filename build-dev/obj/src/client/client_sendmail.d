build-dev/obj/src/client/client_sendmail.o: src/client/client_sendmail.c \
 src/client/client_cmd.h src/client/client_codec.h src/util/buf.h \
 src/client/client_io.h src/client/client_maildrop.h \
 src/client/client_mime.h src/client/client_send.h \
 src/client/client_smtp.h src/client/client_reply.h src/util/limits.h
src/client/client_cmd.h:
src/client/client_codec.h:
src/util/buf.h:
src/client/client_io.h:
src/client/client_maildrop.h:
src/client/client_mime.h:
src/client/client_send.h:
src/client/client_smtp.h:
src/client/client_reply.h:
src/util/limits.h:
