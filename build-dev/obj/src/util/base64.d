build-dev/obj/src/util/base64.o: src/util/base64.c src/util/base64.h
src/util/base64.h:
