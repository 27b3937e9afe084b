#!/usr/bin/env bash
# CHAIN WRITE, standard L2 and v2 overlays: the random multi-connection
# workload of test-chain-write-random.sh through the filter on a
# standard-L2 v3 overlay (32k clusters: the copy-on-write unit is the
# cluster) and on a v2 overlay (compat=0.10: no zero flag, so zero and
# trim over backing data must still read as zero), both over a qcow2 base
# full of random data, with a few pre-existing overlay clusters (data,
# zero, compressed).  Afterwards qemu-img check clean, compare identical
# to the raw reference, base unchanged, restart reads equal qemu-img
# convert.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp sha256sum
requires_python_nbd

cd "$tmpdir"
$chainpy layer base.qcow2 8M -o cluster_size=65536 --seed 1 full u:1M:128k z:2M+64k:64k
chain_sums base.qcow2 > base.sha256
$chainpy layer std.qcow2 8M -o cluster_size=32768 -b base.qcow2 -F qcow2 --seed 2 \
    c:3M:64k rand:20 z:6M:32k u:6M+64k:32k
qcx_expect_layout std.qcow2 zero_with_offset -ge 0
$chainpy layer v2.qcow2 8M -o compat=0.10,cluster_size=65536 -b base.qcow2 -F qcow2 \
    --seed 3 c:3M:64k rand:20
qcx_expect_layout v2.qcow2 version -eq 2
for img in std.qcow2 v2.qcow2; do
    qemu-img convert -O raw $img $img.ref
    chain_workload $img $img.ref --conns 4 --seed "${QCX_SEED:-1}" --ops 800 \
        --stripe 1536 --verify-start
    chain_workload $img $img.ref --conns 4 --seed "${QCX_SEED:-1}" --ops 1000
    chain_check_clean $img
    chain_compare_ref $img.ref $img
    sha256sum -c base.sha256 || fail "the base image changed"
    chain_compare $img $img
done
qcx_expect_layout v2.qcow2 version -eq 2
