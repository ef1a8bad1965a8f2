build-dev/obj/src/deliver/direct.o: src/deliver/direct.c \
 src/deliver/direct.h src/queue/spool.h src/deliver/local.h \
 src/deliver/maildir.h src/queue/journal.h src/util/buf.h src/util/log.h
src/deliver/direct.h:
src/queue/spool.h:
src/deliver/local.h:
src/deliver/maildir.h:
src/queue/journal.h:
src/util/buf.h:
src/util/log.h:
