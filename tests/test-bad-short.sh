#!/usr/bin/env bash
# qcow2x bad input: a file shorter than the header is refused ("too short")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for n in 0 50 100; do
    bad refuse short-$n --phrase "too short" || rc=1
done
exit $rc
