#!/usr/bin/env bash
# qcow2x bad input: a backing file name longer than 1023 bytes, or beyond the first cluster /
#   EOF, is refused with a clear error ("backing file"), with or without layer-only=true
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in backing-long backing-beyond-cluster backing-beyond-eof; do
    bad refuse $c --phrase "backing file" || rc=1
    bad refuse $c --phrase "backing file" -- layer-only=true || rc=1
done
exit $rc
