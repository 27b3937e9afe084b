#!/usr/bin/env bash
# ZERO of partial subclusters/clusters keeps the other bytes
#
# Zeroing part of an allocated subcluster (extended L2) or cluster
# (standard) must zero exactly the requested bytes, with and without
# MAY_TRIM; whole subclusters inside a NO_HOLE request become zero
# subclusters with the host offset kept (issue 3).
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
    h5=$(wl hostoff "$img" $((5*C)))
    ops "$img" "$img.ref" --var C=$C --var S=$S \
        z,C+3*S+100,600,nohole \
        z,2*C+5*S+1,3*S-2 \
        z,3*C+S-10,20,nohole \
        z,4*C+C-100,200 \
        z,5*C+2*S-7,3*S+14,nohole \
        z,6*C+7,1 \
        z,7*C+C-1,2,nohole \
        r,0,16*C
    if [ $kind = ext ]; then
        wl expect-map "$img" $((5*C+2*S)) $((3*S)) data=false zero=true \
            offset=$((h5+2*S))
        wl expect-map "$img" $((5*C+S)) $S data=true offset=$((h5+S))
        wl expect-map "$img" $((5*C+5*S)) $S data=true offset=$((h5+5*S))
    else
        wl expect-map "$img" $((5*C)) $C data=true offset=$h5
    fi
    wl verify "$img" "$img.ref"
    qcx_compare_extents "$img"
done
