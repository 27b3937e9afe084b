#!/usr/bin/env bash
# MULTI-CONN: 4 connections, random overlapping workload.
#
# workload.py with 4 connections on a prefilled image (data, zero,
# discarded and compressed clusters): requests go to random connections,
# any request overlapping one in flight waits for it (so the expected
# contents are defined), everything else runs concurrently: writes racing
# trims, reads racing allocations, flushes among writes.  Then the same on
# 512-byte clusters, where concurrent allocations keep adding L2 tables
# and refcount blocks.  qemu-img check clean, qemu-img compare identical.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

qemu-img create -q -f qcow2 -o cluster_size=16k,extended_l2=on "$img" 8M
wl prefill "$img" --seed 44 --tmpdir "$tmpdir" --budget 4M
qcx_expect_layout "$img" compressed -ge 3
qcx_qemu_raw "$img" "$ref"
session 44 --conns 4 --depth 12 --ops 8000 --verify-start

img=$tmpdir/small.qcow2
ref=$tmpdir/small.raw
qemu-img create -q -f qcow2 -o cluster_size=512 "$img" 6M
wl prefill "$img" --seed 45 --tmpdir "$tmpdir" --budget 1M
qcx_qemu_raw "$img" "$ref"
before=$(wl header "$img")
session 45 --conns 4 --depth 12 --ops 5000 \
    --mix write=40,read=15,zero=8,zerotrim=6,fastzero=3,trim=6,flush=3,fua=5,big=8 \
    --big-len 64K
after=$(wl header "$img")
echo "refcount structures: before $before, after $after"
