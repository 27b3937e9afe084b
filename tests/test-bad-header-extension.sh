#!/usr/bin/env bash
# qcow2x bad input: a header extension whose length overruns the first cluster is refused with a
#   clear error ("extension")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

# An unknown extension (ignorable by itself) declaring 64 KiB, and one declaring 0xfffffff8.
for c in ext-overrun ext-len-huge; do
    bad refuse $c --phrase "extension" || rc=1
done
exit $rc
