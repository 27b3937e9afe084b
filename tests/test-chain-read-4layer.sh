#!/usr/bin/env bash
# CHAIN READ, 4 layers: served bytes == qemu-img convert of the top (QEMU
# resolving the chain); block status == qemu-img map of the top.
#   chain 1: raw (fully written, 4M)
#            <- v2 qcow2 (compat=0.10, zlib-compressed clusters, data)
#            <- standard-L2 v3 32k clusters, zstd, 3M+64k: SHORTER than the
#               top (everything below is cut there; reads zeros past it),
#               zero clusters over data, compressed clusters
#            <- extended-L2 top 64k, 4M: partial subclusters, zero
#               subclusters, discards, random mix
#   chain 2: extended-L2 16k zstd-compressed base (convert -c), 3M
#            <- standard-L2 v3 6M: LONGER than the top (cut)
#            <- v2 qcow2 4M+512
#            <- standard-L2 v3 16k clusters top, 4M+512: zero clusters with
#               and without a host offset, discards
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

cd "$tmpdir"
mk="$PY $srcdir/lib/mkimg.py"

# chain 1
$chainpy layer l0.raw 4M --fmt raw --seed 101 full
$chainpy layer l1.qcow2 4M -o compat=0.10,cluster_size=65536 -b l0.raw -F raw \
    --seed 102 c:0:128k c:1M:64k c:3M:192k rand:30 d:256k+1:70000 t:512k:128k
qcx_expect_layout l1.qcow2 compressed -ge 1
$chainpy layer l2.qcow2 3M+64k -o cluster_size=32768,compression_type=zstd \
    -b l1.qcow2 -F qcow2 --seed 103 rand:30 c:64k:64k z:0:32k u:1M:64k z:3M:64k \
    d:2M+5:40000 t:2M+512k:32k
qcx_expect_layout l2.qcow2 compressed -ge 1
qcx_expect_layout l2.qcow2 zero_no_offset -ge 1
$chainpy layer l3.qcow2 4M -o extended_l2=on,cluster_size=65536 -b l2.qcow2 -F qcow2 \
    --seed 104 rand:40 d:100:3000 d:3M+1000:70000 z:128k+2k:4k u:1M+8k:16k t:2M:64k \
    z:3M+128k:64k u:3M+192k:2k d:4M-100:100
qcx_expect_layout l3.qcow2 sub_unalloc_with_offset -ge 1
qcx_expect_layout l3.qcow2 sub_zero_no_offset -ge 1

# chain 2
$mk compressed m0.qcow2 3M --alg zstd --cluster-size 16384 --ext on
qcx_expect_layout m0.qcow2 compressed -ge 5
$chainpy layer m1.qcow2 6M -o cluster_size=65536 -b m0.qcow2 -F qcow2 --seed 201 \
    rand:20 d:5M:512k d:3M-4k:8k
$chainpy layer m2.qcow2 4M+512 -o compat=0.10,cluster_size=65536 -b m1.qcow2 -F qcow2 \
    --seed 202 rand:20 d:4M:512 t:1M:64k
$chainpy layer m3.qcow2 4M+512 -o cluster_size=16384 -b m2.qcow2 -F qcow2 --seed 203 \
    rand:30 d:0:20000 z:32k:16k u:64k:32k d:1M:32k z:1M:16k t:2M+16k:16k
qcx_expect_layout m3.qcow2 zero_with_offset -ge 1
qcx_expect_layout m3.qcow2 zero_no_offset -ge 1

for top in l3.qcow2 m3.qcow2; do
    CHAIN_REQUIRE=0,2,3 chain_extents $top $top
    chain_compare $top $top
done
