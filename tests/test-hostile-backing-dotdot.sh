#!/usr/bin/env bash
# qcow2x hostile image: a backing file name with "..", "../x/base.qcow2", is followed
#   (policy: follow, as QEMU does), resolved against the overlay's directory, not nbdkit's
#   cwd (a decoy sits where a cwd-relative lookup would land): the filter's bytes equal
#   qemu-img convert of the chain; a write through the filter goes to the overlay only (base
#   unchanged, qemu-img check clean, QEMU reads the model).
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy nbdsh sha256sum
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir

cd "$tmpdir"
mkdir -p x a run/sub run/x
$chainpy layer x/base.qcow2 4M --seed 1 full
(cd a && $chainpy layer over.qcow2 4M -b ../x/base.qcow2 -F qcow2 --seed 2 rand:20)
$chainpy layer run/x/base.qcow2 4M --seed 99 full             # decoy: cwd-relative ../x
qemu-img info --output=json a/over.qcow2 | grep -q '"backing-filename": "../x/base.qcow2"' ||
    fail "the overlay does not name ../x/base.qcow2"

cd run/sub
chain_compare "$tmpdir/a/over.qcow2" "$tmpdir/a/over.qcow2"
cd "$tmpdir"
chain_compare a/over.qcow2 a/over.qcow2

base_sum=$(sha256sum < x/base.qcow2)
decoy_sum=$(sha256sum < run/x/base.qcow2)
qcx_qemu_raw a/over.qcow2 model.raw
"$PY" -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000); f.write(b"\x5a" * 70000)
' model.raw
cd run/sub
chain_nbdkit_rw "$tmpdir/a/over.qcow2" \
    --run 'nbdsh -u "$uri" -c "h.pwrite(b\"\x5a\" * 70000, 1000)" -c "h.flush()"' ||
    fail "writing through the filter failed"
cd "$tmpdir"
chain_check_clean a/over.qcow2
chain_compare_ref model.raw a/over.qcow2
[ "$(sha256sum < x/base.qcow2)" = "$base_sum" ] || fail "the backing file changed"
[ "$(sha256sum < run/x/base.qcow2)" = "$decoy_sum" ] || fail "the decoy changed"
echo "OK"
