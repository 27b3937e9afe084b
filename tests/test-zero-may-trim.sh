#!/usr/bin/env bash
# ZERO with MAY_TRIM on whole clusters releases the host clusters
#
# (NBD write zeroes without NO_HOLE.)  issue 3: whole clusters may be
# released: refcount decrement and a hole punched in the file.  qemu-img
# map: zero:true, data:false and no host offset; qemu-img check: no leaks;
# the freed host range holds no data any more.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit fallocate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/zerolib.sh"

for kind in ext std; do
    img=$tmpdir/$kind.qcow2
    mkfull_1m "$kind" "$img"
    C=65536
    h1=$(wl hostoff "$img" $C)
    h5=$(wl hostoff "$img" $((5*C)))
    h6=$(wl hostoff "$img" $((6*C)))
    ops "$img" "$img.ref" --var C=$C cap,zero z,C,C z,5*C,2*C
    wl expect-map "$img" $C $C data=false zero=true offset=none
    wl expect-map "$img" $((5*C)) $((2*C)) data=false zero=true offset=none
    wl expect-map "$img" 0 $C data=true
    wl expect-map "$img" $((2*C)) $((3*C)) data=true
    wl verify "$img" "$img.ref"
    expect_hole "$img" "$h1" $C
    expect_hole "$img" "$h5" $C
    expect_hole "$img" "$h6" $C
    qcx_compare_extents "$img"
done
