#!/usr/bin/env bash
# qcow2x hostile image: a refcount table entry that is not cluster aligned (refcount block offset
#   + 512): refused at start-up with a clear error, or read-only with a warning; never written
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

c=refblock-unaligned
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" --log-phrase read-only \
    --write-at 1M "$tmpdir/$c.qcow2" || rc=1
exit $rc
