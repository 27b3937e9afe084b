#!/usr/bin/env bash
# CREATE: refcount-bits=1,2,4,8,16,32,64.  qemu-img info shows the width,
# check is clean (every cluster, including the refcount blocks, counted
# exactly once), and QEMU can grow the image from there: writes that need
# new refcount blocks leave it check-clean, and the plugin reads them.
# With 512-byte clusters and preallocation, narrow refcounts need several
# refcount blocks and wide ones a refcount table of several clusters.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate od
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

be32 () { od -An -tu4 --endian=big -j "$2" -N4 "$1" | tr -d ' '; }

# refblocks IMG: number of refcount blocks the refcount table points at.
refblocks ()
{
    "$PY" - "$1" <<'PYEOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
cb = struct.unpack_from(">I", d, 20)[0]
rt_off, rt_clusters = struct.unpack_from(">QI", d, 48)
n = (rt_clusters << cb) // 8
print(sum(1 for i in range(n) if struct.unpack_from(">Q", d, rt_off + 8 * i)[0]))
PYEOF
}

for rb in 1 2 4 8 16 32 64; do
    for cs in 512 65536; do
        img=r$rb-$cs.qcow2
        create "$img" size=8M refcount-bits=$rb cluster-size=$cs
        check_clean "$img"
        expect_info "$img" refcount-bits=$rb cluster-size=$cs
        reads_zero "$img"
        # 4 MiB of data: 8192 clusters of 512 bytes, more than one refcount
        # block covers at 1 bit (4096 entries), so QEMU must add blocks.
        qemu-io -f qcow2 "$img" -c "write -q -P 0x61 0 2M" \
            -c "write -q -P 0x62 5M 2M" -c "write -q -z 5M 4k"
        check_clean "$img"
        qcx_compare_with_qemu "$img"
        rm -f "$img"
    done
done

# Preallocated 5M with 512-byte clusters: 10240 data clusters.
create p1.qcow2 size=5M cluster-size=512 refcount-bits=1 preallocation=metadata
check_clean p1.qcow2
expect_info p1.qcow2 refcount-bits=1
n=$(refblocks p1.qcow2)
[ "$n" -ge 3 ] || fail "p1.qcow2: $n refcount blocks, expected >= 3"
echo "p1.qcow2: $n refcount blocks"

create p64.qcow2 size=5M cluster-size=512 refcount-bits=64 preallocation=metadata
check_clean p64.qcow2
expect_info p64.qcow2 refcount-bits=64
[ "$(be32 p64.qcow2 56)" -ge 2 ] ||
    fail "p64.qcow2: refcount table of $(be32 p64.qcow2 56) cluster(s), expected >= 2"
echo "p64.qcow2: $(refblocks p64.qcow2) refcount blocks, table of $(be32 p64.qcow2 56) clusters"
reads_zero p64.qcow2
qemu-io -f qcow2 p64.qcow2 -c "write -q -P 0x63 1M 1M"
check_clean p64.qcow2
qcx_compare_with_qemu p64.qcow2
