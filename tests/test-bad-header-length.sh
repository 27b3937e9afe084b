#!/usr/bin/env bash
# qcow2x bad input: header_length < 104 (v3), not a multiple of 8, or beyond the first cluster
#   is refused ("header_length")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for l in 0 72 100 108 0x10008 0xfffffff8; do
    bad refuse header-length-$l --phrase "header_length" || rc=1
done
exit $rc
