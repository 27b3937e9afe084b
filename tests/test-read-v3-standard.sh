#!/usr/bin/env bash
# READ: qcow2 version 3 with standard (non-extended) L2 entries, 64 KiB
# clusters: data, partial writes, zero clusters with and without host
# offset, discarded clusters, compressed clusters, lazy refcounts.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"

$mk std-states "$tmpdir/v3.qcow2"
qcx_expect_layout "$tmpdir/v3.qcow2" version -eq 3
qcx_expect_layout "$tmpdir/v3.qcow2" extended_l2 -eq 0
qcx_expect_layout "$tmpdir/v3.qcow2" zero_with_offset -ge 1
# The zero cluster that kept its host cluster still holds old data;
# make sure it is not the zeros a lucky reader could return.
qcx_fill_stale "$tmpdir/v3.qcow2" --min-bytes 65536
qcx_compare_with_qemu "$tmpdir/v3.qcow2"
QCX_READS=1000 qcx_random_reads "$tmpdir/v3.qcow2"

$mk data "$tmpdir/v3-data.qcow2" 5M --seed 31
qcx_compare_with_qemu "$tmpdir/v3-data.qcow2"

# Lazy refcounts (compatible feature bit 0).
$mk data "$tmpdir/v3-lazy.qcow2" 2M --seed 32 -o lazy_refcounts=on
qcx_compare_with_qemu "$tmpdir/v3-lazy.qcow2"
