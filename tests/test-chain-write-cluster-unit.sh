#!/usr/bin/env bash
# CHAIN WRITE, cow-unit=cluster: the random multi-connection workload of
# test-chain-write-random.sh (striped phase, then anywhere) on a fresh
# extended-L2 overlay (64k clusters) over a random-data base, through the
# filter with cow-unit=cluster.  Afterwards qemu-img check clean, compare
# identical to the raw reference, base unchanged, restart reads equal
# qemu-img convert, and no cluster of the overlay is left partly
# deferred (no unallocated subcluster in a cluster with a host offset),
# while the same workload with cow-unit=subcluster does leave some.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp sha256sum
requires_python_nbd

cd "$tmpdir"
$chainpy layer base.qcow2 8M -o cluster_size=65536 --seed 1 full u:1M:128k z:2M+64k:64k
chain_sums base.qcow2 > base.sha256
for unit in cluster subcluster; do
    $chainpy layer top-$unit.qcow2 8M -o extended_l2=on,cluster_size=65536 \
        -b base.qcow2 -F qcow2
    qemu-img convert -O raw top-$unit.qcow2 ref-$unit.raw
    chain_workload top-$unit.qcow2 ref-$unit.raw --conns 4 --seed "${QCX_SEED:-1}" \
        --ops 600 --stripe 1536 --verify-start --trace trace1-$unit.txt -- cow-unit=$unit
    chain_workload top-$unit.qcow2 ref-$unit.raw --conns 4 --seed "${QCX_SEED:-1}" \
        --ops 600 --mix write=50,read=20,zero=8,zerotrim=6,fastzero=3,trim=6,flush=2,fua=5 --trace trace2-$unit.txt \
        -- cow-unit=$unit
    chain_check_clean top-$unit.qcow2
    chain_compare_ref ref-$unit.raw top-$unit.qcow2
    sha256sum -c base.sha256 || fail "the base image changed"
    chain_compare top-$unit.qcow2 top-$unit.qcow2 cow-unit=$unit
done
qcx_expect_layout top-subcluster.qcow2 sub_unalloc_with_offset -ge 1
qcx_expect_layout top-cluster.qcow2 sub_unalloc_with_offset -eq 0
