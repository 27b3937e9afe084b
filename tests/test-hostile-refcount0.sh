#!/usr/bin/env bash
# qcow2x hostile image: refcount 0 (patched in the refcount block) on an in-use L2 table and on an
#   in-use data cluster, and a data cluster (host 9 MiB) where no refcount block exists
#   (refcount-0 implicitly): served read-only with an "inconsistent" warning (a writer would hand
#   those clusters out again); reads equal qemu-img convert; writes fail with EPERM; unchanged
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in refcount0-l2 refcount0-data refcount0-noblock; do
    bad $c "$tmpdir/$c.qcow2"
    qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
    # 1M and 5M are unallocated: a write there allocates (the refcount-0 cluster would be free)
    bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
        --write-at 1M --write-at 5M "$tmpdir/$c.qcow2" || rc=1
done
exit $rc
