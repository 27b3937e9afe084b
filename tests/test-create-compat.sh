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

. "$srcdir/lib/createlib.sh"

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
