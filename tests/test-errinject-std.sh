#!/usr/bin/env bash
# ERRINJECT: write/sync/truncate failures (ENOSPC, EIO, EDQUOT), standard L2.
#
# As test-errinject-ext.sh (tests/lib/errinject.py), on an 8 MiB image with
# 4 KiB standard-L2 clusters: 4 L2 tables, whole-cluster allocation with
# copy-on-write of the rest of the cluster, so the faults land in data,
# L2, L1 and refcount writes.  Every request failure clean, the next flush
# reports a write error, no corruption (leaks allowed), flushed data
# survives SIGKILL and persistent faults.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

"$PY" "$srcdir/lib/errinject.py" --plugin "$PLUGIN" --dir "$tmpdir" \
    --create cluster_size=4k,extended_l2=off --size 8M --seed 12 \
    --sweep write:1-40 --sweep write:45-160/10 --sweep write:2-40/4:kill \
    --sweep write:1,3,6,10,20,35:persistent --sweep sync:1-8 \
    --sweep truncate:1-4 --must-trigger write:40 \
    --expect-hit "data cluster" --expect-hit "L2 table" \
    --expect-hit "refcount block" ||
    fail "error injection sweep failed (one run: errinject.py ... --sweep SPEC --keep)"
