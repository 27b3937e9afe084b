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

. "$srcdir/lib/zerolib.sh"

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
