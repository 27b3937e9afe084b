#!/usr/bin/env bash
# V2V: qemu-img convert -n into the NBD export of a freshly created image.
#
#   nbdkit -U - qcow2x out.qcow2 create=true size=... \
#       --run 'qemu-img convert -n -f raw -O raw src.raw "$uri"'
#
# qemu-img probes/zeroes the target (write zeroes, with FAST_ZERO when the
# server offers it) and then writes the data.  The result must be identical
# to the source, qemu-img check clean, and sparse where the source is.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit truncate
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
wl () { "$PY" "$srcdir/lib/workload.py" "$@"; }

src=$tmpdir/src.raw
qcx_gen_data 4 10M "$src" mix
truncate -s 12M "$src"

n=0
for opts in "" "cluster-size=64k extended-l2=false"; do
    n=$((n + 1))
    out=$tmpdir/out$n.qcow2
    # shellcheck disable=SC2086
    qcx_nbdkit_rw "$out" create=true size=12M $opts \
        --run "qemu-img convert -n -f raw -O raw $(printf %q "$src") \"\$uri\"" ||
        fail "qemu-img convert -n into the export (${opts:-defaults}) failed"
    wl verify "$out" "$src" || fail "out$n (${opts:-defaults}) not clean/identical"
    wl expect-sparse "$out" "$src" --min-zero-units 50 ||
        fail "out$n (${opts:-defaults}) is not sparse where the source is"
done
