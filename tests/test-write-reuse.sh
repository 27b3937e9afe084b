#!/usr/bin/env bash
# WRITE: freed clusters are reused before the file grows.
#
# issue 3: "new host clusters from the refcount structures (reuse freed
# clusters before growing the file)".  Write a whole 4 MiB disk, note the
# file size; then trim (or zero with MAY_TRIM) everything and write it all
# again: the file must not grow by more than a few clusters of metadata.
# Checked within one session after a flush, and across sessions (clean
# shutdown and reopen).  Extended L2 64 KiB and standard L2 4 KiB clusters.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit fallocate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/zerolib.sh"     # wl, ops

size_of () { stat -c %s "$1"; }

for kind in ext std; do
    img=$tmpdir/$kind.qcow2
    ref=$tmpdir/$kind.raw
    case $kind in
        ext) C=65536; qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on "$img" 4M ;;
        std) C=4096; qemu-img create -q -f qcow2 -o cluster_size=4k,extended_l2=off "$img" 4M ;;
    esac
    qcx_qemu_raw "$img" "$ref"
    slack=$((4 * C))
    ops "$img" "$ref" --seed 1 w,0,4*M f
    s1=$(size_of "$img")
    echo "$kind: file size after writing the whole disk: $s1"
    wl verify "$img" "$ref"

    ops "$img" "$ref" --seed 2 t,0,4*M f w,0,4*M f
    s2=$(size_of "$img")
    echo "$kind: after trim, flush, rewrite in one session: $s2"
    wl verify "$img" "$ref"
    [ "$s2" -le $((s1 + slack)) ] ||
        fail "$kind: file grew from $s1 to $s2 bytes: trimmed clusters were not reused (same session, after flush)"

    ops "$img" "$ref" --seed 3 t,0,4*M
    wl expect-map "$img" 0 4M data=false offset=none
    ops "$img" "$ref" --seed 4 w,0,4*M
    s3=$(size_of "$img")
    echo "$kind: after trim, reopen, rewrite: $s3"
    wl verify "$img" "$ref"
    [ "$s3" -le $((s1 + slack)) ] ||
        fail "$kind: file grew from $s1 to $s3 bytes: trimmed clusters were not reused (after reopen)"

    ops "$img" "$ref" --seed 5 z,0,4*M f w,0,2*M w,2*M,2*M
    s4=$(size_of "$img")
    echo "$kind: after zero (MAY_TRIM), flush, rewrite: $s4"
    wl verify "$img" "$ref"
    [ "$s4" -le $((s1 + slack)) ] ||
        fail "$kind: file grew from $s1 to $s4 bytes: released clusters were not reused"
done
