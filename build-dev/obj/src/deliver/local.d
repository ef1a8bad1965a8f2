build-dev/obj/src/deliver/local.o: src/deliver/local.c \
 src/deliver/local.h src/deliver/maildir.h src/queue/spool.h \
 src/util/buf.h src/util/log.h
src/deliver/local.h:
src/deliver/maildir.h:
src/queue/spool.h:
src/util/buf.h:
src/util/log.h:
