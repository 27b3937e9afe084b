#!/usr/bin/env bash
# WRITE: an image with the dirty bit set (lazy refcounts, left by a
# crash) is repaired before the first write, as QEMU repairs it at a
# read-write open: refcounts rebuilt from the metadata, then the dirty
# bit cleared.
#  - QEMU makes the dirty image (lazy_refcounts=on, qemu-io "abort"):
#    with 512-byte clusters its refcounts are stale by themselves; in
#    the other cases they are then made stale on purpose (a data cluster, an L2
#    table and a compressed data cluster counted 0, a free cluster
#    counted 1, and one compressed cluster's count short of its
#    sharers), so that qemu-img check reports errors and leaks;
#    extended and standard L2, 16- and 1-bit refcounts
#  - a random workload through the plugin: afterwards the dirty bit is
#    clear, qemu-img check is clean and qemu-img compare finds the image
#    identical to the raw reference
#  - served with -r, a dirty image is not touched (no repair, bit kept)
#  - a repair that fails part-way (injected I/O errors) leaves the bit
#    set, and the next start repairs
#  - a dirty image whose references need a refcount block that does not
#    exist is served read-only with a message naming the dirty bit, and
#    left unchanged; so is one too large to count (a sparse 64 GiB file
#    of 512-byte clusters)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy sha256sum
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

# make_dirty IMG CREATE-OPTIONS COMPRESSED(0/1)
make_dirty ()
{
    local out=$1 opts=$2 comp=$3 c=()
    rm -f "$out"
    qemu-img create -q -f qcow2 -o "lazy_refcounts=on,$opts" "$out" 8M
    if [ "$comp" = 1 ]; then
        # two compressed clusters share a host cluster
        c=(-c "write -q -c -P 0x09 2M 64k" -c "write -q -c -P 0x0a 2M+64k 64k")
    fi
    # qemu-io aborts (a crash) with the writes done: the dirty bit stays.
    qemu-io -f qcow2 "$out" -c "write -q -P 0x07 0 1M" "${c[@]}" \
        -c "write -q -P 0x08 3M 300k" -c "write -q -P 0x0b 6M+512 70k" \
        -c "discard -q 0 64k" -c "flush" -c "abort" >/dev/null 2>&1 || true
    qcx_expect_layout "$out" dirty -eq 1
}

# make_stale IMG COMPRESSED(0/1): refcounts that disagree with the
# metadata, in ways a crash with lazy refcounts can leave them.
make_stale ()
{
    PYTHONPATH=$qcx_lib "$PY" - "$1" "$2" <<'EOF'
import sys
import badimage as b
path, comp = sys.argv[1], sys.argv[2] == "1"
img = b.Image(path)
cs = img.cluster_size
data = b.host_of(img, 3 << 20)
b.set_refcount(img, data, 0)                       # a data cluster
l2 = img.u64(img.l1_entry_off(0)) & b.OFFSET_MASK
b.set_refcount(img, l2, 0)                         # the L2 table
free = (len(img.d) + cs - 1) // cs * cs + cs       # past the end: a leak
rb, i, bits = b.refcount_loc(img, 0)
if free // cs < cs * 8 // bits:
    b.set_refcount(img, free, 1)
if comp:
    host = b.compressed_entries(img)[0][2] & ~(cs - 1)
    b.set_refcount(img, host, 0)                   # shared by two
img.save(path)
EOF
}

expect_check_errors ()
{
    local rc=0
    qemu-img check "$1" >"$tmpdir/check.txt" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || {
        cat "$tmpdir/check.txt" >&2
        fail "test bug: $(basename "$1") is not stale (qemu-img check is clean)"
    }
}

# Stale refcounts as QEMU itself leaves them: with 512-byte clusters, a
# 2 MiB write needs new refcount blocks, whose counts lazy refcounts do
# not write before the "crash" (qemu-img check: 128 errors).
qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=512 "$img" 8M
qemu-io -f qcow2 "$img" -c "write -q -P 0x19 0 2M" -c "write -q -P 0x1a 5M 7k" \
    -c "flush" -c "abort" >/dev/null 2>&1 || true
qcx_expect_layout "$img" dirty -eq 1
expect_check_errors "$img"
qcx_qemu_raw "$img" "$ref"
session 699 --ops 1500 --verify-start
qcx_expect_layout "$img" dirty -eq 0
echo "repaired OK: QEMU's own stale refcounts"

