#!/usr/bin/env bash
# COMPRESSED WRITES (compress=true), the virt-v2v output case: nbdcopy of
# a raw disk (text-like, random and zero runs, and 4 KiB chunks of each) into a new
# image created by the plugin with compress=true, for zstd and zlib,
# standard and extended L2 entries, 512 B / 64 KiB / 2 MiB clusters, a
# version 2 image, 1-bit refcounts (no cluster sharing possible) and a
# disk size that is not a multiple of the cluster size (the last cluster
# is compressed padded with zeros), and compress-level= (1 for zstd, 9
# for zlib; out-of-range levels refused).  Each result must be clean for
# qemu-img check (no errors, no leaks), identical to the source for
# qemu-img compare, really hold compressed clusters (and, for random
# data, normal ones: what does not compress is stored plainly), and use
# no more than 10% more space than qemu-img convert -c of the same
# source (clusters nbdcopy sends in pieces: compressed once, later).
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdcopy du fallocate
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
. "$srcdir/lib/createlib.sh"

cd "$tmpdir"
"$PY" "$qcx_lib/gen-data.py" 1 1M mix.raw mix
"$PY" "$qcx_lib/gen-data.py" 2 1M rnd.raw random
"$PY" "$qcx_lib/gen-data.py" 3 5M txt.raw text
# Like a disk: text-like data, a zero run (nbdcopy sends a zero request),
# random data, zero runs that end inside clusters; 4 KiB chunks of every
# kind (each cluster comes in several pieces, data and zero requests);
# then an odd tail of text.
{ head -c 3M txt.raw; head -c 1M /dev/zero; cat rnd.raw
  tail -c 1500000 txt.raw; head -c 300000 /dev/zero; head -c 600000 txt.raw
  cat mix.raw; head -c 777777 txt.raw; } > src.raw
size=$(stat -c %s src.raw)

# The space check needs hole punching (the plugin punches out the host
# clusters it frees); without it freed clusters still count in du.
head -c 1M /dev/urandom > punch.tst
before=$(du -B1 punch.tst | cut -f1)
fallocate -p -o 0 -l 512K punch.tst 2>/dev/null || true
punch=1
[ "$(du -B1 punch.tst | cut -f1)" -lt "$before" ] || punch=0
[ $punch = 1 ] || echo "note: this file system does not punch holes: no space check"

copy_one ()   # copy_one NAME CREATE-ARGS...
{
    local name=$1 q=$tmpdir/$1.qcow2 ctype=zlib a
    shift
    for a in "$@"; do
        case $a in compression=zstd) ctype=zstd ;; esac
    done
    qcx_nbdkit_rw file="$q" create=true size="$size" compress=true "$@" \
        --run 'nbdcopy --flush src.raw "$uri"' ||
        fail "$name: nbdcopy into a new compress=true image failed"
    check_clean "$q"
    qemu-img compare -q -f raw -F qcow2 src.raw "$q" ||
        fail "$name: qemu-img compare: image differs from the source"
    qcx_expect_layout "$q" compressed -ge 3
    # the random MiB fills whole clusters unless they are 2 MiB
    case $name in *-2m) ;; *) qcx_expect_layout "$q" normal -ge 1 ;; esac
    # the same source, compressed by QEMU with the same format options
    local opts=compression_type=$ctype
    for a in "$@"; do
        case $a in
            cluster-size=*) opts+=,cluster_size=${a#*=} ;;
            extended-l2=*) opts+=,extended_l2=${a#*=} ;;
            compat=*) opts+=,compat=${a#*=} ;;
            refcount-bits=*) opts+=,refcount_bits=${a#*=} ;;
        esac
    done
    qemu-img convert -q -c -f raw -O qcow2 -o "$opts" src.raw "$name-qemu.qcow2"
    local ours theirs
    # space in use (clusters written in pieces are compressed later and
    # their first host clusters punched out: holes in the file)
    ours=$(du -B1 "$q" | cut -f1)
    theirs=$(du -B1 "$name-qemu.qcow2" | cut -f1)
    [ $punch = 0 ] || [ $((ours * 10)) -le $((theirs * 11)) ] ||
        fail "$name: $ours bytes in use, qemu-img convert -c: $theirs (more than 10% more)"
    echo "OK: $name: $ours bytes in use (qemu-img convert -c: $theirs)"
    rm -f "$q" "$name-qemu.qcow2"
}

copy_one ext-zstd-64k extended-l2=on compression=zstd
copy_one std-zlib-64k extended-l2=off compression=zlib
copy_one ext-zlib-2m extended-l2=on compression=zlib cluster-size=2M
copy_one std-zstd-512 compression=zstd cluster-size=512
copy_one v2-zlib compat=0.10
copy_one refcount1-zstd compression=zstd refcount-bits=1
copy_one zstd-level1 compression=zstd compress-level=1
copy_one zlib-level9 compression=zlib compress-level=9

# levels out of range are refused at start-up, naming the range
for bad in "compression=zlib compress-level=10" "compression=zstd compress-level=23"; do
    rm -f bad.qcow2
    # shellcheck disable=SC2086
    if qcx_nbdkit_rw file=bad.qcow2 create=true size=1M compress=true $bad \
        --run true 2>err.txt; then
        fail "$bad: accepted"
    fi
    grep -q "compression level .* out of range" err.txt ||
        fail "$bad: unclear error: $(cat err.txt)"
    echo "refused OK: $bad: $(grep -o 'compression level.*' err.txt)"
done
echo "test-compress-copy: OK"
