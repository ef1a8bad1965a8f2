build-dev/obj/src/client/client_codec.o: src/client/client_codec.c \
 src/client/client_codec.h src/util/buf.h
src/client/client_codec.h:
src/util/buf.h:
