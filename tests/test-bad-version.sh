#!/usr/bin/env bash
# qcow2x bad input: versions other than 2 and 3 are refused ("unsupported qcow2 version")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for v in 1 4 0 0xffffffff; do
    bad refuse version-$v --phrase "unsupported qcow2 version" || rc=1
done
exit $rc
