# qcow2x: an nbdkit plugin and filter for qcow2 images.
# Plain GNU make.  `make`, `make check`, `make run [IMAGE=...]`, `make install`, `make clean`.

CC       ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS   ?= -O2 -g
WARNFLAGS = -Wall -Wextra -Werror
DEPCFLAGS := $(shell $(PKG_CONFIG) --cflags zlib libzstd 2>/dev/null)
DEPLIBS   := $(shell $(PKG_CONFIG) --libs zlib libzstd 2>/dev/null || echo -lz -lzstd)
# libdeflate (optional, installed by scripts/install-deps.sh): a faster
# inflate for zlib-compressed clusters.
ifneq ($(shell $(PKG_CONFIG) --exists libdeflate 2>/dev/null && echo yes),)
DEPCFLAGS += -DHAVE_LIBDEFLATE $(shell $(PKG_CONFIG) --cflags libdeflate)
DEPLIBS   += $(shell $(PKG_CONFIG) --libs libdeflate)
endif
ALL_CFLAGS = -std=gnu11 -fPIC -D_GNU_SOURCE -pthread $(WARNFLAGS) $(CFLAGS) $(DEPCFLAGS) -Icommon
LDFLAGS  ?=

PLUGINDIR := $(shell $(PKG_CONFIG) --variable=plugindir nbdkit 2>/dev/null)
FILTERDIR := $(shell $(PKG_CONFIG) --variable=filterdir nbdkit 2>/dev/null)
PREFIX   ?= /usr/local
MANDIR   ?= $(PREFIX)/share/man/man1

