#!/usr/bin/env bash
# qcow2x hostile image: through the qcow2xchain filter: an overlay (with a qcow2 backing file) whose
#   L1 entries 0 and 1 share one L2 table is served read-only with an "inconsistent" warning;
#   reads equal qemu-img convert of the chain; writes fail with EPERM; overlay and base
#   unchanged
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

FILTER=${QCX_FILTER:-$top/filter/nbdkit-qcow2xchain-filter.so}
[ -f "$FILTER" ] || fail "filter not built: $FILTER (run make -C $top)"
c=l2-twice-backed
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
base_sum=$(sha256sum < "$tmpdir/$c.qcow2.base.qcow2")
bad run-hostile --plugin "$PLUGIN" --filter "$FILTER" --case $c --expect "$tmpdir/$c.raw" \
    --write-at 2M --write-at 1M "$tmpdir/$c.qcow2" || rc=1
[ "$(sha256sum < "$tmpdir/$c.qcow2.base.qcow2")" = "$base_sum" ] || fail "the backing file changed"
exit $rc
