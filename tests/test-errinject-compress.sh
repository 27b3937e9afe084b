#!/usr/bin/env bash
# ERROR INJECTION with compress=true (extended L2, 64 KiB clusters, zstd):
# the Nth write (sync, truncate) of the image file fails, for every N of
# the sweeps, during a workload whose whole-cluster writes are stored
# compressed and whose pieces are compressed at flushes (the injected
# failure hits compressed data, L2 tables and refcount blocks).  Each
# run (tests/lib/errinject.py): no crash, the failed request gets an
# error, a later flush reports it, qemu-img check finds no corruption,
# acknowledged and flushed data reads back, and the image reopens and
# takes more writes cleanly.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

"$PY" "$srcdir/lib/errinject.py" --plugin "$PLUGIN" --dir "$tmpdir" \
    --create cluster_size=64k,extended_l2=on,compression_type=zstd --size 8M --seed 21 \
    --plugin-arg compress=true --big-len 256K \
    --sweep write:1-40 --sweep write:45-120/15 --sweep write:2-30/4:kill \
    --sweep write:1,3,6,12:persistent --sweep sync:1-6 --sweep truncate:1-3 \
    --must-trigger write:30 \
    --expect-hit "compressed cluster" --expect-hit "L2 table" ||
    fail "error injection sweep failed (one run: errinject.py ... --sweep SPEC --keep)"
