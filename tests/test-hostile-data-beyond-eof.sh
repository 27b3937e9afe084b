#!/usr/bin/env bash
# qcow2x hostile image: a data cluster offset 1 GiB beyond EOF (L2 entry of guest 0, COPIED kept)
#   is served read-only with an "inconsistent" warning; that cluster fails with EIO (stricter
#   than QEMU, which reads zeros), the rest reads as qemu-img convert; writes fail with EPERM
#   (never extending the file to the bogus offset); the file is unchanged
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

c=data-beyond-eof
bad $c "$tmpdir/$c.qcow2" --good "$tmpdir/$c.good.qcow2"
qcx_qemu_raw "$tmpdir/$c.good.qcow2" "$tmpdir/$c.good.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.good.raw" --bad 0:4K \
    --write-at 0 --write-at 4K "$tmpdir/$c.qcow2" || rc=1
size=$(stat -c %s "$tmpdir/$c.qcow2")
[ "$size" -lt $((16 << 20)) ] || fail "$c: the file grew to $size bytes"
exit $rc
