# qcow2x: an nbdkit plugin and filter for qcow2 images.
# Plain GNU make.  `make`, `make check`, `make run [IMAGE=...]`, `make install`, `make clean`.

CC       ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS   ?= -O2 -g
WARNFLAGS = -Wall -Wextra -Werror
DEPCFLAGS := $(shell $(PKG_CONFIG) --cflags zlib libzstd 2>/dev/null)
DEPLIBS   := $(shell $(PKG_CONFIG) --libs zlib libzstd 2>/dev/null || echo -lz -lzstd)
ALL_CFLAGS = -std=gnu11 -fPIC -D_GNU_SOURCE -pthread $(WARNFLAGS) $(CFLAGS) $(DEPCFLAGS) -Icommon
LDFLAGS  ?=

PLUGINDIR := $(shell $(PKG_CONFIG) --variable=plugindir nbdkit 2>/dev/null)
FILTERDIR := $(shell $(PKG_CONFIG) --variable=filterdir nbdkit 2>/dev/null)
PREFIX   ?= /usr/local
MANDIR   ?= $(PREFIX)/share/man/man1

COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(COMMON_SRCS:.c=.o)
PLUGIN_SO   := plugin/nbdkit-qcow2x-plugin.so
FILTER_SO   := filter/nbdkit-qcow2xchain-filter.so
FILTER_OBJS := $(patsubst %.c,%.o,$(wildcard filter/*.c))
PLUGIN_OBJS := $(patsubst %.c,%.o,$(wildcard plugin/*.c))
MANPAGE     := nbdkit-qcow2x.1

.PHONY: all check run install clean deps unit

all: $(PLUGIN_SO) $(FILTER_SO) $(MANPAGE)

common/%.o: common/%.c $(wildcard common/*.h)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

plugin/%.o: plugin/%.c $(wildcard common/*.h) $(wildcard plugin/*.h)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

filter/%.o: filter/%.c $(wildcard common/*.h) $(wildcard filter/*.h)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

common/libqcow2x.a: $(COMMON_OBJS)
	rm -f $@
	ar rcs $@ $^

$(PLUGIN_SO): $(PLUGIN_OBJS) common/libqcow2x.a
	$(CC) -shared -pthread $(LDFLAGS) -o $@ $(PLUGIN_OBJS) common/libqcow2x.a $(DEPLIBS)

$(FILTER_SO): $(FILTER_OBJS) common/libqcow2x.a
	$(CC) -shared -pthread $(LDFLAGS) -o $@ $(FILTER_OBJS) common/libqcow2x.a $(DEPLIBS)

$(MANPAGE): nbdkit-qcow2x.pod
	pod2man --section=1 --center="qcow2x" --release="qcow2x" --name=nbdkit-qcow2x $< > $@

# Unit tests of common/ (no nbdkit needed).
tests/unit/%: tests/unit/%.c common/libqcow2x.a
	$(CC) $(ALL_CFLAGS) -o $@ $< common/libqcow2x.a $(DEPLIBS)

UNIT_TESTS := $(patsubst %.c,%,$(wildcard tests/unit/*.c))
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

clean:
	rm -f common/*.o common/*.a plugin/*.o plugin/*.so filter/*.o filter/*.so $(MANPAGE) $(UNIT_TESTS)
	rm -rf tests/logs tests/tmp
