#!/usr/bin/env bash
# READ: zlib compressed clusters (compression type 0), standard and
# extended L2, cluster sizes 4 KiB, 64 KiB and 2 MiB.  Images: qemu-img
# convert -c of mixed data (compressed clusters of many sizes packed back to
# back, so compressed data crosses host cluster boundaries and shares a
# 512-byte sector with its neighbour; both are asserted on the image), then
# qemu-io write -c, a compressed cluster partly overwritten (decompressed by
# QEMU into a normal cluster), one zeroed and one partly zeroed
# (tests/lib/mkimg.py compressed).  Bytes and random reads inside compressed
# clusters must match qemu-img convert.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

seed=50
for spec in 4096:off:4M 65536:off:6M 65536:on:6M 2097152:on:10M 2097152:off:10M; do
    IFS=: read -r cs ext size <<< "$spec"
    seed=$((seed + 1))
    img=$tmpdir/zlib-$cs-$ext.qcow2
    "$PY" "$srcdir/lib/mkimg.py" compressed "$img" $size --alg zlib \
        --cluster-size $cs --ext $ext --seed $seed
    qcx_expect_layout "$img" compression_type -eq 0
    if [ $cs -le 65536 ]; then
        qcx_expect_layout "$img" compressed -ge 40
        qcx_expect_layout "$img" compressed_cross_cluster -ge 1
        qcx_expect_layout "$img" compressed_shared_sector -ge 1
    else
        qcx_expect_layout "$img" compressed -ge 2
    fi
    qcx_fill_stale "$img"
    qcx_compare_with_qemu "$img"
    QCX_SEED=$seed QCX_READS=400 QCX_READ_HINTS=$((cs / 32)),$cs \
        qcx_random_reads "$img"
done
