#!/usr/bin/env bash
# READ: every cluster size class QEMU writes: 512 B, 4 KiB, 64 KiB, 2 MiB
# with standard L2, and 16 KiB, 64 KiB, 2 MiB with extended L2 (subclusters
# of 512 B, 2 KiB, 64 KiB).  Each image is converted from mixed data and
# then partly overwritten/zeroed at unaligned offsets with qemu-io.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"
seed=100
for spec in 512:off 4096:off 65536:off 2097152:off \
            16384:on 65536:on 2097152:on; do
    cs=${spec%:*}
    ext=${spec#*:}
    seed=$((seed + 1))
    img=$tmpdir/cs-$cs-$ext.qcow2
    size=$((3 * 1024 * 1024 + 5 * 512))
    if [ "$cs" -eq 2097152 ]; then size=$((5 * 1024 * 1024 + 512)); fi
    $mk data "$img" $size --seed $seed -o cluster_size=$cs,extended_l2=$ext
    qcx_expect_layout "$img" cluster_bits -eq "$($PY -c "print(($cs).bit_length()-1)")"
    qcx_expect_layout "$img" extended_l2 -eq "$([ $ext = on ] && echo 1 || echo 0)"
    # Unaligned overwrites and zeroing (partial subclusters/clusters).
    half=$((size / 2 / 512 * 512))
    zlen=$((2 * cs)); [ $((half + zlen)) -le $size ] || zlen=$((size - half))
    qemu-io -f qcow2 "$img" \
        -c "write -q -P 0x71 $((cs / 2 + 3)) $((cs + 100))" \
        -c "write -q -z $((3 * cs / 2)) $((cs / 4 + 512))" \
        -c "write -q -P 0x72 $((size - 700)) 700" \
        -c "write -q -z -u $half $zlen" \
        -c "write -q -P 0x73 $((half + cs + 1)) 1"
    qcx_fill_stale "$img"
    qcx_compare_with_qemu "$img"
    # Hints: subcluster, cluster, guest span of one L2 table.
    l2span=$((cs * cs / 8)); [ $ext = off ] || l2span=$((cs * cs / 16))
    QCX_READS=300 QCX_READ_HINTS=$((cs / 32)),$cs,$l2span qcx_random_reads "$img"
done
