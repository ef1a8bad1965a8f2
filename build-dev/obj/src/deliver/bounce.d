build-dev/obj/src/deliver/bounce.o: src/deliver/bounce.c \
 src/deliver/bounce.h src/util/buf.h src/queue/spool.h
src/deliver/bounce.h:
src/util/buf.h:
src/queue/spool.h:
