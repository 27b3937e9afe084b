#!/usr/bin/env bash
# CREATE: an existing file is never replaced without overwrite=true: the
# server fails at start-up with one error line saying so (and naming
# overwrite=true), serves nothing, and the file keeps its exact bytes.
# With overwrite=true it is replaced by a clean new image.  Every option
# is checked before the file is touched, so a bad option or a missing
# backing file leaves an existing file intact even with overwrite=true;
# a directory or the image's own backing file is never overwritten.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate grep md5sum
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

# refused FILE PHRASE ARGS...: creation fails, nothing served, FILE intact.
refused ()
{
    local f=$1 phrase=$2 sum
    shift 2
    sum=$(md5sum < "$f")
    rm -f ran
    if qcx_nbdkit file="$f" create=true "$@" --run 'touch ran' 2>err; then
        fail "$f: creation over an existing file was accepted: $*"
    fi
    cat err
    [ ! -e ran ] || fail "$f: served after a refused creation"
    [ "$(wc -l < err)" = 1 ] || fail "$f: error is not one line"
    grep -qi -- "$phrase" err || fail "$f: error does not say '$phrase'"
    [ "$(md5sum < "$f")" = "$sum" ] || fail "$f: contents changed: $*"
}

head -c 300000 /dev/urandom > precious.bin
refused precious.bin 'overwrite=true' size=1M
refused precious.bin 'already exists' size=1M overwrite=false

qemu-img create -q -f qcow2 old.qcow2 4M
qemu-io -f qcow2 old.qcow2 -c "write -q -P 0x99 0 4M"
refused old.qcow2 'overwrite=true' size=2M
# Bad options never truncate, even with overwrite=true.
refused old.qcow2 'cluster size' size=2M cluster-size=1000 overwrite=true
refused old.qcow2 'missing.raw' size=2M backing=missing.raw backing-format=raw overwrite=true
refused old.qcow2 'itself' size=2M backing=old.qcow2 backing-format=qcow2 overwrite=true
qemu-img compare -q old.qcow2 old.qcow2   # still a valid image

# A symbolic link (even dangling) is an existing name too.
ln -s precious.bin link.qcow2
refused link.qcow2 'already exists' size=1M
ln -s nowhere dangling.qcow2
rm -f ran
if qcx_nbdkit file=dangling.qcow2 create=true size=1M --run 'touch ran' 2>err; then
    fail "created through a dangling symlink without overwrite=true"
fi
cat err
[ ! -e nowhere ] || fail "a file was created through a dangling symlink"

# A directory is never replaced.
mkdir dir.qcow2
if qcx_nbdkit file=dir.qcow2 create=true size=1M overwrite=true --run true 2>err; then
    fail "a directory was accepted as the image"
fi
cat err
grep -q 'not a regular file' err || fail "directory: unclear error"
[ -d dir.qcow2 ] || fail "the directory is gone"

# overwrite=true replaces the file with a clean image.
create old.qcow2 size=2M cluster-size=4K overwrite=true
check_clean old.qcow2
expect_info old.qcow2 virtual-size=2097152 cluster-size=4096 extended-l2=false
reads_zero old.qcow2
qcx_compare_with_qemu old.qcow2
create precious.bin size=1M overwrite=true
check_clean precious.bin
reads_zero precious.bin
[ "$(stat -c %s precious.bin)" -lt 300000 ] || fail "old bytes survived the overwrite"

# Without create=true the existing image is just served.
qcx_nbdkit file=old.qcow2 --run 'nbdinfo --size "$uri"' > size
[ "$(cat size)" = 2097152 ] || fail "serving old.qcow2: size $(cat size)"
