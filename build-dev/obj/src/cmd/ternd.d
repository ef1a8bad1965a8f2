build-dev/obj/src/cmd/ternd.o: src/cmd/ternd.c src/policy/config.h \
 src/policy/config_relay.h src/server/server.h src/util/log.h
src/policy/config.h:
src/policy/config_relay.h:
src/server/server.h:
src/util/log.h:
