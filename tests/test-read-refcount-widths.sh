#!/usr/bin/env bash
# READ: every refcount width QEMU writes, refcount_bits 1, 2, 4, 8, 16,
# 32, 64 (refcount_order 0..6).  Reads do not use refcounts, but the image
# must open and serve the same bytes as qemu-img convert.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

order=0
for bits in 1 2 4 8 16 32 64; do
    img=$tmpdir/rc-$bits.qcow2
    "$PY" "$srcdir/lib/mkimg.py" data "$img" 2M --seed $((70 + bits)) \
        -o refcount_bits=$bits,cluster_size=4096
    qemu-io -f qcow2 "$img" \
        -c "write -q -P 0x44 $((64 * 1024 + 3)) 9000" \
        -c "write -q -z $((1024 * 1024)) 8192"
    qcx_expect_layout "$img" refcount_order -eq $order
    qcx_fill_stale "$img"
    qcx_compare_with_qemu "$img"
    order=$((order + 1))
done
