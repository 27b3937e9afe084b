#!/usr/bin/env bash
# WRITE: standard L2, 4 KiB clusters
#
# One L2 table maps 2 MiB: a 6 MiB disk crosses two L2 table boundaries.
# A random workload (tests/lib/workload.py: unaligned writes biased to
# subcluster/cluster/L2-table boundaries, zero with and without MAY_TRIM,
# FAST_ZERO, trim, flush, FUA, reads checked as they go) runs through the
# plugin against a raw reference with the same operations applied; then
# qemu-img check must be clean (no errors, no leaks) and qemu-img compare
# must find the image identical to the reference.  A second session
# reopens the image and repeats with another seed.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

qemu-img create -q -f qcow2 -o cluster_size=4k,extended_l2=off "$img" 6M
wl prefill "$img" --seed 41 --tmpdir "$tmpdir"
qcx_expect_layout "$img" extended_l2 -eq 0
qcx_expect_layout "$img" compressed -ge 5
qcx_expect_layout "$img" zero_with_offset -ge 1
qcx_qemu_raw "$img" "$ref"
session 4 --ops 4000 --verify-start
# an L2 cache of two tables (each maps 2 MiB): evictions and write-backs
pargs=(l2-cache-size=8K)
session 5 --ops 3000 --conns 2
