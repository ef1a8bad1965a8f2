build-dev/obj/src/policy/config_cidr.o: src/policy/config_cidr.c \
 src/policy/config_int.h src/policy/config.h src/policy/config_relay.h
src/policy/config_int.h:
src/policy/config.h:
src/policy/config_relay.h:
