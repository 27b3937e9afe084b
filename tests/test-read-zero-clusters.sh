#!/usr/bin/env bash
# READ: v3 zero flag on standard L2 entries, with a host offset kept (the
# host cluster still holds old data, here overwritten with 0xA5) and
# without one, at several cluster sizes; zero clusters must read as zeros.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

for cs in 512 4096 65536; do
    img=$tmpdir/zero-$cs.qcow2
    size=$((64 * cs))
    qemu-img create -q -f qcow2 -o cluster_size=$cs "$img" $size
    qemu-io -f qcow2 "$img" \
        -c "write -q -P 0x61 0 $((32 * cs))" \
        -c "write -q -z $((2 * cs)) $((4 * cs))" \
        -c "write -q -z -u $((8 * cs)) $((4 * cs))" \
        -c "write -q -z $((20 * cs)) $cs" \
        -c "write -q -z $((40 * cs)) $((3 * cs))" \
        -c "write -q -P 0x62 $((41 * cs + 1)) 3" \
        -c "write -q -z $((48 * cs)) $((16 * cs))"
    qcx_expect_layout "$img" zero_with_offset -ge 5
    qcx_expect_layout "$img" zero_no_offset -ge 10
    qcx_fill_stale "$img" --min-bytes $((5 * cs))
    qcx_compare_with_qemu "$img"
    qcx_random_reads "$img"
done
