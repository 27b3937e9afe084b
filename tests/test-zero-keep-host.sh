#!/usr/bin/env bash
# ZERO without MAY_TRIM (NBD_CMD_FLAG_NO_HOLE) keeps the host clusters
#
# design.md §2 / issue 3: the range reads as zero and keeps its host
# clusters: zero bits (extended L2) or the zero flag (v3 standard L2) with
# the host offset kept.  qemu-img map must show zero:true, data:false and
# the same host offset as before; qemu-img check: no leaks.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit fallocate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/zerolib.sh"

for kind in ext std; do
    img=$tmpdir/$kind.qcow2
    mkfull_1m "$kind" "$img"
    C=65536 S=2048
    h1=$(wl hostoff "$img" $C)
    h2=$(wl hostoff "$img" $((2*C)))
    h4=$(wl hostoff "$img" $((4*C)))
    h5=$(wl hostoff "$img" $((5*C)))
    h6=$(wl hostoff "$img" $((6*C)))
    zops=(cap,zero z,C,C,nohole z,4*C,3*C,nohole)
    if [ $kind = ext ]; then
        # whole subclusters 4..9 of cluster 2, and all of cluster 8 but
        # through two requests
        zops+=(z,2*C+4*S,6*S,nohole z,8*C,10*S,nohole z,8*C+10*S,22*S,nohole)
    fi
    ops "$img" "$img.ref" --var C=$C --var S=$S "${zops[@]}"
    wl expect-map "$img" $C $C data=false zero=true offset=$h1
    wl expect-map "$img" $((4*C)) $C data=false zero=true offset=$h4
    wl expect-map "$img" $((5*C)) $C data=false zero=true offset=$h5
    wl expect-map "$img" $((6*C)) $C data=false zero=true offset=$h6
    wl expect-map "$img" 0 $C data=true
    if [ $kind = ext ]; then
        wl expect-map "$img" $((2*C)) $((4*S)) data=true offset=$h2
        wl expect-map "$img" $((2*C+4*S)) $((6*S)) data=false zero=true \
            offset=$((h2+4*S))
        wl expect-map "$img" $((2*C+10*S)) $((22*S)) data=true \
            offset=$((h2+10*S))
        wl expect-map "$img" $((8*C)) $C data=false zero=true offset=any
    fi
    wl verify "$img" "$img.ref"
    qcx_compare_extents "$img"
done
