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
