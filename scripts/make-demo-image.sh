#!/usr/bin/env bash
# make-demo-image.sh OUT
#
# Write a small qcow2 demo image to OUT using only qemu-img and qemu-io:
# qcow2 v3, 64 KiB clusters with extended L2 entries (32 subclusters of
# 2 KiB), zstd compression, 64 MiB virtual size.  Layout (guest offsets):
#
#   0     .. 1M      normal data, pattern 0x11 ...
#     4K  .. 12K       ... except zero subclusters inside that allocated cluster
#   1M+4K .. 1M+12K  normal data 0x22 in an otherwise unallocated cluster
#                    (only the touched subclusters are allocated)
#   2M    .. 2M+256K zstd-compressed clusters, patterns 0x42 0x43 0x44 0x45
#   4M    .. 5M      zero clusters (no host cluster)
#   8M    .. 8M+128K normal data 0x88, then 8M+64K+2K .. +6K zeroed
#   63M   .. 64M     normal data 0x99 (last MiB)
#   everything else  unallocated (reads as zero)
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUT.qcow2" >&2
    exit 2
fi
out=$1

for cmd in qemu-img qemu-io; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "$0: $cmd not found (install qemu-utils)" >&2; exit 1; }
done

rm -f "$out"
qemu-img create -q -f qcow2 \
    -o compat=1.1,cluster_size=64k,extended_l2=on,compression_type=zstd \
    "$out" 64M

qemu-io -f qcow2 \
    -c 'write -q -P 0x11 0 1M' \
    -c 'write -q -z 4k 8k' \
    -c 'write -q -P 0x22 1028k 8k' \
    -c 'write -q -c -P 0x42 2M 64k' \
    -c 'write -q -c -P 0x43 2112k 64k' \
    -c 'write -q -c -P 0x44 2176k 64k' \
    -c 'write -q -c -P 0x45 2240k 64k' \
    -c 'write -q -z 4M 1M' \
    -c 'write -q -P 0x88 8M 128k' \
    -c 'write -q -z 8258k 4k' \
    -c 'write -q -P 0x99 63M 1M' \
    "$out"
