build-dev/obj/src/policy/config_relay.o: src/policy/config_relay.c \
 src/policy/config_relay.h
src/policy/config_relay.h:
