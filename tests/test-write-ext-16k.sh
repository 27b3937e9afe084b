#!/usr/bin/env bash
# WRITE: extended L2, 16 KiB clusters (1 KiB subclusters)
#
# 20 MiB disk: one L2 table maps 16 MiB, so ops also cross an L2 table boundary.
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

qemu-img create -q -f qcow2 -o cluster_size=16k,extended_l2=on "$img" 20M
wl prefill "$img" --seed 161 --tmpdir "$tmpdir"
qcx_expect_layout "$img" extended_l2 -eq 1
qcx_expect_layout "$img" compressed -ge 5
qcx_expect_layout "$img" sub_zero_with_offset -ge 1
qcx_expect_layout "$img" mixed_clusters -ge 1
qcx_qemu_raw "$img" "$ref"
session 16 --ops 4000 --verify-start --regions 0:4M,14M:18M,19M:
# a one-table L2 cache: L2 tables are evicted and written back constantly
pargs=(l2-cache-size=16K)
session 17 --ops 3000
