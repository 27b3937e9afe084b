#!/usr/bin/env bash
# MULTI-CONN: 4 connections allocating in the same clusters (extended L2).
#
# Fresh extended-L2 image, 64 KiB clusters (2 KiB subclusters).  Each of 4
# connections owns every 4th 4 KiB stripe, so the connections never touch
# the same bytes but all of them allocate, zero, trim and read inside the
# same clusters at once (async requests, up to 16 in flight each).  Then a
# second session does the same on the now allocated image.  qemu-img check
# clean, qemu-img compare identical.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on "$img" 4M
qcx_qemu_raw "$img" "$ref"
mix=write=50,read=20,zero=8,zerotrim=6,fastzero=2,trim=6,flush=2,fua=6
session 1 --conns 4 --depth 16 --stripe 4k --ops 15000 --mix $mix
session 2 --conns 4 --depth 16 --stripe 4k --ops 10000 --mix $mix
