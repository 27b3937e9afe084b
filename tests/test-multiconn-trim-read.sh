#!/usr/bin/env bash
# MULTI-CONN: reads racing trims/zeroes while writes reuse the freed clusters.
#
# design.md §5: "A cluster being released must not be reused while a read
# of it is still in flight."  4 connections; reads are allowed to overlap
# zero/trim requests in flight (workload.py --racy-reads): each byte read
# must be its value before or after them, never data of another cluster.
# Trims and MAY_TRIM zeroes free whole clusters while concurrent writes
# allocate (reusing freed host clusters first).  Extended L2 (64 KiB) and
# standard L2 (4 KiB clusters).  Then qemu-img check clean, compare identical.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

for kind in ext std; do
    img=$tmpdir/$kind.qcow2
    ref=$tmpdir/$kind.raw
    case $kind in
        ext) qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on "$img" 2M ;;
        std) qemu-img create -q -f qcow2 -o cluster_size=4k,extended_l2=off "$img" 1M ;;
    esac
    qcx_gen_data 77 2M "$tmpdir/fill" random
    size=$(qemu-img info --output=json "$img" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    qemu-io -f qcow2 -c "write -q -s $tmpdir/fill 0 $size" "$img" >/dev/null
    qcx_qemu_raw "$img" "$ref"
    session 7 --conns 4 --depth 16 --ops 12000 --racy-reads \
        --mix write=25,read=40,zero=3,zerotrim=10,trim=15,flush=2,fua=3,fastzero=2
done
