#!/usr/bin/env bash
# READ: random unaligned reads (python nbd pread, fixed seed) spanning
# subclusters, clusters and L2 tables, compared with qemu-img convert.
# Images with small clusters so that many L2 tables are crossed, written
# in random order (host clusters out of guest order):
#   512 B standard (one L2 table maps 32 KiB), 4 KiB standard (2 MiB per
#   L2 table), 16 KiB extended (512 B subclusters), and a sparse 40 MiB
#   16 KiB extended image (16 MiB per L2 table) with data around the table
#   boundaries.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit cmp
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"

# Written in random order in unaligned chunks: host clusters are out of
# guest order, so reads crossing clusters must map each one separately.
$mk shuffled "$tmpdir/u512.qcow2" 1M --cluster-size 512 --seed 41
qcx_expect_layout "$tmpdir/u512.qcow2" l2_tables -ge 20
QCX_SEED=41 QCX_READS=3000 QCX_MAX_READ=100000 QCX_READ_HINTS=512,32768 \
    qcx_random_reads "$tmpdir/u512.qcow2"

$mk shuffled "$tmpdir/u4k.qcow2" 9M --cluster-size 4096 --seed 42
qemu-io -f qcow2 "$tmpdir/u4k.qcow2" \
    -c "write -q -z $((2 * 1024 * 1024 - 4096)) 8192" \
    -c "write -q -P 0x5a $((4 * 1024 * 1024 - 1)) 2"
qcx_expect_layout "$tmpdir/u4k.qcow2" l2_tables -ge 4
qcx_fill_stale "$tmpdir/u4k.qcow2"
QCX_SEED=42 QCX_READS=3000 QCX_READ_HINTS=4096,2097152 \
    qcx_random_reads "$tmpdir/u4k.qcow2"

# Converted sequentially: host clusters contiguous across L2 tables, so a
# mapping run that is not cut at the end of an L2 table goes unnoticed only
# if the reader is right.
$mk data "$tmpdir/u512-seq.qcow2" 1M --seed 41 -o cluster_size=512
QCX_SEED=45 QCX_READS=3000 QCX_READ_HINTS=512,32768 \
    qcx_random_reads "$tmpdir/u512-seq.qcow2"

$mk shuffled "$tmpdir/u16k-shuf.qcow2" 3M --cluster-size 16384 --ext on --seed 44
qcx_fill_stale "$tmpdir/u16k-shuf.qcow2"
QCX_SEED=44 QCX_READS=2000 QCX_READ_HINTS=512,16384 \
    qcx_random_reads "$tmpdir/u16k-shuf.qcow2"

# Sparse 40 MiB extended-L2 image (3 L2 tables of 16 MiB), data written
# across the table boundaries.
img=$tmpdir/u16k-ext.qcow2
M=$((1024 * 1024))
qemu-img create -q -f qcow2 -o cluster_size=16384,extended_l2=on "$img" $((40 * M))
"$PY" "$srcdir/lib/gen-data.py" 43 3M "$tmpdir/rand" random
qemu-io -f qcow2 "$img" \
    -c "write -q -s $tmpdir/rand $((16 * M - M)) $((2 * M))" \
    -c "write -q -s $tmpdir/rand $((32 * M - 700 * 1024)) $((1400 * 1024 + 513))" \
    -c "write -q -z $((16 * M - 4096)) 3072" \
    -c "write -q -z -u $((16 * M + 16384)) 16384" \
    -c "write -q -P 0x11 $((32 * M + 1000)) 100" \
    -c "write -q -P 0x22 $((40 * M - 10000)) 10000"
qcx_expect_layout "$img" l2_tables -ge 3
qcx_fill_stale "$img" --min-bytes 1
QCX_SEED=43 QCX_READS=3000 QCX_READ_HINTS=512,16384,$((16 * M)) \
    qcx_random_reads "$img"
