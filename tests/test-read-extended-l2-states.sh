#!/usr/bin/env bash
# READ: extended L2 entries, every subcluster state QEMU produces:
# allocated, zero with host offset kept, zero without host cluster,
# unallocated inside an allocated cluster (host offset kept), unallocated
# cluster, clusters mixing states, COW inside a subcluster, compressed
# clusters, zeroed compressed cluster, discarded cluster, and a last
# cluster partly past the end of the file.  Reserved-but-unused host bytes
# are overwritten with 0xA5 first, so returning host bytes for a zero or
# unallocated subcluster is caught.  Cluster sizes 16 KiB (512 B
# subclusters), 64 KiB and 2 MiB (64 KiB subclusters).
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

for cs in 16384 65536 2097152; do
    img=$tmpdir/ext-$cs.qcow2
    "$PY" "$srcdir/lib/mkimg.py" ext-states "$img" --cluster-size $cs
    qcx_expect_layout "$img" extended_l2 -eq 1
    for k in sub_alloc sub_zero_with_offset sub_zero_no_offset \
             sub_unalloc_with_offset compressed cluster_past_eof; do
        qcx_expect_layout "$img" $k -ge 1
    done
    qcx_expect_layout "$img" mixed_clusters -ge 5
    qcx_fill_stale "$img" --min-bytes $((cs / 32 * 20))
    qcx_compare_with_qemu "$img"
    QCX_READS=500 QCX_READ_HINTS=$((cs / 32)),$cs qcx_random_reads "$img"
done
