#!/usr/bin/env bash
# CREATE: with preallocation (metadata, falloc, full) and no backing file,
# all metadata (refcount table and blocks, L1, L2 tables) comes first and
# the data clusters follow in guest order, so host offset = guest offset +
# one constant: every entry of qemu-img map --output=json has an offset,
# and offset - start is the same for all of them.  Checked over cluster
# sizes 512 to 2M, standard and extended L2, narrow and wide refcounts
# (several refcount blocks), sizes that are not cluster aligned, and
# images with many L2 tables.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdinfo
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

# contiguous IMG: the check described above, plus: the constant is
# cluster aligned, every metadata cluster lies below it, and the data
# area ends the file.
contiguous ()
{
    qemu-img map --output=json "$1" > map.json
    "$PY" - "$1" map.json <<'PYEOF'
import json, struct, sys
img, mapfile = sys.argv[1], sys.argv[2]
m = json.load(open(mapfile))
d = open(img, "rb").read()
cb, = struct.unpack_from(">I", d, 20)
cs = 1 << cb
size, = struct.unpack_from(">Q", d, 24)
l1_size, l1_off, rt_off, rt_clusters = struct.unpack_from(">IQQI", d, 36)
def fail(msg):
    sys.exit("%s: %s" % (img, msg))
if sum(e["length"] for e in m) != size:
    fail("map does not cover the image")
missing = [e for e in m if "offset" not in e]
if missing:
    fail("guest ranges without a host offset: %s" % missing[:3])
deltas = sorted(set(e["offset"] - e["start"] for e in m))
if len(deltas) != 1:
    fail("host offset - guest offset is not constant: %s" % deltas[:5])
k = deltas[0]
if k % cs:
    fail("data offset 0x%x is not cluster aligned" % k)
meta = [0, rt_off, l1_off]
for i in range((rt_clusters << cb) // 8):
    e, = struct.unpack_from(">Q", d, rt_off + 8 * i)
    if e: meta.append(e)
for i in range(l1_size):
    e, = struct.unpack_from(">Q", d, l1_off + 8 * i)
    if e: meta.append(e & 0x00fffffffffffe00)
if max(meta) >= k:
    fail("metadata at 0x%x after the data start 0x%x" % (max(meta), k))
data_end = k + (size + cs - 1) // cs * cs
if data_end != len(d):
    fail("data ends at 0x%x, file at 0x%x" % (data_end, len(d)))
print("%s: %d map entries, host = guest + 0x%x, %d metadata clusters "
      "below it" % (img, len(m), k, len(meta)))
PYEOF
}

# cluster-size extended-l2 refcount-bits preallocation size
while read -r cs ext rb mode size; do
    img=c$cs-$ext-$rb-$mode-$size.qcow2
    create "$img" size=$size cluster-size=$cs extended-l2=$ext \
        refcount-bits=$rb preallocation=$mode
    check_clean "$img"
    contiguous "$img"
    rm -f "$img"
done <<'LIST'
512 false 16 metadata 3M
512 false 1 falloc 5M
512 false 64 metadata 40M
4096 false 64 metadata 4194311
4096 false 2 full 1M
16384 true 16 full 2M
65536 true 16 metadata 20M
65536 false 16 metadata 600M
65536 true 1 falloc 3000000
2097152 true 16 metadata 10M
2097152 false 16 falloc 5M
LIST
