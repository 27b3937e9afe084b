#!/usr/bin/env bash
# READ: virtual size not a multiple of the cluster size (QEMU rounds sizes
# up to 512 bytes only): the last cluster is partial, reads up to the
# exact end must work and the export size must be the virtual size.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

for spec in 65536:off:$((1024 * 1024 + 512)) \
            65536:on:$((2 * 1024 * 1024 + 7 * 512)) \
            4096:off:$((300 * 1024 + 1536)) \
            2097152:off:$((3 * 1024 * 1024 + 512)) \
            2097152:on:$((2 * 1024 * 1024 - 512)) \
            16384:on:1000000; do
    IFS=: read -r cs ext size <<< "$spec"
    img=$tmpdir/odd-$cs-$ext-$size.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=$cs,extended_l2=$ext "$img" $size
    vsize=$(qemu-img info --output=json "$img" |
            "$PY" -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    [ $((vsize % cs)) -ne 0 ] || fail "test bug: $vsize is a multiple of $cs"
    off33=$((vsize - vsize % cs - 100)); [ $off33 -ge 0 ] || off33=4096
    qemu-io -f qcow2 "$img" \
        -c "write -q -P 0x31 0 4096" \
        -c "write -q -P 0x33 $off33 300" \
        -c "write -q -P 0x32 $((vsize - 512)) 512"
    qcx_fill_stale "$img"
    qcx_compare_with_qemu "$img"
    # Export size, and reads ending exactly at the end.
    qcx_nbdkit "$img" --run "$PY -c '
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
size = h.get_size()
assert size == $vsize, \"export size %d, virtual size $vsize\" % size
assert h.pread(1, size - 1) == b\"\\x32\"
assert h.pread(512, size - 512) == b\"\\x32\" * 512
tail = size % $cs
assert h.pread(tail, size - tail)[-1:] == b\"\\x32\"
' \"\$uri\"" || fail "odd-size reads of $img failed"
done
