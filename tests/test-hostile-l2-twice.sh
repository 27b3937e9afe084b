#!/usr/bin/env bash
# qcow2x hostile image: the same L2 table referenced by two L1 entries (L1 entry 1 = L1 entry 0) is
#   served read-only with an "inconsistent" warning; reads equal qemu-img convert (guest 2-4 MiB
#   shows 0-2 MiB); writes/zero/trim fail with EPERM; the file is unchanged
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

c=l2-twice
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
    --write-at 2M --write-at 1M "$tmpdir/$c.qcow2" || rc=1
exit $rc
