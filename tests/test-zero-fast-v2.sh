#!/usr/bin/env bash
# FAST_ZERO on a version 2 image (no zero flag) fails with ENOTSUP
#
# v2 has no zero flag: zeroing allocated data needs data writes, so a
# FAST_ZERO request must fail fast with ENOTSUP and change nothing
# (issue 3: "FAST_ZERO is honoured (fail fast where zeroing would need
# data writes)").  A plain zero afterwards works.
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
ops "$img" "$img.ref" --var C=$C cap,fast_zero \
    zfail,C,C,ENOTSUP,fast,nohole \
    zfail,2*C+100,1000,ENOTSUP,fast,nohole \
    zfail,3*C+100,1000,ENOTSUP,fast \
    zfail,4*C,3*C,ENOTSUP,fast,nohole \
    z,C,C,nohole r,0,16*C
qcx_expect_layout "$img" version -eq 2
wl verify "$img" "$img.ref"
