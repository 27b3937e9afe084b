#!/usr/bin/env bash
# qcow2x hostile image: a data cluster referenced by two L2 entries (guest 1 MiB -> the host cluster
#   of guest 0, both COPIED with refcount 1) is served read-only with an "inconsistent"
#   warning; reads equal qemu-img convert; writes/zero/trim fail with EPERM; file unchanged
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

c=data-twice
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
    --write-at 1M "$tmpdir/$c.qcow2" || rc=1
exit $rc
