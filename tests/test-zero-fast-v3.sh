#!/usr/bin/env bash
# FAST_ZERO on version 3 images: metadata-only zeroing succeeds, data writes fail fast
#
# issue 3: "FAST_ZERO is honoured (fail fast where zeroing would need data
# writes)".  Zeroing whole clusters (standard L2) or whole subclusters
# (extended L2) is a metadata update and must succeed; zeroing part of an
# allocated subcluster/cluster needs a data write and must fail with
# ENOTSUP without changing anything.
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
    zops=(cap,fast_zero z,C,C,nohole,fast z,4*C,2*C,fast
          zfail,3*C+100,500,ENOTSUP,fast,nohole)
    if [ $kind = ext ]; then
        zops+=(z,2*C+4*S,2*S,nohole,fast zfail,2*C+8*S+1,S,ENOTSUP,fast,nohole)
    fi
    ops "$img" "$img.ref" --var C=$C --var S=$S "${zops[@]}" r,0,16*C
    wl expect-map "$img" $C $C data=false zero=true offset=$h1
    wl expect-map "$img" $((3*C)) $C data=true
    wl verify "$img" "$img.ref"
done
