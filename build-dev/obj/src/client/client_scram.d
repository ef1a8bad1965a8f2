build-dev/obj/src/client/client_scram.o: src/client/client_scram.c \
 src/client/client_scram.h src/client/client_codec.h src/util/buf.h \
 src/client/client_mime.h
src/client/client_scram.h:
src/client/client_codec.h:
src/util/buf.h:
src/client/client_mime.h:
