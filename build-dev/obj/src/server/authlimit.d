build-dev/obj/src/server/authlimit.o: src/server/authlimit.c \
 src/server/authlimit.h
src/server/authlimit.h:
