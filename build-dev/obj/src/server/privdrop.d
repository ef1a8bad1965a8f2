build-dev/obj/src/server/privdrop.o: src/server/privdrop.c \
 src/server/privdrop.h src/util/log.h
src/server/privdrop.h:
src/util/log.h:
