#!/usr/bin/env bash
# ERRINJECT: write/sync failures through the qcow2xchain filter.
#
# tests/lib/errinject.py (see test-errinject-ext.sh) with --filter: an
# empty 8 MiB extended-L2 overlay (64 KiB clusters) over a qcow2 base full
# of random data, so partial writes are copy-on-write (the filter reads
# the base and writes the widened range through the plugin) when the
# injected fault hits.  The inject-error parameter passes through the
# filter to the plugin.  Every request failure clean, the next flush
# reports a write error, no corruption (leaks allowed), flushed data
# survives SIGKILL and persistent faults, base unchanged (qemu-img compare
# resolves the chain).
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit sha256sum
requires_python_nbd
_chain_check_built

"$PY" "$srcdir/lib/errinject.py" --plugin "$PLUGIN" --filter "$FILTER" \
    --dir "$tmpdir" --base-random \
    --create cluster_size=64k,extended_l2=on --size 8M --seed 15 \
    --sweep write:1-40 --sweep write:45-120/15 --sweep write:2-40/4:kill \
    --sweep write:1,4,9,16,30:persistent --sweep sync:1-6 \
    --must-trigger write:40 \
    --expect-hit "data cluster" --expect-hit "L2 table" ||
    fail "error injection sweep through the filter failed (one run: errinject.py ... --sweep SPEC --keep)"
