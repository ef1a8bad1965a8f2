build-dev/obj/src/client/client_misc.o: src/client/client_misc.c \
 src/client/client_cmd.h src/client/client_io.h src/util/buf.h \
 src/policy/config.h src/policy/config_relay.h src/policy/sasl.h
src/client/client_cmd.h:
src/client/client_io.h:
src/util/buf.h:
src/policy/config.h:
src/policy/config_relay.h:
src/policy/sasl.h:
