build-dev/obj/src/server/ipcount.o: src/server/ipcount.c \
 src/server/ipcount.h
src/server/ipcount.h:
