#!/usr/bin/env bash
# qcow2x bad input: an unknown incompatible bit with no name is refused, naming the bit number
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

# Bit 13 with QEMU's feature name table (which has no entry for it), and bit 63 with no
# feature name table at all.
bad refuse incompat-bit-13 --phrase "unsupported incompatible feature" --phrase "bit 13" || rc=1
bad refuse incompat-bit-63-notable --phrase "unsupported incompatible feature" --phrase "bit 63" || rc=1
exit $rc
