#!/usr/bin/env bash
# TRIM of partial subclusters/clusters reads back as zero, neighbours intact
#
# The plugin alone never serves a backing file, so every trimmed byte
# reads as zero afterwards (issue 3: partial clusters become zero
# subclusters or are zero-filled); the bytes around it are unchanged.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit fallocate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/zerolib.sh"

for kind in ext std v2; do
    img=$tmpdir/$kind.qcow2
    case $kind in
        ext) mkfull "$img" cluster_size=64k,extended_l2=on 1M ;;
        std) mkfull "$img" cluster_size=64k,extended_l2=off 1M ;;
        v2) mkfull "$img" compat=0.10,cluster_size=64k 1M ;;
    esac
    C=65536 S=2048
    ops "$img" "$img.ref" --var C=$C --var S=$S cap,trim \
        t,C+3*S+5,100 t,2*C+S-3,2*S+6 t,3*C+C-1,2 t,5*C+100,C t,7*C+S,30*S \
        w,7*C+5*S+3,10 t,8*C,1 \
        r,0,16*C
    wl verify "$img" "$img.ref"
    qcx_compare_extents "$img"
done
