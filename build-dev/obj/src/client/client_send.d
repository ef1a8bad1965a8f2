build-dev/obj/src/client/client_send.o: src/client/client_send.c \
 src/client/client_send.h src/client/client_mime.h src/util/buf.h \
 src/client/client_smtp.h src/client/client_reply.h src/util/limits.h \
 src/client/client_cmd.h src/client/client_codec.h src/client/client_io.h
src/client/client_send.h:
src/client/client_mime.h:
src/util/buf.h:
src/client/client_smtp.h:
src/client/client_reply.h:
src/util/limits.h:
src/client/client_cmd.h:
src/client/client_codec.h:
src/client/client_io.h:
