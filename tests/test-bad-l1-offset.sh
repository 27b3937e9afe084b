#!/usr/bin/env bash
# qcow2x bad input: an L1 table that is unaligned or (partly) beyond the end of the file is
#   refused ("L1 table")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in l1-offset-unaligned l1-offset-beyond-eof l1-straddles-eof; do
    bad refuse $c --phrase "L1 table" || rc=1
done
exit $rc
