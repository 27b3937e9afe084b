#!/usr/bin/env bash
# qcow2x bad input: a refcount table that is unaligned, beyond the end of the file or absurdly
#   large is refused ("refcount table")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in refcount-offset-unaligned refcount-offset-beyond-eof refcount-clusters-huge; do
    bad refuse $c --phrase "refcount table" || rc=1
done
exit $rc
