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
