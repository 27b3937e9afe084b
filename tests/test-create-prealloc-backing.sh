#!/usr/bin/env bash
# CREATE: preallocation with a backing file.  With extended L2 entries
# every cluster gets a host offset while its 32 subclusters stay
# unallocated, so everything still reads from the backing file (what
# qemu-img create -o extended_l2=on,preallocation=... does): the layer's
# map (json: backing:null) shows offsets for every range, contiguous, and
# nothing present; qemu-img convert of the overlay gives the backing
# data; the plugin (layer-only) reports "deferred" extents.  Guest writes
# then fill reserved clusters without growing the file.  With standard
# L2 entries qcow2 cannot express this: refused (as qemu-img does), with
# a clear error, and no file is created.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate grep
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

qemu-img create -q -f raw base.raw 4M
qemu-io -f raw base.raw -c "write -q -P 0x51 0 1M" -c "write -q -P 0x52 2M 123k" \
    -c "write -q -P 0x53 $((4 * 1024 * 1024 - 4096)) 4k"
qemu-img convert -f raw -O qcow2 base.raw base.qcow2

# layer_map IMG CLUSTERS: the layer alone, as QEMU sees it.
layer_map ()
{
    qemu-img map --output=json "$(qcx_layer_json "$1")" > map.json
    "$PY" - "$1" map.json <<'PYEOF'
import json, sys
img, m = sys.argv[1], json.load(open(sys.argv[2]))
bad = [e for e in m if "offset" not in e or e["present"] or e["data"]]
if bad:
    sys.exit("%s: ranges without a reserved host cluster or present: %s"
             % (img, bad[:3]))
deltas = set(e["offset"] - e["start"] for e in m)
if len(deltas) != 1:
    sys.exit("%s: not contiguous: %s" % (img, sorted(deltas)[:5]))
print("%s: layer map: %d entries, all reserved, none present, host = guest + 0x%x"
      % (img, len(m), deltas.pop()))
PYEOF
}

n=0
while read -r mode b cs; do
    n=$((n + 1))
    img=top$n-$mode.qcow2
    create "$img" size=4M backing=${b%%:*} backing-format=${b#*:} \
        preallocation=$mode cluster-size=$cs layer-only=true
    check_clean "$img"
    expect_info "$img" extended-l2=true backing-filename=${b%%:*} \
        backing-filename-format=${b#*:}
    layer_map "$img"
    cs_bytes=$(info "$img" cluster-size)
    qcx_expect_layout "$img" sub_unalloc_with_offset -eq $((4194304 / cs_bytes * 32))
    qcx_expect_layout "$img" sub_alloc -eq 0
    qemu-img convert -O raw "$img" top.raw
    cmp top.raw base.raw || fail "$img does not read its backing file's data"
    qcx_compare_with_qemu "$img" layer-only=true
    qcx_compare_extents "$img" layer-only=true
done <<'LIST'
metadata base.raw:raw 64K
metadata base.qcow2:qcow2 16K
falloc base.raw:raw 16K
falloc base.qcow2:qcow2 64K
full base.raw:raw 64K
full base.qcow2:qcow2 2M
LIST

# Writes land in the reserved clusters; the rest still reads from below.
img=top1-metadata.qcow2
before=$(stat -c %s "$img")
qemu-io -f qcow2 "$img" -c "write -q -P 0x66 1000 3000" -c "write -q -P 0x67 3M 70k"
[ "$(stat -c %s "$img")" = "$before" ] || fail "$img: writes grew the file"
check_clean "$img"
qemu-img convert -O raw "$img" top.raw
cp base.raw expect.raw
qemu-io -f raw expect.raw -c "write -q -P 0x66 1000 3000" -c "write -q -P 0x67 3M 70k"
cmp top.raw expect.raw || fail "$img: wrong bytes after writes"

# Standard L2 entries: refused, explicitly or by the cluster-size default.
for args in "extended-l2=false preallocation=metadata" \
            "extended-l2=false preallocation=falloc" \
            "extended-l2=false preallocation=full" \
            "cluster-size=4K preallocation=metadata"; do
    rm -f bad.qcow2
    if qcx_nbdkit file=bad.qcow2 create=true size=4M backing=base.raw \
        backing-format=raw $args layer-only=true --run true 2>err; then
        fail "accepted: $args with a backing file"
    fi
    cat err
    grep -q 'extended L2' err || fail "$args: error does not mention extended L2"
    grep -q 'backing file' err || fail "$args: error does not mention the backing file"
    [ ! -e bad.qcow2 ] || fail "$args: a file was created"
done
