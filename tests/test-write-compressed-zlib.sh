#!/usr/bin/env bash
# WRITE: overwriting zlib-compressed clusters (standard L2, 64 KiB clusters)
#
# qemu-img convert -c of random + compressible data (gen-data.py mix);
# partial overwrites, zeroes and trims of compressed clusters must
# decompress/merge into new clusters and drop the compressed references.
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

qcx_gen_data 7 6M "$tmpdir/src.raw" mix
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=64k,compression_type=zlib \
    "$tmpdir/src.raw" "$img"
qcx_expect_layout "$img" compression_type -eq 0
qcx_expect_layout "$img" compressed -ge 20
qcx_expect_layout "$img" compressed_shared_sector -ge 1
before=$(qcx_layout "$img" compressed)
qcx_qemu_raw "$img" "$ref"
cmp "$tmpdir/src.raw" "$ref" || fail "qemu-img convert round trip differs"
session 70 --ops 300 --verify-start --mix write=30,read=10,zero=5,zerotrim=3,fastzero=3,trim=3,flush=2,fua=3
after=$(qcx_layout "$img" compressed)
echo "compressed clusters: $before before, $after after"
[ "$after" -lt "$before" ] || fail "no compressed cluster was overwritten"
[ "$after" -ge 1 ] || echo "note: every compressed cluster was rewritten"
session 71 --ops 1500 --conns 2
