build-dev/obj/src/server/tls.o: src/server/tls.c src/server/tls.h \
 src/server/ev.h
src/server/tls.h:
src/server/ev.h:
