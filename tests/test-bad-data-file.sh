#!/usr/bin/env bash
# qcow2x bad input: an image with an external data file is refused ("external data file")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

# Made by qemu-img create -o data_file=..., and a plain image with only incompatible bit 2 set.
bad refuse data-file --phrase "external data file" || rc=1
bad refuse data-file-bit --phrase "external data file" || rc=1
exit $rc
