#!/usr/bin/env bash
# ZERO on a version 2 image (no zero flag)
#
# v2 has no zero flag: zero without MAY_TRIM writes zeros in place (the
# host cluster is kept); with MAY_TRIM whole clusters may be deallocated.
# Either way the range reads as zero, qemu-img check is clean and the image
# stays version 2.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit fallocate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/zerolib.sh"

img=$tmpdir/v2.qcow2
mkfull "$img" compat=0.10,cluster_size=64k 1M
C=65536
h1=$(wl hostoff "$img" $C)
ops "$img" "$img.ref" --var C=$C cap,zero \
    z,C,C,nohole z,2*C+100,1000,nohole z,3*C,2*C z,5*C+C-10,20 t,7*C,C \
    r,0,16*C
wl expect-map "$img" $C $C offset=$h1
qcx_expect_layout "$img" version -eq 2
wl verify "$img" "$img.ref"
qcx_compare_extents "$img"
