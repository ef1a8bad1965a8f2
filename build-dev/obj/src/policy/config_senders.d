build-dev/obj/src/policy/config_senders.o: src/policy/config_senders.c \
 src/policy/config_int.h src/policy/config.h src/policy/config_relay.h
src/policy/config_int.h:
src/policy/config.h:
src/policy/config_relay.h:
