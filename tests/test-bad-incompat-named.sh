#!/usr/bin/env bash
# qcow2x bad input: an unknown incompatible bit named in the feature name table is refused,
#   naming it
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

# Bit 13 named "qcx-frobnication"; then a 46-byte name without NUL terminator.
bad refuse incompat-named --phrase "unsupported incompatible feature" \
    --phrase "qcx-frobnication" || rc=1
full=$("$PY" -c "import sys; sys.path.insert(0, \"$srcdir/lib\"); import badimage; print(badimage.FULL_NAME)")
bad refuse incompat-named-full --phrase "unsupported incompatible feature" --phrase "$full" || rc=1
exit $rc
