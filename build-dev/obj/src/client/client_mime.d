build-dev/obj/src/client/client_mime.o: src/client/client_mime.c \
 src/client/client_mime.h src/util/buf.h src/client/client_codec.h \
 src/util/limits.h
src/client/client_mime.h:
src/util/buf.h:
src/client/client_codec.h:
src/util/limits.h:
