SHELL := /bin/bash
# Builds the C side of connectedk8s: the core library, the daemons, one
# test binary per core module (under ASan/UBSan) and the libFuzzer
# targets. The Python extension module is built by setup.py from the same
# sources.
#
#   make            daemons (build/bin/arc-hub ...)
#   make check      C unit tests under sanitizers
#   make fuzz       fuzz targets (clang)
#   make format     clang-format the C sources (make check-format: only check)

CC      ?= cc
CLANG   ?= clang
BUILD   ?= build
PKGS     = libuv libcjson openssl sqlite3 yaml-0.1 libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

# csrc/warnings is shared with setup.py; clang (fuzz targets) does not know
# every GCC flag in it.
WARN    := $(shell grep -v '^\#' csrc/warnings) -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Icsrc/core $(PKG_CFLAGS)
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

CORE_SRC = $(sort $(wildcard csrc/core/*.c))
CORE_HDR = $(wildcard csrc/core/*.h)
HUB_SRC  = $(sort $(wildcard csrc/hub/*.c))
HUB_HDR  = $(wildcard csrc/hub/*.h)
AGENT_SRC = $(sort $(wildcard csrc/agent/*.c))
AGENT_HDR = $(wildcard csrc/agent/*.h)
TESTS    = $(patsubst csrc/tests/test_%.c,$(BUILD)/tests/test_%,$(wildcard csrc/tests/test_*.c))
FUZZERS  = $(patsubst csrc/fuzz/fuzz_%.c,$(BUILD)/fuzz/fuzz_%,$(wildcard csrc/fuzz/fuzz_*.c))

.PHONY: all daemons check tests fuzz fuzz-run clean format check-format
all: daemons
daemons: $(BUILD)/bin/arc-hub $(BUILD)/bin/clusterconnect-agent

# One object per source, each with its dependency file (-MMD), so a
# change rebuilds what includes it and nothing else. A daemon's objects see
# the core's headers and their own directory's, never another daemon's.
CORE_OBJ  = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
HUB_OBJ   = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(HUB_SRC))
AGENT_OBJ = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(AGENT_SRC))
-include $(CORE_OBJ:.o=.d) $(HUB_OBJ:.o=.d) $(AGENT_OBJ:.o=.d)

$(BUILD)/obj/%.o: csrc/%.c csrc/warnings
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I$(dir $<) -MMD -MP -c $< -o $@

$(BUILD)/lib/libck.a: $(CORE_OBJ)
	@mkdir -p $(BUILD)/lib
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/arc-hub: $(HUB_OBJ) $(BUILD)/lib/libck.a
	@mkdir -p $(BUILD)/bin
	$(CC) $^ $(PKG_LIBS) -o $@

$(BUILD)/bin/clusterconnect-agent: $(AGENT_OBJ) $(BUILD)/lib/libck.a
	@mkdir -p $(BUILD)/bin
	$(CC) $^ $(PKG_LIBS) -o $@

# Test binaries compile the core sources themselves so that the whole
# module under test carries the sanitizers. A test or fuzz target named
# after a hub or proxy module (test_store, fuzz_kubeconfig) also gets that
# module's source.
# A module's own dependencies among its daemon's modules come along
# (MODULE_DEPS_<module>): the relay answers through api.c, beats writes to
# the store.
MODULE_DEPS_relay = csrc/hub/api.c
MODULE_DEPS_beats = csrc/hub/store.c
MODULE_DEPS_grants = csrc/hub/store.c
MODULE_SRC = $(wildcard csrc/hub/$*.c csrc/proxy/$*.c csrc/agent/$*.c) $(MODULE_DEPS_$*)
.SECONDEXPANSION:
$(BUILD)/tests/test_%: csrc/tests/test_%.c csrc/tests/check.h $(CORE_SRC) $(CORE_HDR) $$(MODULE_SRC) csrc/warnings
	@mkdir -p $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -Icsrc/hub -Icsrc/proxy -Icsrc/agent $< $(CORE_SRC) $(MODULE_SRC) $(PKG_LIBS) -o $@

tests: $(TESTS)
check: tests
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done

$(BUILD)/fuzz/fuzz_%: csrc/fuzz/fuzz_%.c $(CORE_SRC) $(CORE_HDR) $$(MODULE_SRC) csrc/warnings
	@mkdir -p $(BUILD)/fuzz
	$(CLANG) -std=c11 -D_GNU_SOURCE $(WARN) -Wno-unknown-warning-option -g -O1 -Icsrc/core -Icsrc/hub -Icsrc/proxy $(PKG_CFLAGS) \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  $< $(CORE_SRC) $(MODULE_SRC) $(PKG_LIBS) -o $@

# Runs every target for FUZZ_SECONDS each from the checked-in corpus.
FUZZ_SECONDS ?= 20
fuzz-run: fuzz
	@set -e; for f in $(FUZZERS); do n=$$(basename $$f | sed 's/fuzz_//'); \
	  mkdir -p $(BUILD)/corpus/$$n $(BUILD)/fuzz-artifacts; \
	  dict=""; [ -f csrc/fuzz/$$n.dict ] && dict="-dict=csrc/fuzz/$$n.dict"; \
	  echo "== $$f ($(FUZZ_SECONDS)s)"; \
	  $$f $$dict -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz-artifacts/ \
	    $(BUILD)/corpus/$$n csrc/fuzz/corpus/$$n 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' ; \
	  test $${PIPESTATUS[0]} -eq 0; done

fuzz: $(FUZZERS)

format:
	clang-format -i csrc/*/*.c csrc/*/*.h

# What tests/test_style.py checks.
check-format:
	clang-format --dry-run --Werror csrc/*/*.c csrc/*/*.h

clean:
	rm -rf $(BUILD)
