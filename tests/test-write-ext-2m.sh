#!/usr/bin/env bash
# WRITE: extended L2, 2 MiB clusters (64 KiB subclusters)
#
# Big clusters: ops are mostly partial clusters and partial subclusters.
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

qemu-img create -q -f qcow2 -o cluster_size=2M,extended_l2=on "$img" 24M
wl prefill "$img" --seed 2001 --tmpdir "$tmpdir" --budget 24M --max-ops 40
qcx_expect_layout "$img" extended_l2 -eq 1
qcx_qemu_raw "$img" "$ref"
session 2 --ops 500 --verify-start --max-len 3M
session 3 --ops 300 --max-len 3M