# O= puts objects and the .so files in another directory (the
# sanitizer builds use build/asan, build/tsan); the default is in place.
O           ?= .
COMMON_OBJS := $(patsubst %.c,$(O)/%.o,$(wildcard common/*.c))
PLUGIN_OBJS := $(patsubst %.c,$(O)/%.o,$(wildcard plugin/*.c))
FILTER_OBJS := $(patsubst %.c,$(O)/%.o,$(wildcard filter/*.c))
LIBQCOW2X   := $(O)/common/libqcow2x.a
PLUGIN_SO   := $(O)/plugin/nbdkit-qcow2x-plugin.so
FILTER_SO   := $(O)/filter/nbdkit-qcow2xchain-filter.so
MANPAGE     := nbdkit-qcow2x.1

.PHONY: all check run install clean deps unit check-asan check-valgrind \
        check-tsan check-crash

all: $(PLUGIN_SO) $(FILTER_SO) $(MANPAGE)

$(O)/common/%.o: common/%.c $(wildcard common/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/plugin/%.o: plugin/%.c $(wildcard common/*.h) $(wildcard plugin/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/filter/%.o: filter/%.c $(wildcard common/*.h) $(wildcard filter/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBQCOW2X): $(COMMON_OBJS)
	rm -f $@
	ar rcs $@ $^

$(PLUGIN_SO): $(PLUGIN_OBJS) $(LIBQCOW2X)
	$(CC) -shared -pthread $(CFLAGS) $(LDFLAGS) -o $@ $(PLUGIN_OBJS) $(LIBQCOW2X) $(DEPLIBS)

$(FILTER_SO): $(FILTER_OBJS) $(LIBQCOW2X)
	$(CC) -shared -pthread $(CFLAGS) $(LDFLAGS) -o $@ $(FILTER_OBJS) $(LIBQCOW2X) $(DEPLIBS)

$(MANPAGE): nbdkit-qcow2x.pod
	pod2man --section=1 --center="qcow2x" --release="qcow2x" --name=nbdkit-qcow2x $< > $@

# Unit tests of common/ (no nbdkit needed).
$(O)/tests/unit/%: tests/unit/%.c $(LIBQCOW2X)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBQCOW2X) $(DEPLIBS)

UNIT_TESTS := $(patsubst %.c,$(O)/%,$(wildcard tests/unit/*.c))
unit: $(UNIT_TESTS)

deps:
	@scripts/install-deps.sh

check: deps
	$(MAKE) all unit
	tests/run-tests.sh

run: deps
	$(MAKE) all
	scripts/run.sh $(IMAGE)

install: all
	install -d $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(FILTERDIR) $(DESTDIR)$(MANDIR)
	install -m 0755 $(PLUGIN_SO) $(DESTDIR)$(PLUGINDIR)/
	install -m 0755 $(FILTER_SO) $(DESTDIR)$(FILTERDIR)/
	install -m 0644 $(MANPAGE) $(DESTDIR)$(MANDIR)/

# The whole suite with AddressSanitizer + UBSan.  nbdkit itself is not
# instrumented, so a wrapper (scripts/sanitizer-nbdkit.sh) preloads the
# sanitizer runtimes into nbdkit only (tests find it first on PATH
# through QCX_PATH_PREFIX).
SAN_FLAGS = -O1 -g -fno-omit-frame-pointer
ASAN_BIN  = $(CURDIR)/build/asan/bin
check-asan: deps
	$(MAKE) O=build/asan CFLAGS="$(SAN_FLAGS) -fsanitize=address,undefined -fno-sanitize-recover=undefined" all unit
	scripts/sanitizer-wrapper.sh $(ASAN_BIN)
	QCX_SAN_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	QCX_PLUGIN=$(CURDIR)/build/asan/plugin/nbdkit-qcow2x-plugin.so \
	QCX_FILTER=$(CURDIR)/build/asan/filter/nbdkit-qcow2xchain-filter.so \
	QCX_UNIT_DIR=$(CURDIR)/build/asan/tests/unit \
	QCX_PATH_PREFIX=$(ASAN_BIN) QCX_SANITIZER=asan \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 QCX_TEST_TIMEOUT=600 \
	tests/run-tests.sh $(TESTS)

# The concurrency tests with ThreadSanitizer (nbdkit's own threads are
# not instrumented; the plugin's and filter's locking is what is checked).
TSAN_BIN = $(CURDIR)/build/tsan/bin
TSAN_TESTS ?= $(notdir $(wildcard tests/test-stress-*.sh tests/test-multiconn-*.sh tests/test-compress-*.sh))
check-tsan: deps
	$(MAKE) O=build/tsan CFLAGS="$(SAN_FLAGS) -fsanitize=thread" all
	scripts/sanitizer-wrapper.sh $(TSAN_BIN)
	QCX_SAN_PRELOAD="$$($(CC) -print-file-name=libtsan.so)" \
	QCX_PLUGIN=$(CURDIR)/build/tsan/plugin/nbdkit-qcow2x-plugin.so \
	QCX_FILTER=$(CURDIR)/build/tsan/filter/nbdkit-qcow2xchain-filter.so \
	QCX_PATH_PREFIX=$(TSAN_BIN) QCX_SANITIZER=tsan \
	TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 report_signal_unsafe=0" \
	tests/run-tests.sh $(TSAN_TESTS)

# Crash consistency at full count: 100 kill -9 iterations per
# configuration (make check runs a short count).
CRASH_TESTS ?= $(notdir $(wildcard tests/test-crash-*.sh tests/test-crashfull-*.sh))
check-crash: deps all
	CRASH_ITERATIONS=100 QCX_TEST_TIMEOUT=1800 tests/run-tests.sh $(CRASH_TESTS)

# A representative subset under valgrind memcheck (no errors, no
# definite leaks in the plugin or filter).
VALGRIND_TESTS ?= test-read-extended-l2-states test-read-zstd test-write-ext-64k \
	test-write-compressed-zlib test-chain-write-random test-create-defaults \
	test-compress-pieces
check-valgrind: deps all
	@command -v valgrind >/dev/null || scripts/install-deps.sh valgrind
	scripts/valgrind-wrapper.sh $(CURDIR)/build/valgrind/bin
	QCX_PATH_PREFIX=$(CURDIR)/build/valgrind/bin QCX_SANITIZER=valgrind \
	QCX_TEST_TIMEOUT=900 tests/run-tests.sh $(VALGRIND_TESTS)

clean:
	rm -f common/*.o common/*.a plugin/*.o plugin/*.so filter/*.o filter/*.so $(MANPAGE) $(UNIT_TESTS)
	rm -rf tests/logs tests/tmp build/asan build/tsan build/valgrind

# Fuzzing targets (fuzz/fuzz.mk): make fuzz FUZZ_SECONDS=N
-include fuzz/fuzz.mk

# Benchmarks (bench/): make bench [BENCH_ARGS=--quick]
.PHONY: bench
bench: deps all
	@command -v fio >/dev/null || scripts/install-deps.sh fio
	@command -v qemu-nbd >/dev/null || scripts/install-deps.sh qemu-utils
	bench/bench.sh $(BENCH_ARGS)
