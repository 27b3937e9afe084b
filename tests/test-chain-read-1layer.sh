#!/usr/bin/env bash
# CHAIN READ, 1 layer: images without a backing file served through the
# qcow2xchain filter read exactly as without it: bytes == qemu-img convert,
# block status == qemu-img map (data 0; zero with a host cluster kept 2;
# other zeros 3).  Extended L2 (every subcluster state), standard L2 v3,
# v2 (compat=0.10), zlib- and zstd-compressed images.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

cd "$tmpdir"
mk="$PY $srcdir/lib/mkimg.py"

$mk ext-states ext.qcow2 --cluster-size 65536
qcx_expect_layout ext.qcow2 sub_zero_with_offset -ge 1
qcx_expect_layout ext.qcow2 sub_zero_no_offset -ge 1
qcx_expect_layout ext.qcow2 sub_unalloc_with_offset -ge 1
$mk std-states std.qcow2 --cluster-size 16384
qcx_expect_layout std.qcow2 zero_with_offset -ge 1
qcx_expect_layout std.qcow2 zero_no_offset -ge 1
$chainpy layer v2.qcow2 3M+7680 -o compat=0.10,cluster_size=32768 --seed 3 \
    d:0:100k p:200k:64k d:1M+5:3000 c:2M:64k t:200k:32k rand:20
qcx_expect_layout v2.qcow2 version -eq 2
$mk compressed zlib.qcow2 3M --alg zlib --cluster-size 65536
qcx_expect_layout zlib.qcow2 compressed -ge 5
$mk compressed zstd.qcow2 3M --alg zstd --cluster-size 16384 --ext on
qcx_expect_layout zstd.qcow2 compressed -ge 5

CHAIN_REQUIRE=0,2,3 chain_extents ext.qcow2 ext.qcow2
CHAIN_REQUIRE=0,2,3 chain_extents std.qcow2 std.qcow2
for img in ext.qcow2 std.qcow2 v2.qcow2 zlib.qcow2 zstd.qcow2; do
    chain_compare "$img" "$img"
    CHAIN_REQUIRE=0 chain_extents "$img" "$img"
done
