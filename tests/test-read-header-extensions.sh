#!/usr/bin/env bash
# READ: header extensions QEMU writes must be accepted:
#  - feature name table (every v3 image),
#  - persistent dirty bitmaps (qemu-img bitmap --add: bitmaps extension and
#    autoclear bit 0), with data written while a bitmap is enabled,
#  - backing file format (an overlay, served with layer-only=true),
#  - lazy refcounts compatible bit together with bitmaps.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"

# Bitmaps.
img=$tmpdir/bitmaps.qcow2
$mk data "$img" 3M --seed 81
qemu-img bitmap --add "$img" b0
qemu-img bitmap --add --granularity 4096 "$img" b1
qemu-img bitmap --add --disable "$img" b2
qemu-io -f qcow2 "$img" -c "write -q -P 0x21 12345 70000"
qcx_expect_layout "$img" ext_feature_table -eq 1
qcx_expect_layout "$img" ext_bitmaps -eq 1
qcx_expect_layout "$img" autoclear_bitmaps -eq 1
qcx_compare_with_qemu "$img"

# Bitmaps on an image with lazy refcounts and extended L2.
img=$tmpdir/bitmaps-lazy.qcow2
$mk data "$img" 2M --seed 82 -o lazy_refcounts=on,extended_l2=on
qemu-img bitmap --add "$img" dirty0
qemu-io -f qcow2 "$img" -c "write -q -P 0x22 4097 5000"
qcx_expect_layout "$img" ext_bitmaps -eq 1
qcx_fill_stale "$img"
qcx_compare_with_qemu "$img"

# Backing format extension: overlay served alone.
$mk base "$tmpdir/base.qcow2" 2M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$tmpdir/over.qcow2" 2M
qemu-io -f qcow2 "$tmpdir/over.qcow2" -c "write -q -P 0x23 65536 65536"
qcx_expect_layout "$tmpdir/over.qcow2" ext_backing_format -eq 1
qcx_compare_with_qemu "$tmpdir/over.qcow2" layer-only=true
