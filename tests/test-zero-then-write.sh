#!/usr/bin/env bash
# partial writes into zeroed (sub)clusters whose host data is stale
#
# A NO_HOLE zero keeps the host cluster and its old bytes.  A later
# partial write there must fill the rest of the subcluster (extended L2)
# or cluster (standard L2) with zeros: the stale bytes never reappear
# (issue 3: "a partial-subcluster write into a subcluster that reads as
# zero fills the rest of that subcluster with zeros").
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
    ops "$img" "$img.ref" --var C=$C --var S=$S \
        z,C,C,nohole w,C+5*S+100,50 \
        z,2*C+3*S,4*S,nohole w,2*C+4*S+7,9 w,2*C+6*S+S-1,2 \
        z,3*C,2*C,nohole w,3*C+C-3,6 \
        r,0,16*C
    if [ $kind = ext ]; then
        # only the written subcluster is allocated; the others stay zero
        wl expect-map "$img" $C $((5*S)) data=false zero=true
        wl expect-map "$img" $((C+5*S)) $S data=true
        wl expect-map "$img" $((C+6*S)) $((26*S)) data=false zero=true
    fi
    wl verify "$img" "$img.ref"
    # and the plugin's own reads agree with qemu's
    qcx_compare_with_qemu "$img"
    qcx_compare_extents "$img"
done
