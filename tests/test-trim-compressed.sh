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

. "$srcdir/lib/zerolib.sh"

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
