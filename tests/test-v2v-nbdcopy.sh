#!/usr/bin/env bash
# V2V: the virt-v2v output case, nbdcopy from a raw source into a new image.
#
#   nbdcopy -- [ nbdkit -r file src.raw ] [ nbdkit qcow2x out.qcow2 create=true size=... ]
#
# must produce an image that qemu-img compare finds identical to the source,
# that qemu-img check finds clean, and that is sparse where the source is:
# no allocation unit (subcluster/cluster) that is all zero in the source is
# allocated as data.  Default creation options, then standard L2 4 KiB
# clusters, then a v2 (compat=0.10) image.  The source has literal zero runs
# (written zeros) and a sparse tail (a hole in the file).
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdcopy truncate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
wl () { "$PY" "$srcdir/lib/workload.py" "$@"; }

src=$tmpdir/src.raw
qcx_gen_data 3 12M "$src" mix
truncate -s 16M "$src"

n=0
for opts in "" "cluster-size=4k extended-l2=false" "compat=0.10 cluster-size=16k"; do
    n=$((n + 1))
    out=$tmpdir/out$n.qcow2
    # shellcheck disable=SC2086
    nbdcopy -- [ nbdkit -r file "$src" ] \
               [ nbdkit "$PLUGIN" "$out" create=true size=16M $opts ] ||
        fail "nbdcopy into a new image (${opts:-defaults}) failed"
    qemu-img info "$out"
    wl verify "$out" "$src" || fail "out$n (${opts:-defaults}) not clean/identical"
    wl expect-sparse "$out" "$src" --min-zero-units 50 ||
        fail "out$n (${opts:-defaults}) is not sparse where the source is"
done
