build-dev/obj/src/policy/config.o: src/policy/config.c \
 src/policy/config.h src/policy/config_relay.h src/policy/config_int.h \
 src/util/limits.h
src/policy/config.h:
src/policy/config_relay.h:
src/policy/config_int.h:
src/util/limits.h:
