build-dev/obj/src/policy/sasl.o: src/policy/sasl.c src/policy/sasl.h \
 src/util/base64.h
src/policy/sasl.h:
src/util/base64.h:
