#!/usr/bin/env bash
# WRITE: overwriting zstd-compressed clusters (extended L2, 32 KiB clusters)
#
# qemu-img convert -c -o compression_type=zstd of random + compressible
# data on an extended-L2 image; partial overwrites (single subclusters),
# zeroes and trims of compressed clusters.
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

qcx_gen_data 8 6M "$tmpdir/src.raw" mix
qemu-img convert -q -c -f raw -O qcow2 \
    -o cluster_size=32k,extended_l2=on,compression_type=zstd \
    "$tmpdir/src.raw" "$img"
qcx_expect_layout "$img" compression_type -eq 1
qcx_expect_layout "$img" extended_l2 -eq 1
qcx_expect_layout "$img" compressed -ge 20
before=$(qcx_layout "$img" compressed)
qcx_qemu_raw "$img" "$ref"
cmp "$tmpdir/src.raw" "$ref" || fail "qemu-img convert round trip differs"
session 80 --ops 300 --verify-start --mix write=30,read=10,zero=5,zerotrim=3,fastzero=3,trim=3,flush=2,fua=3
after=$(qcx_layout "$img" compressed)
echo "compressed clusters: $before before, $after after"
[ "$after" -lt "$before" ] || fail "no compressed cluster was overwritten"
session 81 --ops 1500 --conns 2
