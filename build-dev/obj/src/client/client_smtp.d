build-dev/obj/src/client/client_smtp.o: src/client/client_smtp.c \
 src/client/client_smtp.h src/client/client_reply.h src/util/limits.h \
 src/util/buf.h src/client/client_codec.h src/client/client_scram.h
src/client/client_smtp.h:
src/client/client_reply.h:
src/util/limits.h:
src/util/buf.h:
src/client/client_codec.h:
src/client/client_scram.h:
