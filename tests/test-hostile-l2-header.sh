#!/usr/bin/env bash
# qcow2x hostile image: offset 0 with the COPIED flag, i.e. an L2 table or data cluster "in the
#   header cluster" (the only way to encode one there: offset 0 means unallocated in the spec,
#   but QEMU's check reads such an L1 entry as an L2 table at offset 0).  Served read-only,
#   or writable with writes into those regions allocating elsewhere: never a byte of the
#   header cluster changes (but the autoclear field), qemu-img check finds no new error,
#   QEMU reads back what was written
#   - l1-copied-zero: L1 entry 1 (guest 2-4 MiB) = COPIED|0
#   - l2e-copied-zero: L2 entry of guest 1 MiB = COPIED|0
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in l1-copied-zero l2e-copied-zero; do
    bad $c "$tmpdir/$c.qcow2"
    qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
    bad run-write-safe --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
        --write-at 2M --write-at 1M --write-at 3M "$tmpdir/$c.qcow2" || rc=1
done
exit $rc
