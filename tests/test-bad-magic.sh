#!/usr/bin/env bash
# qcow2x bad input: wrong magic is refused ("not a qcow2 image")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

bad refuse magic --phrase "not a qcow2 image" || rc=1
bad refuse magic-zero --phrase "not a qcow2 image" || rc=1
exit $rc