for cfg in "extended_l2=on,cluster_size=64k 1" \
           "extended_l2=off,cluster_size=64k 1" \
           "extended_l2=on,cluster_size=16k,refcount_bits=1 0"; do
    set -- $cfg
    opts=$1 comp=$2
    echo "== $opts"
    make_dirty "$img" "$opts" "$comp"
    make_stale "$img" "$comp"
    expect_check_errors "$img"
    qcx_qemu_raw "$img" "$ref"

    # -r: nothing is written, the dirty bit stays
    sum=$(sha256sum < "$img")
    qcx_nbdkit "$img" --run 'nbdcopy "$uri" null:' ||
        fail "$opts: reading the dirty image with -r failed"
    [ "$(sha256sum < "$img")" = "$sum" ] || fail "$opts: -r changed the dirty image"

    # read-write: repaired before the first write, then a workload
    session 700 --ops 1500 --verify-start
    qcx_expect_layout "$img" dirty -eq 0
    echo "repaired OK: $opts"
done

# A repair that fails part-way (an I/O error on a refcount block write,
# the header write or a sync) fails the connection and leaves the dirty
# bit set; the next start repairs.
make_dirty "$img" "extended_l2=on,cluster_size=64k" 1
make_stale "$img" 1
qcx_qemu_raw "$img" "$ref"
for spec in write:1:EIO:persistent write:2:EIO:persistent sync:1:EIO:persistent \
            sync:2:EIO:persistent; do
    if qcx_nbdkit_rw "$img" inject-error=$spec --run 'nbdinfo "$uri"' \
           >"$tmpdir/inj.txt" 2>&1; then
        cat "$tmpdir/inj.txt" >&2
        fail "inject-error=$spec: the connection succeeded"
    fi
    grep -q "injected" "$tmpdir/inj.txt" || {
        cat "$tmpdir/inj.txt" >&2
        fail "inject-error=$spec: the error was not the injected one"
    }
    [ "$spec" = sync:2:EIO:persistent ] || qcx_expect_layout "$img" dirty -eq 1
done
session 701 --ops 800 --verify-start
qcx_expect_layout "$img" dirty -eq 0
echo "repaired after failed attempts OK"

# A reference that needs a refcount block that does not exist: refused
# (read-only, with a message), the image unchanged.
make_dirty "$img" "extended_l2=on,cluster_size=64k" 0
PYTHONPATH=$qcx_lib "$PY" - "$img" <<'EOF'
import sys
import badimage as b
img = b.Image(sys.argv[1])
img.put64(img.get("refcount_table_offset"), 0)     # no block for cluster 0
img.save(sys.argv[1])
EOF
cat > "$tmpdir/expect-ro.py" <<'EOF'
import sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pwrite(b"x" * 4096, 0)
except nbd.Error as e:
    print("write refused:", e)
else:
    sys.exit("a write to the unrepairable dirty image succeeded")
EOF
sum=$(sha256sum < "$img")
qcx_nbdkit_rw "$img" --run "$PY $(printf %q "$tmpdir/expect-ro.py") \"\$uri\"" \
    2>"$tmpdir/err.txt" || { cat "$tmpdir/err.txt" >&2; fail "unrepairable: the session failed"; }
cat "$tmpdir/err.txt"
grep -q "serving it read-only (the image has the dirty bit set.*cannot be repaired here: .*no refcount block" \
    "$tmpdir/err.txt" || fail "unrepairable: no read-only warning naming the dirty bit"
[ "$(sha256sum < "$img")" = "$sum" ] || fail "unrepairable: the image was changed"
qcx_expect_layout "$img" dirty -eq 1
# Counting the references of a dirty image takes 2 bytes per host
# cluster, for at most 128 Mi clusters: a (sparse) file larger than that
# whose metadata references its far end is served read-only, saying so.
big=$tmpdir/big.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on "$big" 1M
qemu-io -f qcow2 "$big" -c "write -q -P 0x21 0 4k" -c "flush" -c "abort" \
    >/dev/null 2>&1 || true
qcx_expect_layout "$big" dirty -eq 1
PYTHONPATH=$qcx_lib "$PY" - "$big" <<'EOF'
import os
import sys
import badimage as b
img = b.Image(sys.argv[1])
far = (128 << 20) * 512 + 4096                     # past 128 Mi clusters
img.put64(b.l2_entry_at(img, 0), (1 << 63) | far)
img.save(sys.argv[1])
os.truncate(sys.argv[1], far + 512)
EOF
qcx_nbdkit_rw "$big" --run "$PY $(printf %q "$tmpdir/expect-ro.py") \"\$uri\"" \
    2>"$tmpdir/err.txt" || { cat "$tmpdir/err.txt" >&2; fail "too large: the session failed"; }
cat "$tmpdir/err.txt"
grep -q "serving it read-only (the image has the dirty bit set.*too large to count its references" \
    "$tmpdir/err.txt" || fail "too large: no read-only warning saying so"
rm -f "$big"
echo "test-write-dirty-repair: OK"
