# tern build. `make` builds build/ternd and build/tern; `make test` runs everything.
# Sources are picked up by wildcard so new modules need no Makefile edit.
CC      ?= cc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter -Wstrict-prototypes -Wvla
OPT     ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) -Isrc -pthread $(EXTRA_CFLAGS)
LIBS    := -lssl -lcrypto -lcrypt -lcares -pthread
BUILD   ?= build

LIB_SRC  := $(wildcard src/util/*.c src/smtp/*.c src/policy/*.c src/queue/*.c \
                       src/deliver/*.c src/server/*.c src/client/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/*_test.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard fuzz/*_fuzz.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all clean test unit e2e asan lint run deps bench fuzz fuzz-build stress
all: $(BUILD)/ternd $(BUILD)/tern $(BUILD)/sendmail

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libtern.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ternd: $(BUILD)/obj/src/cmd/ternd.o $(BUILD)/libtern.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/tern: $(BUILD)/obj/src/cmd/tern.o $(BUILD)/libtern.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/sendmail: $(BUILD)/tern
	ln -sf tern $@

# Helpers shared by the unit tests (tests/unit/*.c that are not *_test.c).
UNIT_HELP := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELP) $(UNIT_HELP:.c=.h) $(BUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(UNIT_HELP) $(BUILD)/libtern.a $(LIBS) -lcmocka

# Fuzz targets are built as plain programs that replay their corpus (fuzz/main_replay.c),
# so they always compile; build with clang -fsanitize=fuzzer to fuzz for real.
$(BUILD)/fuzz/%: fuzz/%.c fuzz/replay_main.c $(BUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< fuzz/replay_main.c $(BUILD)/libtern.a $(LIBS)

unit: $(UNIT_BIN) $(FUZZ_BIN)

# Sanitizer build in its own tree.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all unit

deps:
	@scripts/deps.sh

test: deps
	$(MAKE) all unit
	$(MAKE) asan
	scripts/run-tests.sh

run: deps all
	mkdir -p var
	$(BUILD)/ternd

lint:
	scripts/lint.sh

# Benchmark against Postfix and smtp-sink (bench/README.md); prints tables, never fails on timing.
bench: deps
	bench/setup.sh
	$(MAKE) BUILD=build-bench OPT=-O2 all
	$(CC) $(CSTD) $(WARN) -O2 -pthread -o build-bench/smtp_latency bench/smtp_latency.c
	$(CC) $(CSTD) $(WARN) -O2 -pthread -o build-bench/smtp_steps bench/smtp_steps.c
	python3 bench/bench.py $(BENCH_ARGS)

# libFuzzer (docs/SECURITY.md): every fuzz/*_fuzz.c built with clang
# -fsanitize=fuzzer,address,undefined into build-fuzz/, then each run for FUZZ_SECONDS
# on a copy of its corpus. `make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS="smtp_data"`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?=
FUZZ_CFLAGS  := $(CSTD) -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Isrc -pthread
FUZZ_LIB_SRC := $(wildcard src/util/*.c src/smtp/*.c)

build-fuzz/%_fuzz: fuzz/%_fuzz.c $(FUZZ_LIB_SRC)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(LIBS)

fuzz-build: $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Long durability runs (docs/SECURITY.md): kill -9 under load 30 times, and the
# power-loss test (ext4 image on a loop device, copied while mounted; needs root).
STRESS_KILLS ?= 30
stress: all
	TERN_BUILD=build TERN_STRESS_KILLS=$(STRESS_KILLS) /usr/bin/python3 -m pytest tests/e2e/test_faults.py -q -k kill9_loop
	/usr/bin/python3 tests/stress/power_loss.py build 10

clean:
	rm -rf build build-*

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
