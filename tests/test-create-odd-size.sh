#!/usr/bin/env bash
# CREATE: virtual sizes that are not cluster aligned (1, 1000, 100001,
# 5M+512, 3M+65535) and 0.  QEMU keeps sizes in 512-byte sectors (it
# truncates other sizes when it opens an image), so like qemu-img create
# the size is rounded up to a multiple of 512: qemu-img info and the
# plugin's export both show what qemu-img create would store.  The
# partial last cluster is mapped (preallocation) and reads as zeros.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate
requires_python_nbd

# create IMG ARGS...: create IMG through the plugin (captive nbdkit: the
# image is created at start-up, then served); the export size lands in
# $tmpdir/created-size.  Overlays need layer-only=true in ARGS to be
# served by the plugin alone.
create ()
{
    local img=$1
    shift
    qcx_nbdkit file="$img" create=true "$@" --run 'nbdinfo --size "$uri"' \
        > "$tmpdir/created-size" ||
        fail "creating $(basename "$img") with: $*"
    echo "created $(basename "$img"): $* (export size $(cat "$tmpdir/created-size"))"
}

# info IMG KEY: one field of qemu-img info (format-specific fields too).
info ()
{
    qemu-img info --output=json "$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
d.update(d.get("format-specific", {}).get("data", {}))
v = d.get(sys.argv[1])
print(json.dumps(v) if isinstance(v, bool) or v is None else v)' "$2"
}

# expect_info IMG KEY=VALUE...
expect_info ()
{
    local img=$1 kv got
    shift
    for kv in "$@"; do
        got=$(info "$img" "${kv%%=*}")
        [ "$got" = "${kv#*=}" ] ||
            fail "$(basename "$img"): qemu-img info ${kv%%=*} is '$got', expected '${kv#*=}'"
    done
    echo "info OK: $(basename "$img"): $*"
}

# check_clean IMG: qemu-img check finds no errors, corruptions or leaks.
check_clean ()
{
    local out
    out=$(qemu-img check --output=json "$1") ||
        fail "qemu-img check $(basename "$1") failed: $out"
    "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
bad = {k: d.get(k, 0) for k in ("check-errors", "corruptions", "leaks",
                                 "corruptions-fixed", "leaks-fixed")}
if any(bad.values()):
    sys.exit("qemu-img check: %s" % bad)' "$out" ||
        fail "qemu-img check $(basename "$1") is not clean: $out"
    echo "check OK: $(basename "$1")"
}

# reads_zero IMG: qemu-img compare with a raw file of zeros, same size.
reads_zero ()
{
    local size
    size=$(info "$1" virtual-size)
    rm -f "$tmpdir/zero.raw"
    truncate -s "$size" "$tmpdir/zero.raw"
    qemu-img compare -q -f qcow2 -F raw "$1" "$tmpdir/zero.raw" ||
        fail "$(basename "$1") does not read as $size zero bytes"
    rm -f "$tmpdir/zero.raw"
}

cd "$tmpdir"

while read -r size args; do
    qemu-img create -q -f qcow2 qemu.qcow2 $size
    want=$(info qemu.qcow2 virtual-size)
    rm -f img.qcow2
    create img.qcow2 size=$size $args
    [ "$(cat created-size)" = "$want" ] ||
        fail "size=$size $args: export size $(cat created-size), qemu-img stores $want"
    check_clean img.qcow2
    expect_info img.qcow2 virtual-size=$want
    reads_zero img.qcow2
    qcx_compare_with_qemu img.qcow2
    # QEMU can write the last sector of the guest.
    qemu-io -f qcow2 img.qcow2 -c "write -q -P 0x7e $((want - 512)) 512"
    check_clean img.qcow2
    qcx_compare_with_qemu img.qcow2
done <<'LIST'
1 extended-l2=false
1000 cluster-size=512 preallocation=full
100001 cluster-size=4K preallocation=metadata
100001 preallocation=falloc
5243392 extended-l2=true
5243392 cluster-size=2M preallocation=metadata
3211263 cluster-size=16K preallocation=metadata
3211263 cluster-size=512 refcount-bits=1
LIST

# An empty disk.
create empty.qcow2 size=0
[ "$(cat created-size)" = 0 ] || fail "size=0: export size $(cat created-size)"
check_clean empty.qcow2
expect_info empty.qcow2 virtual-size=0
qemu-img create -q -f qcow2 -o extended_l2=on qemu0.qcow2 0
cmp empty.qcow2 qemu0.qcow2 || fail "size=0: differs from qemu-img create's image"
