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

wl () { "$PY" "$srcdir/lib/workload.py" "$@"; }

# ops IMG REF OP...: one read-write session through the plugin applying
# explicit ops to IMG and REF (see workload.py ops; reads are verified).
ops ()
{
    local img=$1 ref=$2 cmd a
    shift 2
    printf -v cmd '%q %q ops "$uri" --ref %q' \
        "$PY" "$srcdir/lib/workload.py" "$ref"
    for a in "$@"; do printf -v cmd '%s %q' "$cmd" "$a"; done
    qcx_nbdkit_rw "$img" --run "$cmd" ||
        fail "ops on $(basename "$img") failed"
}

# mkfull IMG OPTS SIZE: qcow2 image with every byte written (random data),
# and IMG.ref, its raw contents.
mkfull ()
{
    local img=$1 opts=$2 size=$3
    qemu-img create -q -f qcow2 -o "$opts" "$img" "$size"
    qcx_gen_data 99 "$size" "$img.data" random
    qemu-io -f qcow2 -c "write -q -s $img.data 0 $size" "$img" >/dev/null
    rm -f "$img.data"
    qcx_qemu_raw "$img" "$img.ref"
}

# expect_hole IMG HOSTOFF LEN: freed host clusters are punched out.
expect_hole ()
{
    local rc=0
    wl expect-hole "$@" || rc=$?
    case $rc in
        0|77) ;;
        *) fail "freed host range not released: expect-hole $*" ;;
    esac
}

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
