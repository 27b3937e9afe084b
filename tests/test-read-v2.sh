#!/usr/bin/env bash
# READ: qcow2 version 2 images (compat=0.10): no zero flag, no header
# length field, 16-bit refcounts.  Bytes must equal qemu-img convert.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"

# Written with qemu-io: data, partial writes, "zeroed" and discarded
# clusters (v2 has no zero flag: QEMU deallocates), compressed clusters.
$mk std-states "$tmpdir/v2-states.qcow2" --compat 0.10
qcx_expect_layout "$tmpdir/v2-states.qcow2" version -eq 2
qcx_expect_layout "$tmpdir/v2-states.qcow2" compressed -ge 1
qcx_fill_stale "$tmpdir/v2-states.qcow2"
qcx_compare_with_qemu "$tmpdir/v2-states.qcow2"

# Converted from mixed data (unallocated runs, random and patterned data).
$mk data "$tmpdir/v2-data.qcow2" 4M --seed 21 -o compat=0.10
qcx_expect_layout "$tmpdir/v2-data.qcow2" version -eq 2
qcx_compare_with_qemu "$tmpdir/v2-data.qcow2"

# Compressed v2 image, small clusters.
$mk data "$tmpdir/v2-comp.qcow2" 2M --seed 22 -o compat=0.10,cluster_size=4096 --compress
qcx_expect_layout "$tmpdir/v2-comp.qcow2" compressed -ge 50
qcx_compare_with_qemu "$tmpdir/v2-comp.qcow2"
QCX_READS=1000 QCX_READ_HINTS=512,4096 qcx_random_reads "$tmpdir/v2-comp.qcow2"
