#!/usr/bin/env bash
# TRIM of whole clusters frees them
#
# issue 3: trim may release whole clusters (refcount decrement, hole
# punched in the file); the plugin alone has no backing file, so the
# range then reads as zero.  Checked on extended L2 (16 and 64 KiB), v3
# standard and v2: qemu-img map shows no host offset and data:false,
# qemu-img check shows no leaks, the freed host range holds no data.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit fallocate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/zerolib.sh"

for kind in ext16 ext64 std v2; do
    img=$tmpdir/$kind.qcow2
    case $kind in
        ext16) C=16384; mkfull "$img" cluster_size=16k,extended_l2=on 1M ;;
        ext64) C=65536; mkfull "$img" cluster_size=64k,extended_l2=on 2M ;;
        std) C=65536; mkfull "$img" cluster_size=64k,extended_l2=off 2M ;;
        v2) C=65536; mkfull "$img" compat=0.10,cluster_size=64k 2M ;;
    esac
    h1=$(wl hostoff "$img" $C)
    h3=$(wl hostoff "$img" $((3*C)))
    h6=$(wl hostoff "$img" $((6*C)))
    ops "$img" "$img.ref" --var C=$C cap,trim t,C,C t,3*C,4*C t,9*C,C,fua \
        r,0,12*C
    wl expect-map "$img" $C $C data=false offset=none
    wl expect-map "$img" $((3*C)) $((4*C)) data=false offset=none
    wl expect-map "$img" $((9*C)) $C data=false offset=none
    wl expect-map "$img" 0 $C data=true
    wl expect-map "$img" $((2*C)) $C data=true
    wl verify "$img" "$img.ref"
    expect_hole "$img" "$h1" $C
    expect_hole "$img" "$h3" $C
    expect_hole "$img" "$h6" $C
    qcx_compare_extents "$img"
done
