#!/usr/bin/env bash
# qcow2x hostile image: persistent bitmaps whose clusters the active tables do not reference: a
#   bitmap table or bitmap data cluster with refcount 0, or a data cluster shared with the
#   bitmap table.  Served read-only, or writable without touching them: the bitmap clusters
#   never change, qemu-img check finds no new error, QEMU reads back what was written
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in bitmap-table-refcount0 bitmap-data-refcount0 bitmap-table-shared; do
    bad $c "$tmpdir/$c.qcow2"
    qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
    # 1M: unallocated (bitmap-table-shared: the shared cluster); 2M, 6M: unallocated
    bad run-write-safe --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
        --write-at 1M --write-at 2M --write-at 6M "$tmpdir/$c.qcow2" || rc=1
done
exit $rc
