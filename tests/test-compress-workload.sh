#!/usr/bin/env bash
# COMPRESSED WRITES under a random workload: with compress=true, the
# random multi-connection workload of the write tests (unaligned writes,
# whole clusters and runs of them, zero with and without MAY_TRIM,
# FAST_ZERO, trim, flush, FUA; reads checked as they go) against a raw
# reference.  Whole-cluster writes become compressed clusters, pieces
# become candidates compressed at the next flush, writes into compressed
# clusters decompress and recompress them.  Extended L2 (64 KiB
# clusters, zstd; 4 connections), standard L2 (zlib) and 1-bit refcounts (no packing
# of two compressed clusters into one host cluster).  After each
# session: qemu-img check clean (no errors, no leaks), qemu-img compare
# identical to the reference, and compressed clusters really present.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"
pargs=(compress=true)

run_config ()   # run_config SEED QEMU-IMG-OPTIONS
{
    local seed=$1 opts=$2
    rm -f "$img" "$ref"
    qemu-img create -q -f qcow2 -o "$opts" "$img" 24M
    truncate -s 24M "$ref"
    session "$seed" --ops 2500 --conns 4 --mix write=60,read=20,zero=8,zerotrim=4,trim=4
    qcx_expect_layout "$img" compressed -ge 5
    session $((seed + 1)) --ops 1500
    qcx_expect_layout "$img" compressed -ge 5
    echo "OK: $opts"
}

run_config 700 cluster_size=64k,extended_l2=on,compression_type=zstd
run_config 710 cluster_size=64k,compression_type=zlib
run_config 720 cluster_size=16k,refcount_bits=1,compression_type=zstd
echo "test-compress-workload: OK"
