#!/usr/bin/env bash
# qcow2x bad input: refcount_order > 6 is refused ("refcount_order")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for o in 7 64 0xffffffff; do
    bad refuse refcount-order-$o --phrase "refcount_order" || rc=1
done
exit $rc
