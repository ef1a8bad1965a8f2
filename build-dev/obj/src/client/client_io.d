build-dev/obj/src/client/client_io.o: src/client/client_io.c \
 src/client/client_io.h src/util/buf.h
src/client/client_io.h:
src/util/buf.h:
