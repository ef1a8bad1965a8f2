build-dev/obj/src/queue/journal.o: src/queue/journal.c \
 src/queue/journal.h src/util/crc32c.h src/util/log.h
src/queue/journal.h:
src/util/crc32c.h:
src/util/log.h:
