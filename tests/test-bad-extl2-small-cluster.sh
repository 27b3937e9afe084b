#!/usr/bin/env bash
# qcow2x bad input: extended L2 entries with cluster_bits < 14 are refused ("extended L2")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

# An 8 KiB-cluster image with incompatible bit 4 (extended L2) set.
bad refuse extl2-small-clusters --phrase "extended L2" || rc=1
exit $rc
