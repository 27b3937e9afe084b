#!/usr/bin/env bash
# qcow2x hostile image: invalid L2 entries, served without -r: read-only with an "inconsistent"
#   warning; the cluster of the entry fails with EIO (as in QEMU, which rejects the whole
#   cluster), the rest reads as qemu-img convert of the unpatched image; writes fail with
#   EPERM; the file is unchanged
#   - extl2-pair11: extended L2, subcluster 1 of guest 1 MiB both allocated and zero (11)
#   - data-unaligned: standard L2, the host offset of guest 0 + 512
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

c=extl2-pair11
bad $c "$tmpdir/$c.qcow2" --good "$tmpdir/$c.good.qcow2"
qcx_qemu_raw "$tmpdir/$c.good.qcow2" "$tmpdir/$c.good.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.good.raw" --bad 1M:64K \
    --write-at 1M --write-at 1026K "$tmpdir/$c.qcow2" || rc=1

c=data-unaligned
bad $c "$tmpdir/$c.qcow2" --good "$tmpdir/$c.good.qcow2"
qcx_qemu_raw "$tmpdir/$c.good.qcow2" "$tmpdir/$c.good.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.good.raw" --bad 0:4K \
    "$tmpdir/$c.qcow2" || rc=1
exit $rc
