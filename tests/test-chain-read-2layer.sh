#!/usr/bin/env bash
# CHAIN READ, 2 layers (top + one backing file): served bytes ==
# qemu-img convert of the top (QEMU resolving the chain); block status ==
# qemu-img map of the top (data in any layer 0; zero where the top keeps a
# host cluster 2; other zeros 3).  Chains:
#   A raw base (fully written)          <- extended-L2 top (zstd): partial
#     subcluster writes, zero subclusters/clusters over base data (write -z,
#     write -z -u), discards, compressed clusters, random mix
#   B v2 base, zlib-compressed          <- standard-L2 v3 top (16k clusters):
#     zero clusters with/without host offset over base data, discards
#   C extended-L2 zstd-compressed base 2M+32k, SHORTER than the 4M v2 top
#     (reads zeros past the base's end; v2 discards expose the base again)
#   D standard-L2 base 6M, LONGER than the 3.5M extended-L2 16k top (cut)
#   E sparse raw base (holes: QEMU says zero, not data) <- standard-L2 top
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

cd "$tmpdir"
mk="$PY $srcdir/lib/mkimg.py"

# A
$chainpy layer a-base.raw 4M --fmt raw --seed 11 full
$chainpy layer a-top.qcow2 4M -o extended_l2=on,cluster_size=65536,compression_type=zstd \
    -b a-base.raw -F raw --seed 12 rand:40 \
    d:100:1000 d:64k+2048:2048 d:192k-700:1400 z:256k:64k u:320k:64k \
    z:448k+4096:8192 u:512k+2048:2048 t:640k:64k c:1M:128k d:2M+31k:66k \
    z:1M+64k:64k
qcx_expect_layout a-top.qcow2 sub_zero_no_offset -ge 1
qcx_expect_layout a-top.qcow2 sub_unalloc_with_offset -ge 1
qcx_expect_layout a-top.qcow2 compressed -ge 1
# B
$mk data b-base.qcow2 4M --seed 21 -o compat=0.10,cluster_size=65536 --compress
qcx_expect_layout b-base.qcow2 compressed -ge 5
$chainpy layer b-top.qcow2 4M -o cluster_size=16384 -b b-base.qcow2 -F qcow2 --seed 22 rand:30 \
    d:3:5000 d:48k:16k z:64k:32k u:128k:48k t:256k:16k \
    d:512k:32k z:512k:16k d:1M:16k t:1M:16k
qcx_expect_layout b-top.qcow2 zero_no_offset -ge 1
qcx_expect_layout b-top.qcow2 zero_with_offset -ge 1
# C
$mk compressed c-base.qcow2 $((2*1024*1024 + 32768)) --alg zstd --cluster-size 32768 --ext on
$chainpy layer c-top.qcow2 4M -o compat=0.10,cluster_size=65536 -b c-base.qcow2 -F qcow2 \
    --seed 31 rand:20 d:1M+100:3000 d:2M:8k d:2M+30k:4k d:3M:64k t:3M:64k d:4M-700:700
qcx_expect_layout c-top.qcow2 version -eq 2
# D
$chainpy layer d-base.qcow2 6M -o cluster_size=65536 --seed 41 full z:3M:256k
$chainpy layer d-top.qcow2 3M+512k -o extended_l2=on,cluster_size=16384 \
    -b d-base.qcow2 -F qcow2 --seed 42 rand:30 d:3M+500k:12k u:3M+200k:16k
# E
$chainpy layer e-base.raw 4M --fmt raw --seed 51 d:0:512k d:1M+4k:100k d:3M:1M
$chainpy layer e-top.qcow2 4M -b e-base.raw -F raw --seed 52 rand:10 d:100k:64k u:1M:64k

CHAIN_REQUIRE=0,2,3 chain_extents a-top.qcow2 a-top.qcow2
CHAIN_REQUIRE=0,2,3 chain_extents b-top.qcow2 b-top.qcow2
CHAIN_REQUIRE=0,3 chain_extents c-top.qcow2 c-top.qcow2
CHAIN_REQUIRE=0,3 chain_extents d-top.qcow2 d-top.qcow2
CHAIN_REQUIRE=0,3 chain_extents e-top.qcow2 e-top.qcow2
for c in a b c d e; do
    chain_compare $c-top.qcow2 $c-top.qcow2
done
