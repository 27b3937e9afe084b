#!/usr/bin/env bash
# CHAIN COPY-ON-WRITE GRANULARITY: a 512-byte write (inside one 2 KiB
# subcluster, unaligned) into a fresh extended-L2 64k-cluster overlay over
# a base full of data allocates, in the overlay alone (qemu-img map of the
# json: backing:null form), exactly that one 2 KiB subcluster with
# cow-unit=subcluster (the default) and the whole 64 KiB cluster with
# cow-unit=cluster; a 512-byte write across a subcluster boundary
# allocates exactly the two subclusters (4 KiB) / the whole cluster.
# Bytes (QEMU resolving the chain) equal the reference, check is clean,
# the base is unchanged; with cow-unit=subcluster the rest of the cluster
# is still deferred to the base.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp sha256sum
requires_python_nbd

cd "$tmpdir"
$chainpy layer base.qcow2 2M -o cluster_size=65536 --seed 1 full
chain_sums base.qcow2 > base.sha256

# write_check UNIT OFFSET EXPECTED_START EXPECTED_LEN
write_check ()
{
    local unit=$1 off=$2 es=$3 el=$4 img=top.qcow2
    rm -f $img ref.raw
    qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=65536 \
        -b base.qcow2 -F qcow2 $img
    qemu-img convert -O raw $img ref.raw
    $PY -c 'import random; open("data.bin","wb").write(random.Random(7).randbytes(512))'
    dd if=data.bin of=ref.raw bs=1 seek=$off conv=notrunc status=none
    local args=()
    [ "$unit" = default ] || args=(cow-unit=$unit)
    chain_nbdkit_rw $img "${args[@]}" --run \
        "$PY -c 'import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(open(\"data.bin\", \"rb\").read(), $off)
h.flush()' \"\$uri\"" || fail "write through the filter failed"
    $chainpy layer-map $img > map.json
    $PY - map.json $es $el <<'PYEOF' || fail "cow-unit=$unit, write at $off: wrong allocation"
import json, sys
m = json.load(open(sys.argv[1]))
es, el = int(sys.argv[2]), int(sys.argv[3])
data = [(e["start"], e["length"]) for e in m if e["data"]]
print("overlay alone, data ranges:", data)
if data != [(es, el)]:
    sys.exit("expected exactly [(%d, %d)] allocated in the overlay" % (es, el))
PYEOF
    chain_check_clean $img
    chain_compare_ref ref.raw $img
    sha256sum -c base.sha256 >/dev/null || fail "the base image changed"
    echo "OK: cow-unit=$unit, 512 bytes at $off -> [$es, +$el) allocated"
}

c=$((3 * 65536))
write_check default    $((c + 5 * 2048 + 700)) $((c + 5 * 2048)) 2048
write_check subcluster $((c + 5 * 2048 + 700)) $((c + 5 * 2048)) 2048
qcx_expect_layout top.qcow2 sub_alloc -eq 1
qcx_expect_layout top.qcow2 sub_unalloc_with_offset -eq 31
write_check cluster    $((c + 5 * 2048 + 700)) $c 65536
qcx_expect_layout top.qcow2 sub_alloc -eq 32
write_check subcluster $((c + 9 * 2048 - 256)) $((c + 8 * 2048)) 4096
qcx_expect_layout top.qcow2 sub_alloc -eq 2
write_check cluster    $((c + 9 * 2048 - 256)) $c 65536
