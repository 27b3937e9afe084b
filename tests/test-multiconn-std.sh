#!/usr/bin/env bash
# MULTI-CONN: 4 connections allocating in the same clusters (standard L2).
#
# Fresh standard-L2 image, 64 KiB clusters: the allocation unit is the
# cluster, so 4 connections writing disjoint 4 KiB stripes of one cluster
# race on the allocation, on the zero-filling of the rest of the cluster
# and on the L2 entry; none of their writes may be lost.  qemu-img check
# clean, qemu-img compare identical.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=off "$img" 4M
qcx_qemu_raw "$img" "$ref"
mix=write=50,read=20,zero=8,zerotrim=6,fastzero=2,trim=6,flush=2,fua=6
session 1 --conns 4 --depth 16 --stripe 4k --ops 15000 --mix $mix
session 2 --conns 4 --depth 16 --stripe 4k --ops 10000 --mix $mix
