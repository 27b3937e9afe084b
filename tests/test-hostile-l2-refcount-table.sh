#!/usr/bin/env bash
# qcow2x hostile image: an L2 table sharing its cluster with the refcount table (L1 entry 1 -> the
#   refcount table, COPIED flag set) is served read-only with an "inconsistent" warning; reads
#   equal qemu-img convert; writes/zero/trim fail with EPERM; the file is unchanged
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

# 8 MiB, 4 KiB clusters: guest 2-4 MiB is mapped by the refcount table read as an L2 table.
c=l2-in-refcount-table
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
    --write-at 2M --write-at 2052K "$tmpdir/$c.qcow2" || rc=1
exit $rc
