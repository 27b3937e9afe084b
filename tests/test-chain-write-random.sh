#!/usr/bin/env bash
# CHAIN WRITE, random: an extended-L2 overlay (64k clusters, some clusters
# already in mixed states) over a qcow2 base full of random data (plus
# zero clusters).  Through the filter (default cow-unit=subcluster), 4
# connections at once: random writes (fixed seed, unaligned, partial
# subclusters, spanning clusters), zero (with/without MAY_TRIM, FAST_ZERO),
# trim, flush, FUA, reads checked against the model as they complete
# (tests/lib/workload.py; byte-overlapping ops are serialised by the
# test).  First phase: each connection owns 1536-byte stripes, so
# concurrent writes share subclusters/clusters they must copy-on-write
# (the filter must serialise the widened ranges); then ops anywhere.  Afterwards: qemu-img
# check clean, qemu-img compare (QEMU resolving the chain) identical to
# the raw reference, base unchanged (sha256), and after a restart the
# filter's bytes equal qemu-img convert.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp sha256sum
requires_python_nbd

cd "$tmpdir"
$chainpy layer base.qcow2 8M -o cluster_size=65536 --seed 1 full u:1M:128k z:2M+64k:64k u:5M+2k:6k
$chainpy layer top.qcow2 8M -o extended_l2=on,cluster_size=65536 -b base.qcow2 -F qcow2 \
    --seed 2 rand:25
qcx_expect_layout top.qcow2 mixed_clusters -ge 1
chain_sums base.qcow2 > base.sha256
qemu-img convert -O raw top.qcow2 ref.raw

chain_workload top.qcow2 ref.raw --conns 4 --seed "${QCX_SEED:-1}" --ops 1000 \
    --stripe 1536 --verify-start --trace trace1.txt
chain_workload top.qcow2 ref.raw --conns 4 --seed "${QCX_SEED:-1}" --ops 1500 \
    --trace trace2.txt

chain_check_clean top.qcow2
chain_compare_ref ref.raw top.qcow2
sha256sum -c base.sha256 || fail "the base image changed"
chain_compare top.qcow2 top.qcow2
