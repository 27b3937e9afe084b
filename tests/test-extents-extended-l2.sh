#!/usr/bin/env bash
# EXTENTS: block status (base:allocation) of extended-L2 images with every
# subcluster state must match qemu-img map at subcluster granularity:
# allocated -> 0, zero/unallocated with a host cluster kept -> ZERO,
# zero/unallocated without one -> HOLE|ZERO, compressed -> 0.  Also random
# REQ_ONE probes at unaligned offsets (tests/lib/compare-extents.py).
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd

for cs in 16384 65536 2097152; do
    img=$tmpdir/ext-$cs.qcow2
    "$PY" "$srcdir/lib/mkimg.py" ext-states "$img" --cluster-size $cs
    qcx_expect_layout "$img" sub_zero_with_offset -ge 1
    qcx_expect_layout "$img" sub_unalloc_with_offset -ge 1
    qcx_expect_layout "$img" sub_zero_no_offset -ge 1
    qcx_fill_stale "$img"
    QCX_EXTENTS_REQUIRE=0,2,3 qcx_compare_extents "$img"
done

# Converted data: many allocated/unallocated subclusters in one cluster.
img=$tmpdir/ext-data.qcow2
"$PY" "$srcdir/lib/mkimg.py" data "$img" 3M --seed 91 -o extended_l2=on,cluster_size=32768
qemu-io -f qcow2 "$img" -c "write -q -z 100000 50000" -c "write -q -z -u 0 32768"
qcx_compare_extents "$img"
