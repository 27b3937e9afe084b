#!/usr/bin/env bash
# EXTENTS: compressed clusters are data (flags 0), like qemu-img map says
# (data:true, no offset); zlib and zstd, standard and extended L2.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd

for spec in zlib:4096:off zlib:65536:on zstd:65536:off zstd:65536:on; do
    IFS=: read -r alg cs ext <<< "$spec"
    img=$tmpdir/$alg-$cs-$ext.qcow2
    "$PY" "$srcdir/lib/mkimg.py" compressed "$img" 4M --alg $alg \
        --cluster-size $cs --ext $ext --seed 93
    qcx_expect_layout "$img" compressed -ge 20
    qcx_fill_stale "$img"
    QCX_EXTENTS_REQUIRE=0,3 qcx_compare_extents "$img"
done
