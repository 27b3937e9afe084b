#!/usr/bin/env bash
# WRITE: standard L2, 64 KiB clusters
#
# One L2 table maps 512 MiB: the 520 MiB sparse disk has ops near 0 and
# around the 512 MiB L2 table boundary.
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

qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=off "$img" 520M
wl prefill "$img" --seed 642 --tmpdir "$tmpdir" --budget 6M
qcx_expect_layout "$img" extended_l2 -eq 0
qcx_expect_layout "$img" compressed -ge 3
qcx_qemu_raw "$img" "$ref"
session 640 --ops 4000 --verify-start --regions 0:6M,508M:516M
session 641 --ops 3000 --regions 0:6M,510M:514M,519M:
