build-dev/obj/src/client/client_maildrop.o: src/client/client_maildrop.c \
 src/client/client_maildrop.h src/client/client_mime.h src/util/buf.h
src/client/client_maildrop.h:
src/client/client_mime.h:
src/util/buf.h:
