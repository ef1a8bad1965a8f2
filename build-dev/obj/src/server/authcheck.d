build-dev/obj/src/server/authcheck.o: src/server/authcheck.c \
 src/server/authcheck.h src/policy/sasl.h
src/server/authcheck.h:
src/policy/sasl.h:
