# gadgetd — build, run, test. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
CLANG ?= clang
export CARGO_TARGET_DIR ?= $(CURDIR)/target
BIN := $(CARGO_TARGET_DIR)/debug
ARCH_DEFINE := -D__TARGET_ARCH_x86
GADGETS := $(notdir $(patsubst %/,%,$(dir $(wildcard gadgets/*/program.bpf.c))))
GADGET_OBJS := $(GADGETS:%=build/gadgets/%.o)
HEADERS := $(wildcard include/gadget/*.h include/bpf/*.h include/*.h)

.PHONY: test-workspace all deps deps-build gadgets images bench-images bench-scale bench-kinds decode-check decode-check-update test-objects build run test bench clean fmt lint packages package-test bench-service boot-test fuzz

all: build gadgets images

# Debian packages (idempotent, quiet when present): building and running
# only (deps-build), or that plus what the tests need (deps).
deps:
	@./.ci/install-deps test
deps-build:
	@./.ci/install-deps build

gadgets: $(GADGET_OBJS) $(GADGETS:%=build/gadgets/%.yaml)

# gadgetctl picks up FILE.yaml next to FILE.o as the definition.
build/gadgets/%.yaml: gadgets/%/gadget.yaml
	@mkdir -p $(dir $@)
	cp $< $@

# -g keeps BTF (the agent decodes events from it); DWARF is stripped after.
build/gadgets/%.o: gadgets/%/program.bpf.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf $(ARCH_DEFINE) -I include -c $< -o $@
	llvm-strip -g $@

build:
	$(CARGO) build --workspace --bins

# One OCI archive with an image (amd64+arm64) of every gadget in gadgets/, to
# run them by name without a registry: `gadgetd --bundled-images
# build/gadgets.tar` (packages install it as /usr/lib/gadgetd/gadgets.tar,
# the default), or `gadgetctl image import build/gadgets.tar`. docs/images.md.
images: build/gadgets.tar
build/gadgets.tar: $(wildcard gadgets/*/program.bpf.c gadgets/*/gadget.yaml) $(HEADERS) | build
	@mkdir -p $(dir $@)
	$(BIN)/gadgetctl build --include include -o $@ $(GADGETS:%=gadgets/%)

# The README's first command: trace this machine with trace_open for a few seconds.
run: deps-build build gadgets images
	./scripts/demo.sh $(BIN) build/gadgets/trace_open.o build/gadgets.tar

# The README's second command: the whole suite, against the real kernel and real daemons.
test: test-workspace boot-test package-test decode-check

# The Rust tests (unit and end-to-end); every test binary runs even when one fails.
test-workspace: deps gadgets test-objects
	$(CARGO) build --workspace --bins
	GADGETD_GADGETS=$(CURDIR)/build/gadgets GADGETD_BIN=$(BIN) $(CARGO) test --workspace --no-fail-fast -- --test-threads=1

# The trace_open pipeline against its floor: untraced, the same object drained
# by a counting reader, bpftrace, gadgetd in full (docs/benchmarks.md).
RELEASE_BINS := -p gadgetd -p gadgetctl -p gadgetd-benches --bins
bench: gadgets
	@./.ci/install-deps bench
	$(CARGO) build --release $(RELEASE_BINS)
	./scripts/bench.py $(CARGO_TARGET_DIR)/release build/gadgets/trace_open.o

# The agent with 1, 10 and 50 runs (trace_open, then different gadgets) and 20
# attachers: RSS, time to first event, agent CPU per event (docs/benchmarks.md).
bench-scale: gadgets
	$(CARGO) build --release -p gadgetd -p gadgetctl
	./scripts/bench_scale.py $(CARGO_TARGET_DIR)/release build/gadgets

# Instructions per decoded event (callgrind, on the committed records in
# benches/fixtures) against the committed baseline: fails on a >10% rise.
# Shares the release build of `packages`; a few seconds when that is built.
# The records' object is built from the committed source they were recorded
# with (the seed-style trace_open), not shipped as a binary.
FIXTURE_OBJ := build/fixtures/trace_open.o
$(FIXTURE_OBJ): benches/fixtures/trace_open.bpf.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf $(ARCH_DEFINE) -I include -c $< -o $@
	llvm-strip -g $@
# The C reference of decode-check: the bench's C reader's formatting, no libbpf.
FORMAT_COST := build/bench/json-format-cost
$(FORMAT_COST): bench/json-format-cost.c bench/json-format.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -o $@ $<
decode-check: deps $(FIXTURE_OBJ) $(FORMAT_COST)
	$(CARGO) build --release $(RELEASE_BINS)
	./scripts/decode_cost.py $(CARGO_TARGET_DIR)/release/decode-cost benches/fixtures $(FIXTURE_OBJ) \
		--reference $(FORMAT_COST)
decode-check-update: deps $(FIXTURE_OBJ) $(FORMAT_COST)
	$(CARGO) build --release $(RELEASE_BINS)
	./scripts/decode_cost.py $(CARGO_TARGET_DIR)/release/decode-cost benches/fixtures $(FIXTURE_OBJ) \
		--reference $(FORMAT_COST) --update

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

# deb and rpm from one staged tree (release binaries): build/packages/.
packages: deps gadgets images
	$(CARGO) build --release -p gadgetd -p gadgetctl --bins
	./packaging/stage.sh $(CARGO_TARGET_DIR)/release build/stage
	rm -rf build/packages
	./packaging/deb/build.sh build/stage build/packages $(VERSION)
	./packaging/rpm/build.sh build/stage build/packages $(VERSION)

# lintian, rpm checks, and the .deb installed in a booted systemd-nspawn container.
package-test: packages
	./packaging/test-packages.sh build/packages

# Gadget images: pull/run time cached vs uncached, store size (docs/images.md).
bench-images: deps build
	$(CARGO) build --release -p gadgetd -p gadgetctl --bins
	./scripts/bench-images.py $(CARGO_TARGET_DIR)/release

# Gadget kinds: topper read cost (10,000 entries), snapshot_process time.
bench-kinds: deps gadgets
	GADGETD_GADGETS=$(CURDIR)/build/gadgets $(CARGO) bench -p gadgetd-runtime --features bench-internals --bench kinds

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets --all-features

clean:
	rm -rf build
	$(CARGO) clean

# Objects the tests use for edge cases (bad conventions, perf arrays, kprobes).
TEST_OBJS := $(patsubst tests/bpf/%.bpf.c,build/tests/%.o,$(wildcard tests/bpf/*.bpf.c))
test-objects: $(TEST_OBJS) build/tests/no_btf.o
build/tests/%.o: tests/bpf/%.bpf.c $(HEADERS) $(wildcard tests/bpf/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf $(ARCH_DEFINE) -I include -c $< -o $@
# clang 14 cannot compile bpf_core_type_matches() (CO-RE relocation kind 12);
# the script turns the object's `___tm` TYPE_EXISTS relocations into it.
build/tests/core_flex.o: tests/bpf/core_flex.bpf.c tests/bpf/core_kind12.py $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf $(ARCH_DEFINE) -I include -c $< -o $@
	python3 tests/bpf/core_kind12.py $@
# A tracer with its BTF removed.
build/tests/no_btf.o: build/tests/perf_open.o
	llvm-objcopy --remove-section .BTF --remove-section .rel.BTF --remove-section .BTF.ext --remove-section .rel.BTF.ext $< $@

# gadgetd under a real systemd (systemd-nspawn): bus and socket activation,
# READY, a detached run in journald, restart after kill -9. The container
# root is cached in /var/cache/gadgetd-boot (first run: debootstrap, ~3 min).
boot-test: deps gadgets
	$(CARGO) build -p gadgetd -p gadgetctl --bins
	./tests/boot/nspawn-boot.sh $(BIN) build/gadgets

# Detached runs into journald (throughput, losses as reported) and restore
# after kill -9 (time to ready).
bench-service: deps gadgets
	$(CARGO) build --release -p gadgetd -p gadgetctl --bins
	./scripts/bench_service.py $(CARGO_TARGET_DIR)/release build/gadgets/trace_open.o

# Fuzzing (nightly and cargo-fuzz, never in CI): every target of fuzz/ for
# FUZZ_SECONDS at nice 19; prints executions and crashes per target.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= object definition oci_index oci_archive reference stream
fuzz: gadgets test-objects
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	./scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
