#!/usr/bin/env bash
# qcow2x bad input: an L2 table offset beyond EOF or unaligned fails the requests that need it
#   with EIO ("L2 table"); other regions read correctly on the same connection
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

requires_python_nbd
# 8 MiB, 4 KiB clusters: L1 entry 0 (guest bytes 0-2 MiB) is patched; 2-8 MiB must still
# equal qemu-img convert of the unpatched image.
for c in l2-beyond-eof l2-unaligned; do
    bad $c "$tmpdir/$c.qcow2" --good "$tmpdir/$c.good.qcow2"
    qcx_qemu_raw "$tmpdir/$c.good.qcow2" "$tmpdir/$c.good.raw"
    bad run-eio --plugin "$PLUGIN" --what $c --expect "$tmpdir/$c.good.raw" \
        --bad 0:2M --log-phrase "L2 table" "$tmpdir/$c.qcow2" || rc=1
done
exit $rc
