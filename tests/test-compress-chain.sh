#!/usr/bin/env bash
# COMPRESSED WRITES through the qcow2xchain filter: compress=true on an
# overlay (extended L2 and standard L2) over a qcow2 base full of random
# data and zero clusters.  Whole-cluster writes replace backing data with
# compressed clusters; pieces of clusters that still defer to the base
# are copied-on-write normally (the base's bytes are not known to the
# plugin) and never compressed from a wrong view.  4 connections of
# random writes, zeroes, trims, flushes and checked reads, then qemu-img
# check clean, qemu-img compare (QEMU resolving the chain) identical to
# the raw reference, compressed clusters present, the base unchanged.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit sha256sum
requires_python_nbd

cd "$tmpdir"
$chainpy layer base.qcow2 8M -o cluster_size=65536 --seed 1 full z:2M+64k:64k u:5M:128k
chain_sums base.qcow2 > base.sha256
for ext in on off; do
    rm -f top.qcow2
    qemu-img create -q -f qcow2 -o extended_l2=$ext,cluster_size=65536,compression_type=zstd \
        -b base.qcow2 -F qcow2 top.qcow2
    qemu-img convert -O raw top.qcow2 ref.raw
    chain_workload top.qcow2 ref.raw --conns 4 --seed 3 --ops 1500 \
        --mix write=60,read=20,zero=8,zerotrim=4,trim=4 -- compress=true
    chain_workload top.qcow2 ref.raw --conns 2 --seed 4 --ops 800 -- compress=true
    chain_check_clean top.qcow2
    chain_compare_ref ref.raw top.qcow2
    qcx_expect_layout top.qcow2 compressed -ge 5
    sha256sum -c base.sha256 || fail "the base image changed"
    echo "OK: extended_l2=$ext"
done
echo "test-compress-chain: OK"
