#!/usr/bin/env bash
# qcow2x bad input: an image with the corrupt bit opens read-only, serves the right data and
#   warns ("corrupt")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

requires_python_nbd
bad corrupt-bit "$tmpdir/bad.qcow2" --good "$tmpdir/good.qcow2"
qcx_qemu_raw "$tmpdir/good.qcow2" "$tmpdir/good.raw"
# Without -r: the export must still be read-only (design: corrupt images cannot be written).
bad run-ok --plugin "$PLUGIN" --what "corrupt-bit (no -r)" --no-r --expect-readonly \
    --expect "$tmpdir/good.raw" --log-phrase "corrupt" "$tmpdir/bad.qcow2" || rc=1
bad run-ok --plugin "$PLUGIN" --what "corrupt-bit (-r)" \
    --expect "$tmpdir/good.raw" --log-phrase "corrupt" "$tmpdir/bad.qcow2" || rc=1
exit $rc
