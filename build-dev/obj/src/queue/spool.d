build-dev/obj/src/queue/spool.o: src/queue/spool.c src/queue/spool.h \
 src/queue/spool_test_hooks.h src/util/buf.h src/util/log.h
src/queue/spool.h:
src/queue/spool_test_hooks.h:
src/util/buf.h:
src/util/log.h:
