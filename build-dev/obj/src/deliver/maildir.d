build-dev/obj/src/deliver/maildir.o: src/deliver/maildir.c \
 src/deliver/maildir.h
src/deliver/maildir.h:
