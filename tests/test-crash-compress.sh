#!/usr/bin/env bash
# CRASH: compress=true (extended L2, 64 KiB clusters, zstd): whole-cluster
# writes stored compressed and packed into shared host clusters, pieces
# compressed later (at flushes), writes into compressed clusters
# recompressing them.
#
# tests/lib/crashtest.py: ${CRASH_ITERATIONS:-5} times (fixed seeds), start the
# server, run a random workload with periodic flushes and FUA writes on 2
# connections, SIGKILL the server at a random moment (or make the Nth
# write to the file and all later ones fail with inject-error=, then
# SIGKILL); then qemu-img check must report no corruption (exit 0, or 3 =
# leaks only), every byte acknowledged before the last completed flush
# (or by a completed FUA request) and not touched since must read back,
# and the crashed image must reopen, take more writes and shut down
# cleanly.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

"$PY" "$srcdir/lib/crashtest.py" --plugin "$PLUGIN" --dir "$tmpdir" \
    --create cluster_size=64k,extended_l2=on,compression_type=zstd --size 8M --seed 1300 \
    --prefill --plugin-arg compress=true \
    --mix write=35,read=10,zero=8,zerotrim=6,fastzero=3,trim=8,flush=4,fua=6,big=12 ||
    fail "crash test failed (reproduce: CRASH_ITERATIONS=N QCX_KEEP_TMP=1 $0)"
