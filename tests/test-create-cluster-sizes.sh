#!/usr/bin/env bash
# CREATE: cluster sizes 512, 4K, 16K, 64K and 2M, with standard and (where
# the spec allows: 16K and up) extended L2 entries.  Each image is
# check-clean, qemu-img info shows the cluster size and L2 entry kind, it
# reads as zeros, and the plugin serves it like QEMU.  Without an explicit
# extended-l2=, extended L2 is on exactly where the cluster size allows it.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdinfo nbdcopy cmp truncate
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

for cs in 512 4096 16384 65536 2097152; do
    exts=false
    if [ "$cs" -ge 16384 ]; then exts="false true"; fi
    for ext in $exts; do
        img=c$cs-$ext.qcow2
        create "$img" size=5M cluster-size=$cs extended-l2=$ext
        check_clean "$img"
        expect_info "$img" virtual-size=5242880 cluster-size=$cs \
            extended-l2=$ext compat=1.1 refcount-bits=16
        reads_zero "$img"
        qcx_compare_with_qemu "$img"
        rm -f "$img"
    done
done

# The default follows the cluster size.
create auto4k.qcow2 size=1M cluster-size=4K
expect_info auto4k.qcow2 cluster-size=4096 extended-l2=false
create auto16k.qcow2 size=1M cluster-size=16K
expect_info auto16k.qcow2 cluster-size=16384 extended-l2=true
check_clean auto4k.qcow2
check_clean auto16k.qcow2
