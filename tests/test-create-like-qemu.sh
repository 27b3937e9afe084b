#!/usr/bin/env bash
# CREATE: the images are the ones qemu-img create writes, byte for byte
# (up to qemu-img's end of file; we keep whole clusters, so any bytes
# after it must be zeros): header, feature name table (only above 4K
# clusters, like QEMU), backing format extension and backing file name,
# refcount table and block, L1 table, and, with preallocation=metadata
# where QEMU lays it out the same way (16K clusters and up), the L2
# tables and data cluster mapping.  Over a matrix of cluster sizes, L2
# entry kinds, refcount widths, compression types, compat levels,
# backing files and sizes.  Each is also check-clean.  (Not compared:
# images that need more than one refcount block at creation; qemu-img
# adds the extra blocks after the L1 table, we keep them with the first.)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdinfo cmp tr
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

qemu-img create -q -f raw base.raw 8M
qemu-img create -q -f qcow2 base.qcow2 8M

# qemu -o options | plugin parameters | size | backing:format
while IFS='|' read -r qopts popts size backing; do
    rm -f q.qcow2 p.qcow2
    bargs=() pargs=()
    if [ -n "$backing" ]; then
        bargs=(-b "${backing%%:*}" -F "${backing#*:}")
        pargs=(backing="${backing%%:*}" backing-format="${backing#*:}" layer-only=true)
    fi
    qemu-img create -q -f qcow2 -o "$qopts" "${bargs[@]}" q.qcow2 "$size"
    create p.qcow2 size="$size" $popts "${pargs[@]}"
    q=$(stat -c %s q.qcow2)
    if ! cmp -n "$q" q.qcow2 p.qcow2; then
        cmp -l q.qcow2 p.qcow2 | head -n 10 >&2 || true
        fail "differs from qemu-img create -o $qopts ${bargs[*]} $size"
    fi
    [ -z "$(tail -c +$((q + 1)) p.qcow2 | tr -d '\0' | head -c 1)" ] ||
        fail "non-zero bytes after qemu-img's end of file ($qopts)"
    check_clean p.qcow2
    echo "identical: -o $qopts ${bargs[*]} $size"
done <<'LIST'
extended_l2=off|extended-l2=false|10M|
extended_l2=on|extended-l2=true|10M|
cluster_size=512|cluster-size=512|10M|
cluster_size=1024,refcount_bits=1|cluster-size=1K refcount-bits=1|3M|
cluster_size=4096,refcount_bits=64|cluster-size=4K refcount-bits=64|3M|
cluster_size=8192|cluster-size=8K|3M|
cluster_size=16384,extended_l2=on,refcount_bits=8|cluster-size=16K refcount-bits=8|7M|
cluster_size=2M,extended_l2=on|cluster-size=2M|7M|
cluster_size=2M,extended_l2=off,refcount_bits=2|cluster-size=2M extended-l2=false refcount-bits=2|7M|
compression_type=zstd|compression=zstd extended-l2=false|4M|
compression_type=zstd,extended_l2=on,refcount_bits=32|compression=zstd refcount-bits=32|4M|
compat=0.10|compat=0.10|5M|
compat=0.10,cluster_size=512|compat=0.10 cluster-size=512|5M|
extended_l2=off|extended-l2=false|8M|base.raw:raw
extended_l2=on|extended-l2=true|8M|base.qcow2:qcow2
cluster_size=512|cluster-size=512|8M|base.qcow2:qcow2
compat=0.10|compat=0.10|8M|base.raw:raw
compression_type=zstd,cluster_size=4096|compression=zstd cluster-size=4K|8M|base.raw:raw
extended_l2=on|extended-l2=true|100001|
extended_l2=off|extended-l2=false|0|
extended_l2=off|extended-l2=false|1T|
preallocation=metadata|extended-l2=false preallocation=metadata|6M|
preallocation=metadata,extended_l2=on|preallocation=metadata|6M|
preallocation=metadata,cluster_size=16384,refcount_bits=1|preallocation=metadata cluster-size=16K refcount-bits=1 extended-l2=false|3M|
preallocation=metadata,cluster_size=2M,extended_l2=on,refcount_bits=64|preallocation=metadata cluster-size=2M refcount-bits=64|5M|
preallocation=metadata,extended_l2=on|preallocation=metadata|6M|base.raw:raw
preallocation=metadata,compat=0.10|preallocation=metadata compat=0.10|3M|
LIST
