build-dev/obj/src/server/ev.o: src/server/ev.c src/server/ev.h \
 src/util/log.h
src/server/ev.h:
src/util/log.h:
