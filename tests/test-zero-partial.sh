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

for kind in ext std; do
    img=$tmpdir/$kind.qcow2
    case $kind in
        ext) mkfull "$img" cluster_size=64k,extended_l2=on 1M ;;
        std) mkfull "$img" cluster_size=64k,extended_l2=off 1M ;;
    esac
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
