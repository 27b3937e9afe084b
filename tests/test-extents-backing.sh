#!/usr/bin/env bash
# EXTENTS: an overlay served alone (layer-only=true): regions not in this
# layer (unallocated clusters/subclusters, deferred to the backing file)
# must be HOLE without ZERO (1); zero clusters/subclusters of the layer are
# ZERO or HOLE|ZERO as usual; data 0.  Expected from qemu-img map of the
# json: backing:null form.  Extended L2 (deferred subclusters inside
# allocated clusters) and standard L2.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"
for cs in 65536 16384; do
    $mk base "$tmpdir/base-$cs.qcow2" $((21 * cs)) --cluster-size 65536
    $mk ext-states "$tmpdir/over-ext-$cs.qcow2" --cluster-size $cs \
        --backing "$tmpdir/base-$cs.qcow2"
    qcx_expect_layout "$tmpdir/over-ext-$cs.qcow2" sub_unalloc_with_offset -ge 1
    qcx_fill_stale "$tmpdir/over-ext-$cs.qcow2" --min-bytes 1
    QCX_EXTENTS_REQUIRE=0,1,2,3 qcx_compare_extents "$tmpdir/over-ext-$cs.qcow2" layer-only=true
done

$mk base "$tmpdir/base-std.qcow2" 2M
$mk std-states "$tmpdir/over-std.qcow2" --backing "$tmpdir/base-std.qcow2"
qcx_fill_stale "$tmpdir/over-std.qcow2"
QCX_EXTENTS_REQUIRE=0,1,2,3 qcx_compare_extents "$tmpdir/over-std.qcow2" layer-only=true
