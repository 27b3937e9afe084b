#!/usr/bin/env bash
# WRITE: extended L2, 64 KiB clusters (2 KiB subclusters)
#
# One L2 table maps 256 MiB: the 264 MiB sparse disk has ops near 0 and
# around the 256 MiB L2 table boundary.
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

qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on "$img" 264M
wl prefill "$img" --seed 641 --tmpdir "$tmpdir" --budget 6M
qcx_expect_layout "$img" extended_l2 -eq 1
qcx_expect_layout "$img" compressed -ge 3
qcx_qemu_raw "$img" "$ref"
session 64 --ops 4000 --verify-start --regions 0:6M,252M:260M
session 65 --ops 3000 --regions 0:6M,254M:258M,263M:
