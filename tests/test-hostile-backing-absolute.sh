#!/usr/bin/env bash
# qcow2x hostile image: absolute backing file names are followed (policy: follow, as QEMU
#   does), also one with ".." inside ("/.../a/../x/base.qcow2"): the filter's bytes equal
#   qemu-img convert of the chain, from another cwd; layer-only=true serves the layer alone;
#   a write through the filter leaves the base unchanged (qemu-img check clean, QEMU reads
#   the model).
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy nbdsh sha256sum
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir

cd "$tmpdir"
mkdir -p x a elsewhere
$chainpy layer x/base.qcow2 4M --seed 1 full
$chainpy layer a/abs.qcow2 4M -b "$tmpdir/x/base.qcow2" -F qcow2 --seed 2 rand:20
$chainpy layer a/absdot.qcow2 4M -b "$tmpdir/a/../x/base.qcow2" -F qcow2 --seed 3 rand:20
qemu-img info --output=json a/abs.qcow2 | grep -qF "\"backing-filename\": \"$tmpdir/x/base.qcow2\"" ||
    fail "abs.qcow2 does not name the absolute path"
qemu-img info --output=json a/absdot.qcow2 |
    grep -qF "\"backing-filename\": \"$tmpdir/a/../x/base.qcow2\"" ||
    fail "absdot.qcow2 does not name the path with .."

cd elsewhere
for img in abs absdot; do
    chain_compare "$tmpdir/a/$img.qcow2" "$tmpdir/a/$img.qcow2"
    qcx_compare_with_qemu "$tmpdir/a/$img.qcow2" layer-only=true
done
cd "$tmpdir"

base_sum=$(sha256sum < x/base.qcow2)
qcx_qemu_raw a/abs.qcow2 model.raw
"$PY" -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3 << 20); f.write(b"\xa5" * 65536)
' model.raw
(cd / && chain_nbdkit_rw "$tmpdir/a/abs.qcow2" \
    --run 'nbdsh -u "$uri" -c "h.pwrite(b\"\xa5\" * 65536, 3 << 20)" -c "h.flush()"') ||
    fail "writing through the filter failed"
chain_check_clean a/abs.qcow2
chain_compare_ref model.raw a/abs.qcow2
[ "$(sha256sum < x/base.qcow2)" = "$base_sum" ] || fail "the backing file changed"
echo "OK"
