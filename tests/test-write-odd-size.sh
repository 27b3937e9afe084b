#!/usr/bin/env bash
# WRITE: virtual sizes that are not a multiple of the cluster size
#
# The last cluster is partial (and on extended L2 the last subcluster
# too): writes, zeroes and trims that touch the end of the disk.  Extended
# L2 64 KiB, standard 4 KiB, v2 16 KiB, 512-byte clusters.
# A random workload (tests/lib/workload.py: unaligned writes biased to
# subcluster/cluster/L2-table boundaries, zero with and without MAY_TRIM,
# FAST_ZERO, trim, flush, FUA, reads checked as they go) runs through the
# plugin against a raw reference with the same operations applied; then
# qemu-img check must be clean (no errors, no leaks) and qemu-img compare
# must find the image identical to the reference.  A second session
# reopens the image and repeats with another seed.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

n=0
for spec in "cluster_size=64k,extended_l2=on 5243392" \
            "cluster_size=4k,extended_l2=off 3146240" \
            "compat=0.10,cluster_size=16k 2098688" \
            "cluster_size=512 1049088"; do
    set -- $spec
    n=$((n + 1))
    img=$tmpdir/odd$n.qcow2
    ref=$tmpdir/odd$n.raw
    qemu-img create -q -f qcow2 -o "$1" "$img" "$2"
    wl prefill "$img" --seed $((500 + n)) --tmpdir "$tmpdir" --budget 1M
    qcx_qemu_raw "$img" "$ref"
    [ "$(stat -c %s "$ref")" = "$2" ] || fail "virtual size is not $2"
    session $((510 + n)) --ops 2500 --verify-start --regions 0:256K,$(( $2 - 300000 )):
done
