build-dev/obj/src/queue/spool_state.o: src/queue/spool_state.c \
 src/queue/spool.h src/util/buf.h
src/queue/spool.h:
src/util/buf.h:
