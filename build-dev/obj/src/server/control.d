build-dev/obj/src/server/control.o: src/server/control.c \
 src/server/control.h src/queue/spool.h src/util/buf.h src/util/log.h
src/server/control.h:
src/queue/spool.h:
src/util/buf.h:
src/util/log.h:
