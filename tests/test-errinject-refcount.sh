#!/usr/bin/env bash
# ERRINJECT: failures while refcount structures grow (1-bit and 64-bit).
#
# tests/lib/errinject.py (see test-errinject-ext.sh), 512-byte clusters:
#  - refcount_bits=1: a refcount block covers 2 MiB of the file; the image
#    is prefilled (by qemu-io) to just below that, so the workload's first
#    allocations create a new refcount block and publish it in the
#    refcount table: NTH 1..40 puts the fault on the block, its sync, the
#    table entry and the data around them;
#  - refcount_bits=64: a block covers 32 KiB and the one-cluster table
#    2 MiB; prefilled to just below, so the table itself moves (new table
#    + blocks written, synced, header switched).
# Every request failure clean, the next flush reports a write error, no
# corruption (leaks allowed) after a clean shutdown, SIGKILL or a
# persistent fault, flushed data survives.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

rc=0
"$PY" "$srcdir/lib/errinject.py" --plugin "$PLUGIN" --dir "$tmpdir/r1" \
    --create cluster_size=512,refcount_bits=1 --size 8M --seed 13 \
    --host-prefill 2057216 --big-len 96K --ops 100 \
    --sweep write:1-40 --sweep write:6-40/4:kill \
    --sweep write:8,12,16,18,20:persistent --sweep sync:1-6 \
    --sweep truncate:1-3 --must-trigger write:40 \
    --expect-hit "refcount block" --expect-hit "refcount table" || rc=1
"$PY" "$srcdir/lib/errinject.py" --plugin "$PLUGIN" --dir "$tmpdir/r64" \
    --create cluster_size=512,refcount_bits=64 --size 8M --seed 14 \
    --host-prefill 2024960 --big-len 96K --ops 100 \
    --sweep write:1-40 --sweep write:14-26/2:kill \
    --sweep write:16,19,20,22:persistent --sweep sync:1-6 \
    --must-trigger write:40 \
    --expect-hit "refcount table" --expect-hit "header" || rc=1
[ $rc = 0 ] ||
    fail "error injection sweep failed (one run: errinject.py ... --sweep SPEC --keep)"
