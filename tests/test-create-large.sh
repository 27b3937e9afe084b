#!/usr/bin/env bash
# CREATE: large virtual sizes stay small on disk with preallocation=off:
# 1T with 64K clusters (standard and extended L2), 256T with 2M clusters,
# and 8G with 512-byte clusters (a 2 MiB L1 table of 4096 clusters, left
# sparse).  Each is check-clean, qemu-img info shows the size, the
# plugin exports it and its extents say "all zero" like qemu-img map,
# and QEMU can write at the far end.  A size whose L1 table would exceed
# QEMU's 32 MiB limit is refused.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo stat grep
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

disk_bytes () { echo $(( $(stat -c '%b * %B' "$1") )); }

while read -r size bytes args; do
    img=large-$size-$(echo "$args" | tr " =" "__").qcow2
    create "$img" size=$size $args
    [ "$(cat created-size)" = "$bytes" ] || fail "$img: export size $(cat created-size)"
    check_clean "$img"
    expect_info "$img" virtual-size=$bytes
    echo "$img: $(stat -c %s "$img") bytes, $(disk_bytes "$img") on disk"
    [ "$(stat -c %s "$img")" -le $((16 * 1024 * 1024)) ] ||
        fail "$img: file is $(stat -c %s "$img") bytes"
    [ "$(disk_bytes "$img")" -le $((256 * 1024)) ] ||
        fail "$img: $(disk_bytes "$img") bytes on disk"
    # Extents: one all-zero run, as qemu-img map says (tests/lib's
    # compare-extents.py cannot query more than 4 GiB at once).
    qcx_nbdkit "$img" --run 'nbdinfo --map "$uri"' > map.txt
    cat map.txt
    [ "$(wc -l < map.txt)" = 1 ] && read -r off len flags _ < map.txt &&
        [ "$off $len $flags" = "0 $bytes 3" ] ||
        fail "$img: extents are not one hole,zero run"
    qemu-img map --output=json "$img" | grep -q "\"length\": $bytes, .*\"zero\": true" ||
        fail "$img: qemu-img map disagrees"
    qemu-io -f qcow2 "$img" -c "write -q -P 0x21 $((bytes - 65536)) 65536" \
        -c "write -q -P 0x22 $((bytes / 2)) 4096"
    check_clean "$img"
    qemu-io -f qcow2 "$img" -c "read -q -P 0x21 $((bytes - 65536)) 65536" \
        -c "read -q -P 0x22 $((bytes / 2)) 4096" -c "read -q -P 0 0 1M" |
        { ! grep -q 'Pattern verification failed'; } ||
        fail "$img: QEMU reads back wrong data"
    rm -f "$img"
done <<'LIST'
1T 1099511627776 extended-l2=true
1T 1099511627776 extended-l2=false
256T 281474976710656 cluster-size=2M
8G 8589934592 cluster-size=512
LIST

rm -f huge.qcow2
if qcx_nbdkit file=huge.qcow2 create=true size=100T cluster-size=512 \
    --run true 2>err; then
    fail "size=100T with 512-byte clusters was accepted"
fi
cat err
grep -q 'L1 table' err || fail "error does not mention the L1 table"
[ ! -e huge.qcow2 ] || fail "a file was created"
