#!/usr/bin/env bash
# EXTENTS: block status of standard-L2 images vs qemu-img map: data
# clusters -> 0, zero clusters keeping their host cluster -> ZERO, zero
# clusters without one and unallocated clusters -> HOLE|ZERO; v2 and v3,
# small and large clusters.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"
for spec in 65536:1.1 512:1.1 4096:1.1 2097152:1.1 65536:0.10; do
    cs=${spec%:*}
    compat=${spec#*:}
    img=$tmpdir/std-$cs-$compat.qcow2
    $mk std-states "$img" --cluster-size $cs --compat $compat
    if [ $compat = 1.1 ]; then
        qcx_expect_layout "$img" zero_with_offset -ge 1
        qcx_expect_layout "$img" zero_no_offset -ge 1
    fi
    qcx_fill_stale "$img"
    req=0,3; [ $compat = 0.10 ] || req=0,2,3
    QCX_EXTENTS_REQUIRE=$req qcx_compare_extents "$img"
done

img=$tmpdir/std-data.qcow2
$mk data "$img" 4M --seed 92 -o cluster_size=4096
qcx_compare_extents "$img"
