#!/usr/bin/env bash
# qcow2x hostile image: a valid overlay whose backing file name is 1023 bytes long (QEMU's
#   maximum; a relative path through long directory names) is served through the qcow2xchain
#   filter: bytes equal qemu-img convert of the chain; a write through the filter keeps the
#   name intact (qemu-img info), qemu-img check clean, QEMU reads the written chain, the base
#   unchanged; layer-only=true serves the layer alone.  The same image with a 1024-byte name
#   is refused at start-up ("backing file"), through the filter and with layer-only=true.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy nbdsh sha256sum
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir

cd "$tmpdir"
# A relative name of exactly 1023 bytes: directories of up to 250 bytes, then base.qcow2.
name=$("$PY" -c '
fn = "base.qcow2"; parts = []; rem = 1023 - len(fn)
while rem > 0:
    n = min(250, rem - 1)
    parts.append(("d%d" % len(parts)).ljust(n, "x")); rem -= n + 1
assert rem == 0
print("/".join(parts + [fn]))')
[ ${#name} -eq 1023 ] || fail "name is ${#name} bytes"
mkdir -p "$(dirname "$name")"
$chainpy layer "$name" 4M --seed 1 full
$chainpy layer over.qcow2 4M -b "$name" -F qcow2 --seed 2 rand:20
got=$(qemu-img info --output=json over.qcow2 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["backing-filename"])')
[ "$got" = "$name" ] || fail "qemu-img did not record the 1023-byte name"

chain_compare over.qcow2 over.qcow2
qcx_compare_with_qemu over.qcow2 layer-only=true

# Write through the filter (the first write also rewrites the header: autoclear bits).
base_sum=$(sha256sum < "$name")
qcx_qemu_raw over.qcow2 model.raw
"$PY" -c '
import sys
with open(sys.argv[1], "r+b") as f:
    for off, b in ((0, 0x41), (1 << 20, 0x42), (3 << 20, 0x43)):
        f.seek(off + 4096); f.write(bytes([b]) * 12345)
' model.raw
chain_nbdkit_rw over.qcow2 --run 'nbdsh -u "$uri" -c "
for off, b in ((0, 0x41), (1 << 20, 0x42), (3 << 20, 0x43)):
    h.pwrite(bytes([b]) * 12345, off + 4096)
h.flush()
"' || fail "writing through the filter failed"
got=$(qemu-img info --output=json over.qcow2 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["backing-filename"])')
[ "$got" = "$name" ] || fail "the backing file name changed after a write: ${got:0:80}..."
chain_check_clean over.qcow2
chain_compare_ref model.raw over.qcow2
chain_compare over.qcow2 over.qcow2
[ "$(sha256sum < "$name")" = "$base_sum" ] || fail "the backing file changed"

# 1024 bytes: one more byte in the name ("base.qcow2" -> "base.qcow2x").
cp over.qcow2 long.qcow2
"$PY" -c '
import struct, sys
with open(sys.argv[1], "r+b") as f:
    h = f.read(24)
    off, size = struct.unpack(">QI", h[8:20])
    assert size == 1023
    f.seek(off + 1023); assert f.read(1) == b"\0"
    f.seek(off + 1023); f.write(b"x")
    f.seek(16); f.write(struct.pack(">I", 1024))
' long.qcow2
mkdir -p "$(dirname "$name")" && cp "$name" "${name}x"    # so only the length is wrong
chain_expect_fail_start "1024-byte backing name (filter)" "backing file" -- long.qcow2
"$PY" "$srcdir/lib/badimage.py" run-fail --plugin "$PLUGIN" --phrase "backing file" \
    --what "1024-byte backing name (layer-only=true)" long.qcow2 layer-only=true
echo "OK"
