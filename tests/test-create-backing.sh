#!/usr/bin/env bash
# CREATE: backing=FILE backing-format=raw|qcow2 writes the backing file
# name and the backing format extension exactly like qemu-img create -b
# FILE -F FMT (same bytes), the name is stored as given and resolved like
# QEMU (relative to the overlay's directory), qemu-img compare finds the
# overlay identical to its backing file, and the plugin alone refuses the
# overlay unless layer-only=true (the layer alone reads as zeros, extents
# say "deferred": HOLE without ZERO).  A missing backing file, a raw file
# called qcow2, and a backing file without a format are refused.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate grep
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

same_as_qemu ()
{
    local q
    q=$(stat -c %s "$2")
    cmp -n "$q" "$1" "$2" || fail "$1 differs from qemu-img's $2"
    [ -z "$(tail -c +$((q + 1)) "$1" | tr -d '\0' | head -c 1)" ] ||
        fail "$1 has non-zero bytes after qemu-img's end of file"
    echo "$1: identical to qemu-img's $2"
}

qemu-img create -q -f raw base.raw 4M
qemu-io -f raw base.raw -c "write -q -P 0x31 0 1M" -c "write -q -P 0x32 1500k 7k" \
    -c "write -q -P 0x33 3M 1M"
qemu-img convert -f raw -O qcow2 base.raw base.qcow2

# Over a raw file, extended L2 (the default).
create top.qcow2 size=4M backing=base.raw backing-format=raw layer-only=true
check_clean top.qcow2
expect_info top.qcow2 backing-filename=base.raw backing-filename-format=raw \
    virtual-size=4194304 extended-l2=true
qcx_expect_layout top.qcow2 ext_backing_format -eq 1
qemu-img compare -q top.qcow2 base.raw || fail "top.qcow2 differs from base.raw"
qemu-img create -q -f qcow2 -o extended_l2=on -b base.raw -F raw qemu-top.qcow2 4M
same_as_qemu top.qcow2 qemu-top.qcow2
qcx_compare_with_qemu top.qcow2 layer-only=true
qcx_compare_extents top.qcow2 layer-only=true

# The plugin alone refuses it (the chain is the filter's job).
if qcx_nbdkit top.qcow2 --run true 2>err; then
    fail "plugin served an overlay without layer-only=true"
fi
cat err
grep -q qcow2xchain err || fail "refusal does not mention qcow2xchain"

# Over a qcow2 file, standard L2, 4K clusters (no feature table).
create top2.qcow2 size=4M backing=base.qcow2 backing-format=qcow2 \
    extended-l2=false cluster-size=4K layer-only=true
check_clean top2.qcow2
expect_info top2.qcow2 backing-filename=base.qcow2 \
    backing-filename-format=qcow2 extended-l2=false cluster-size=4096
qemu-img compare -q top2.qcow2 base.raw || fail "top2.qcow2 differs from base.raw"
qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.qcow2 -F qcow2 qemu-top2.qcow2 4M
same_as_qemu top2.qcow2 qemu-top2.qcow2

# QEMU writes into the overlay: the rest still comes from the base.
qemu-io -f qcow2 top.qcow2 -c "write -q -P 0x44 600k 100k"
check_clean top.qcow2
qemu-img convert -O raw top.qcow2 top.raw
qemu-io -f raw base.raw -c "write -q -P 0x44 600k 100k"
cmp top.raw base.raw || fail "overlay after writes differs from the expected bytes"

# A relative name is stored as given and resolved against the overlay's
# directory, whatever the current directory.
mkdir sub
create sub/top3.qcow2 size=4M backing=../base.qcow2 backing-format=qcow2 layer-only=true
expect_info sub/top3.qcow2 backing-filename=../base.qcow2
(cd / && qemu-img compare -q "$tmpdir/sub/top3.qcow2" "$tmpdir/base.qcow2") ||
    fail "sub/top3.qcow2 does not read through ../base.qcow2"
# An absolute name too.
create top4.qcow2 size=4M backing="$tmpdir/base.raw" backing-format=raw layer-only=true
expect_info top4.qcow2 backing-filename="$tmpdir/base.raw"
qemu-img compare -q top4.qcow2 base.raw || fail "top4.qcow2 differs from base.raw"
check_clean top4.qcow2

# Refusals: nothing is created.
refused ()
{
    local phrase=$1
    shift
    rm -f bad.qcow2
    if qcx_nbdkit file=bad.qcow2 create=true size=4M "$@" --run true 2>err; then
        fail "accepted: $*"
    fi
    cat err
    grep -qi -- "$phrase" err || fail "$*: error does not say '$phrase'"
    [ ! -e bad.qcow2 ] || fail "$*: a file was created"
}
refused 'no such file' backing=missing.raw backing-format=raw
refused 'missing.raw' backing=missing.raw backing-format=raw
refused 'not a qcow2 image' backing=base.raw backing-format=qcow2
refused 'backing-format=' backing=base.raw
refused 'backing-format=' backing=base.raw backing-format=vmdk
refused 'needs backing=' backing-format=raw
long=$(printf 'x%.0s' $(seq 1 400)).raw
refused 'header cluster' backing=$long backing-format=raw cluster-size=512
