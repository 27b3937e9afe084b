#!/usr/bin/env bash
# qcow2x bad input: cluster_bits outside 9..21 is refused ("cluster_bits"), without huge
#   allocations
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for b in 8 22 31 0 64 0xffffffff; do
    bad refuse cluster-bits-$b --phrase "cluster_bits" || rc=1
done
exit $rc
