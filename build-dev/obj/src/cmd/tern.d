build-dev/obj/src/cmd/tern.o: src/cmd/tern.c src/client/client_cmd.h \
 src/client/queue_cmd.h
src/client/client_cmd.h:
src/client/queue_cmd.h:
