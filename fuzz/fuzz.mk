# qcow2x fuzzing (issue 5), included by the top Makefile.
#
#   make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="fuzz_open_read ..."]
#       build the libFuzzer targets into build/fuzz/, make the seed
#       corpora (qemu-img/qemu-io) into build/fuzz/corpus-TARGET/, then
#       run each target for N seconds (default 60), one after another.
#       Crashes go to build/fuzz/crashes-TARGET/; the corpora keep
#       growing across runs.  Exit status non-zero if a target failed.
#   make fuzz-build      only build the targets
#   make fuzz-seeds      only (re)make the seed corpora
#
# Resource bounds (issue 5): every input runs with -rss_limit_mb=2048,
# -timeout=10 and a per-allocation limit (-malloc_limit_mb) just above
# the largest allocation the library documents: L1 table <= 32 MiB,
# refcount table <= 8 MiB, compressed cluster <= 2 clusters (<= 4 MiB),
# bitmap directory <= 64 MiB (write path only); fuzz_write also holds
# its image in a memory file of up to 64 MiB.
# Needs clang with libFuzzer (Debian: clang + libclang-rt-14-dev or the
# clang-14 package, which ships libclang_rt.fuzzer).

FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 60
FUZZ_DIR      ?= build/fuzz
FUZZ_TARGETS  ?= fuzz_open_read fuzz_write fuzz_chain
FUZZ_CFLAGS   := -std=gnu11 -D_GNU_SOURCE -pthread -O1 -g \
                 -fno-omit-frame-pointer -Icommon $(DEPCFLAGS) \
                 -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_COMMON_SRCS := $(wildcard common/*.c)
FUZZ_COMMON_OBJS := $(patsubst common/%.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_COMMON_SRCS))
FUZZ_BINS     := $(addprefix $(FUZZ_DIR)/,fuzz_open_read fuzz_write fuzz_chain)
FUZZ_LDFLAGS_fuzz_write := -Wl,--wrap=qcx_io_pwrite
FUZZ_MALLOC_LIMIT_fuzz_open_read := 48
FUZZ_MALLOC_LIMIT_fuzz_chain     := 48
FUZZ_MALLOC_LIMIT_fuzz_write     := 96
FUZZ_OPTS     ?=
# Contract checks beyond "no crash" in fuzz_write (see fuzz/fuzz_write.c):
# 1 on, 0 off.
FUZZ_STRICT   ?= 1

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-deps

# clang with libFuzzer and its sanitizer runtimes (Debian 12: clang 14).
fuzz-deps:
	@command -v clang >/dev/null && \
	  [ -f "$$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ] || \
	  scripts/install-deps.sh clang libclang-rt-14-dev llvm
.SECONDARY: $(FUZZ_COMMON_OBJS)

fuzz-build: fuzz-deps
	$(MAKE) $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: common/%.c $(wildcard common/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/%: fuzz/%.c fuzz/fuzz-common.h $(FUZZ_COMMON_OBJS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wall -Wextra -fsanitize=fuzzer $(FUZZ_LDFLAGS_$*) \
	  -o $@ $< $(FUZZ_COMMON_OBJS) $(DEPLIBS)

$(FUZZ_DIR)/seeds.stamp: fuzz/make-seeds.sh
	fuzz/make-seeds.sh $(FUZZ_DIR)
	touch $@

fuzz-seeds:
	rm -f $(FUZZ_DIR)/seeds.stamp
	$(MAKE) $(FUZZ_DIR)/seeds.stamp

fuzz: fuzz-build $(FUZZ_DIR)/seeds.stamp
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
	  case $$t in \
	    fuzz_open_read) lim=$(FUZZ_MALLOC_LIMIT_fuzz_open_read) ;; \
	    fuzz_chain) lim=$(FUZZ_MALLOC_LIMIT_fuzz_chain) ;; \
	    *) lim=$(FUZZ_MALLOC_LIMIT_fuzz_write) ;; \
	  esac; \
	  mkdir -p $(FUZZ_DIR)/corpus-$$t $(FUZZ_DIR)/crashes-$$t; \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  QCX_FUZZ_STRICT=$(FUZZ_STRICT) \
	  $(FUZZ_DIR)/$$t $(FUZZ_DIR)/corpus-$$t -dict=fuzz/qcow2.dict \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -malloc_limit_mb=$$lim -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/crashes-$$t/ $(FUZZ_OPTS) \
	    || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "fuzz: findings in:$$failed (see $(FUZZ_DIR)/crashes-*/)"; \
	  exit 1; \
	fi

# Line coverage of common/ reached by the corpora (for reports):
#   make fuzz-coverage   -> build/fuzz/coverage.txt (llvm-cov report)
FUZZ_COV_DIR  := $(FUZZ_DIR)/cov
FUZZ_COV_CFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread -O1 -g -Icommon \
                   $(DEPCFLAGS) -fprofile-instr-generate -fcoverage-mapping
FUZZ_LLVM_PROFDATA ?= llvm-profdata
FUZZ_LLVM_COV ?= llvm-cov

.PHONY: fuzz-coverage
fuzz-coverage: $(FUZZ_DIR)/seeds.stamp
	@mkdir -p $(FUZZ_COV_DIR)
	set -e; for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_CC) $(FUZZ_COV_CFLAGS) -fsanitize=fuzzer \
	    $$( [ $$t = fuzz_write ] && echo -Wl,--wrap=qcx_io_pwrite ) \
	    -o $(FUZZ_COV_DIR)/$$t fuzz/$$t.c $(FUZZ_COMMON_SRCS) $(DEPLIBS); \
	  LLVM_PROFILE_FILE=$(FUZZ_COV_DIR)/$$t.profraw \
	    $(FUZZ_COV_DIR)/$$t -runs=0 $(FUZZ_DIR)/corpus-$$t \
	    >$(FUZZ_COV_DIR)/$$t.log 2>&1 || true; \
	done
	$(FUZZ_LLVM_PROFDATA) merge -o $(FUZZ_COV_DIR)/all.profdata \
	  $(FUZZ_COV_DIR)/*.profraw
	$(FUZZ_LLVM_COV) report $(FUZZ_COV_DIR)/$(firstword $(FUZZ_TARGETS)) \
	  $(foreach t,$(wordlist 2,9,$(FUZZ_TARGETS)),-object $(FUZZ_COV_DIR)/$(t)) \
	  -instr-profile=$(FUZZ_COV_DIR)/all.profdata $(FUZZ_COMMON_SRCS) \
	  | tee $(FUZZ_DIR)/coverage.txt
