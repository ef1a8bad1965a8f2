build-dev/obj/src/policy/config_lists.o: src/policy/config_lists.c \
 src/policy/config_int.h src/policy/config.h src/policy/config_relay.h \
 src/util/limits.h
src/policy/config_int.h:
src/policy/config.h:
src/policy/config_relay.h:
src/util/limits.h:
