#!/usr/bin/env bash
# CREATE: virtual sizes that are not cluster aligned (1, 1000, 100001,
# 5M+512, 3M+65535) and 0.  QEMU keeps sizes in 512-byte sectors (it
# truncates other sizes when it opens an image), so like qemu-img create
# the size is rounded up to a multiple of 512: qemu-img info and the
# plugin's export both show what qemu-img create would store.  The
# partial last cluster is mapped (preallocation) and reads as zeros.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

while read -r size args; do
    qemu-img create -q -f qcow2 qemu.qcow2 $size
    want=$(info qemu.qcow2 virtual-size)
    rm -f img.qcow2
    create img.qcow2 size=$size $args
    [ "$(cat created-size)" = "$want" ] ||
        fail "size=$size $args: export size $(cat created-size), qemu-img stores $want"
    check_clean img.qcow2
    expect_info img.qcow2 virtual-size=$want
    reads_zero img.qcow2
    qcx_compare_with_qemu img.qcow2
    # QEMU can write the last sector of the guest.
    qemu-io -f qcow2 img.qcow2 -c "write -q -P 0x7e $((want - 512)) 512"
    check_clean img.qcow2
    qcx_compare_with_qemu img.qcow2
done <<'LIST'
1 extended-l2=false
1000 cluster-size=512 preallocation=full
100001 cluster-size=4K preallocation=metadata
100001 preallocation=falloc
5243392 extended-l2=true
5243392 cluster-size=2M preallocation=metadata
3211263 cluster-size=16K preallocation=metadata
3211263 cluster-size=512 refcount-bits=1
LIST

# An empty disk.
create empty.qcow2 size=0
[ "$(cat created-size)" = 0 ] || fail "size=0: export size $(cat created-size)"
check_clean empty.qcow2
expect_info empty.qcow2 virtual-size=0
qemu-img create -q -f qcow2 -o extended_l2=on qemu0.qcow2 0
cmp empty.qcow2 qemu0.qcow2 || fail "size=0: differs from qemu-img create's image"
