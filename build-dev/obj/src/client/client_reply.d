build-dev/obj/src/client/client_reply.o: src/client/client_reply.c \
 src/client/client_reply.h src/util/limits.h
src/client/client_reply.h:
src/util/limits.h:
