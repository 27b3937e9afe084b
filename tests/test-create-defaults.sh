#!/usr/bin/env bash
# CREATE: create=true size=10M with every other option at its default
# (compat=1.1, 64K clusters, extended L2, zlib, 16-bit refcounts, no
# preallocation).  qemu-img check is clean, qemu-img info shows the
# defaults, the image reads as zeros, the plugin serves it like QEMU does,
# and the file is the one qemu-img create -o extended_l2=on writes.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdinfo nbdcopy cmp truncate
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

# The plugin's defaults: compat=1.1, 64K clusters, extended L2 entries,
# zlib, 16-bit refcounts, no preallocation.
create img.qcow2 size=10M
[ "$(cat created-size)" = 10485760 ] || fail "export size $(cat created-size)"
check_clean img.qcow2
expect_info img.qcow2 virtual-size=10485760 cluster-size=65536 \
    extended-l2=true compression-type=zlib refcount-bits=16 compat=1.1 \
    lazy-refcounts=false corrupt=false dirty-flag=false \
    backing-filename=null
reads_zero img.qcow2
qcx_expect_layout img.qcow2 ext_feature_table -eq 1
qcx_expect_layout img.qcow2 l2_tables -eq 0

# Served back through the plugin: bytes and extents match QEMU's view.
qcx_compare_with_qemu img.qcow2
qcx_compare_extents img.qcow2

# Layout like qemu-img create (header, refcount table, refcount block, L1
# table): the same bytes, up to where qemu-img stops writing (it leaves
# the unused end of the L1 cluster out of the file; we keep whole
# clusters, so the rest must be zeros).
qemu-img create -q -f qcow2 -o extended_l2=on qemu.qcow2 10M
qsize=$(stat -c %s qemu.qcow2)
cmp -n "$qsize" qemu.qcow2 img.qcow2 ||
    fail "the first $qsize bytes differ from qemu-img create's image"
[ "$(stat -c %s img.qcow2)" -eq $((4 * 65536)) ] ||
    fail "file is $(stat -c %s img.qcow2) bytes, expected 4 clusters"
tail -c +$((qsize + 1)) img.qcow2 | cmp -s - <(head -c $((4 * 65536 - qsize)) /dev/zero) ||
    fail "bytes after qemu-img's end of file are not zero"
echo "identical to qemu-img create"
