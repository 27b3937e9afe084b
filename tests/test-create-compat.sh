#!/usr/bin/env bash
# CREATE: compat=0.10 (qcow2 version 2): a 72-byte header without feature
# bits, no feature name table, 16-bit refcounts, standard L2 entries (the
# extended-l2 default follows), byte for byte what qemu-img create -o
# compat=0.10 writes, with and without a backing file.  Version 3-only
# options are refused with an error naming compat=1.1, and no file is
# left behind.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate od grep
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

be32 () { od -An -tu4 --endian=big -j "$2" -N4 "$1" | tr -d ' '; }

# same_as_qemu OURS QEMU: identical up to QEMU's end of file, zeros after.
same_as_qemu ()
{
    local q
    q=$(stat -c %s "$2")
    cmp -n "$q" "$1" "$2" || fail "$1 differs from qemu-img's $2"
    [ -z "$(tail -c +$((q + 1)) "$1" | tr -d '\0' | head -c 1)" ] ||
        fail "$1 has non-zero bytes after qemu-img's end of file"
    echo "$1: identical to qemu-img's $2"
}

create v2.qcow2 size=6M compat=0.10
check_clean v2.qcow2
expect_info v2.qcow2 compat=0.10 refcount-bits=16 compression-type=zlib \
    virtual-size=6291456 cluster-size=65536
[ "$(be32 v2.qcow2 4)" = 2 ] || fail "v2.qcow2: version $(be32 v2.qcow2 4)"
qcx_expect_layout v2.qcow2 ext_feature_table -eq 0
reads_zero v2.qcow2
qemu-img create -q -f qcow2 -o compat=0.10 qemu-v2.qcow2 6M
same_as_qemu v2.qcow2 qemu-v2.qcow2

# A backing file: backing format extension right after the 72-byte
# header, then the end marker, then the name.
qemu-img create -q -f raw base.raw 6M
create v2b.qcow2 size=6M compat=0.10 backing=base.raw backing-format=raw \
    layer-only=true
check_clean v2b.qcow2
expect_info v2b.qcow2 compat=0.10 backing-filename=base.raw \
    backing-filename-format=raw
qemu-img create -q -f qcow2 -o compat=0.10 -b base.raw -F raw qemu-v2b.qcow2 6M
same_as_qemu v2b.qcow2 qemu-v2b.qcow2

# Small clusters, preallocated; QEMU writes into it.
create v2p.qcow2 size=3M compat=0.10 cluster-size=4K preallocation=metadata
check_clean v2p.qcow2
expect_info v2p.qcow2 compat=0.10 cluster-size=4096
reads_zero v2p.qcow2
qemu-io -f qcow2 v2p.qcow2 -c "write -q -P 0x42 100k 300k"
check_clean v2p.qcow2
qcx_compare_with_qemu v2p.qcow2

# compat=1.1 spelled out is version 3.
create v3.qcow2 size=1M compat=1.1
[ "$(be32 v3.qcow2 4)" = 3 ] || fail "v3.qcow2: version $(be32 v3.qcow2 4)"

# Version 3-only options.
for opt in compression=zstd extended-l2=true refcount-bits=1 refcount-bits=64; do
    rm -f bad.qcow2 err
    if qcx_nbdkit file=bad.qcow2 create=true size=1M compat=0.10 $opt \
        --run true 2>err; then
        fail "compat=0.10 $opt was accepted"
    fi
    cat err
    grep -q 'compat=1.1' err || fail "compat=0.10 $opt: error does not name compat=1.1"
    [ $(wc -l < err) = 1 ] || fail "compat=0.10 $opt: error is not one line"
    [ ! -e bad.qcow2 ] || fail "compat=0.10 $opt: a file was created"
done
