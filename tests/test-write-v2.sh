#!/usr/bin/env bash
# WRITE: qcow2 version 2 (compat=0.10), 16 KiB clusters
#
# v2 has no zero flag: zero requests must write zeros (or deallocate
# whole clusters); one L2 table maps 32 MiB, the disk is 40 MiB.
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

qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=16k "$img" 40M
wl prefill "$img" --seed 2222 --tmpdir "$tmpdir" --budget 6M
qcx_expect_layout "$img" version -eq 2
qcx_expect_layout "$img" compressed -ge 3
qcx_qemu_raw "$img" "$ref"
session 22 --ops 4000 --verify-start --regions 0:5M,30M:34M,39M:
session 23 --ops 3000 --regions 0:5M,30M:34M
qcx_expect_layout "$img" version -eq 2
