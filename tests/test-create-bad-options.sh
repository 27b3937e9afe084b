#!/usr/bin/env bash
# CREATE: bad creation parameters stop nbdkit at start-up with one clear
# error line, before anything is served and before any file is created:
# cluster sizes that are not a power of two in 512..2M, extended L2 with
# clusters under 16K, refcount widths that are not a power of two <= 64,
# create=true without size=, creation parameters without create=true,
# and unknown values.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit grep
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

# bad PHRASE ARGS...
bad ()
{
    local phrase=$1
    shift
    rm -f new.qcow2 ran
    if qcx_nbdkit file=new.qcow2 "$@" --run 'touch ran' 2>err; then
        fail "accepted: $*"
    fi
    cat err
    [ ! -e ran ] || fail "$*: served anyway"
    [ ! -e new.qcow2 ] || fail "$*: a file was created"
    [ "$(wc -l < err)" = 1 ] || fail "$*: error is not one line"
    grep -qi -- "$phrase" err || fail "$*: error does not say '$phrase'"
}

bad 'cluster size 1000 is invalid' create=true size=1M cluster-size=1000
bad 'power of two between 512 and 2M' create=true size=1M cluster-size=256
bad 'power of two between 512 and 2M' create=true size=1M cluster-size=4M
bad 'extended L2 entries need a cluster size of at least 16K' \
    create=true size=1M cluster-size=4K extended-l2=true
bad 'extended L2' create=true size=1M cluster-size=8K extended-l2=on
bad 'refcount bits 3 is invalid' create=true size=1M refcount-bits=3
bad 'refcount bits 128 is invalid' create=true size=1M refcount-bits=128
bad 'refcount-bits=0' create=true size=1M refcount-bits=0
bad 'refcount-bits=x' create=true size=1M refcount-bits=x
bad 'needs size=' create=true
bad 'needs size=' create=true cluster-size=64K
bad 'size string (lots)' create=true size=lots
bad 'zlib or zstd' create=true size=1M compression=lz4
bad 'off, metadata, falloc or full' create=true size=1M preallocation=sparse
bad '0.10 or 1.1' create=true size=1M compat=2
bad 'extended-l2=maybe: expected true or false' create=true size=1M extended-l2=maybe
bad 'create=maybe' create=maybe size=1M

# Creation parameters without create=true (or with create=false).
for p in size=1M cluster-size=64K extended-l2=true compression=zstd \
         backing=x.raw backing-format=raw preallocation=metadata \
         refcount-bits=16 compat=1.1 overwrite=true; do
    bad "${p%%=*}= is an image creation parameter: it needs create=true" "$p"
done
bad 'needs create=true' create=false size=1M
