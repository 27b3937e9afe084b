#!/usr/bin/env bash
# TRIM and ZERO of compressed clusters
#
# Compressed clusters have no host cluster of their own and may share
# host clusters (and 512-byte sectors) with other compressed clusters.
# Trimming/zeroing them, whole or in part, must drop their references
# exactly: qemu-img check shows no leaks and no errors; contents match.
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

for kind in zlib-std zstd-ext; do
    img=$tmpdir/$kind.qcow2
    case $kind in
        zlib-std) C=65536; o=cluster_size=64k,compression_type=zlib ;;
        zstd-ext) C=32768; o=cluster_size=32k,extended_l2=on,compression_type=zstd ;;
    esac
    qcx_gen_data 5 2M "$tmpdir/src.raw" text
    qemu-img convert -q -c -f raw -O qcow2 -o "$o" "$tmpdir/src.raw" "$img"
    qcx_expect_layout "$img" compressed -ge 20
    qcx_expect_layout "$img" compressed_shared_sector -ge 1
    cp "$tmpdir/src.raw" "$img.ref"
    ops "$img" "$img.ref" --var C=$C cap,trim cap,zero \
        t,C,C z,2*C,C,nohole z,3*C,2*C t,5*C+100,1000 z,6*C+10,20,nohole \
        z,7*C+C-5,10 t,9*C,1 w,10*C+C/2,C f \
        r,0,2*M
    wl expect-map "$img" $C $C data=false
    wl expect-map "$img" $((2*C)) $((3*C)) data=false zero=true
    wl verify "$img" "$img.ref"
    qcx_compare_extents "$img"
done
