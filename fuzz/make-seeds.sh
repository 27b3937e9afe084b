#!/usr/bin/env bash
# qcow2x fuzzing: make the seed corpora with qemu-img and qemu-io.
#
#   fuzz/make-seeds.sh OUTDIR
#
# Writes OUTDIR/corpus-fuzz_open_read/ (image files), corpus-fuzz_write/
# (a 260-byte operations header + an image, see fuzz/fuzz_write.c) and
# corpus-fuzz_chain/ (flags, top length, top image, base image, see
# fuzz/fuzz_chain.c).  Existing files in the corpora (inputs the fuzzer
# found) are kept.  The images cover what the read and write issues
# test: versions 2 and 3, cluster sizes 512 B, 4 KiB, 16 KiB, 64 KiB and
# 2 MiB, extended L2, zlib and zstd compressed clusters, zero clusters
# and subclusters, discarded ranges, refcount widths 1, 16 and 64,
# persistent bitmaps, preallocated metadata, a huge virtual size, an
# empty disk, and backing file names (qcow2 with and without a format,
# raw, a loop back to the top).  Everything is deterministic.
set -euo pipefail
export PATH=/usr/bin:/bin:$PATH
export LANG=C LC_ALL=C

out=${1:?usage: make-seeds.sh OUTDIR}
for t in qemu-img qemu-io /usr/bin/python3; do
    command -v "$t" >/dev/null || { echo "make-seeds.sh: $t is needed" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/qcx-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=$work/img
mkdir -p "$img" "$out/corpus-fuzz_open_read" "$out/corpus-fuzz_write" \
      "$out/corpus-fuzz_chain"

qio () { qemu-io -f qcow2 "$@" >/dev/null; }

# mk NAME SIZE OPTIONS: an image with a mix of data, compressed, zero,
# partial (subcluster) and discarded ranges, scaled to the cluster size.
mk ()
{
    local name=$1 size=$2 opts=$3 f=$img/$1.qcow2
    local cs
    cs=$(sed -n 's/.*cluster_size=\([0-9kKM]*\).*/\1/p' <<<"$opts")
    cs=${cs:-64k}
    case $cs in
        512) c=512 ;; *k|*K) c=$(( ${cs%[kK]} * 1024 )) ;;
        *M) c=$(( ${cs%M} * 1048576 )) ;; *) c=$cs ;;
    esac
    qemu-img create -q -f qcow2 -o "$opts" "$f" "$size"
    local v3=1
    case $opts in *compat=0.10*|*compat=v2*) v3=0 ;; esac
    # Data: two clusters at 0 (only their first sectors hold non-zero
    # bytes: the seeds stay small), a partial write inside the next one.
    qio -c "write -P 0x11 0 512" -c "write -P 0x12 $c 512" \
        -c "write -P 0x33 $((2 * c + c / 2 + 512)) 1024" "$f"
    # Compressed clusters (cluster aligned, whole clusters).
    qio -c "write -c -P 0x22 $((4 * c)) $c" \
        -c "write -c -P 0x23 $((5 * c)) $c" "$f"
    # Zero clusters: with a host cluster kept and without.
    if [ $v3 = 1 ]; then
        qio -c "write -P 0x44 $((6 * c)) 512" -c "write -z $((6 * c)) $c" \
            -c "write -z $((7 * c)) $c" "$f"
    fi
    # A discarded cluster, and data near the end of the disk.
    if [ $((9 * c)) -le "$size_b" ]; then
        qio -c "write -P 0x55 $((8 * c)) 512" -c "discard $((8 * c)) $c" "$f"
    fi
    qio -c "write -P 0x66 $((size_b - 1536)) 1536" "$f"
    echo "$f"
}

size_b=$((4 << 20))
images=()
# Version 2 (no zero flag; refcount width 16).
for cs in 512 4k 64k; do
    images+=("$(mk v2-c$cs 4M "compat=0.10,cluster_size=$cs")")
done
# Version 3, standard L2.
for cs in 512 4k 64k; do
    images+=("$(mk v3-c$cs 4M "compat=1.1,cluster_size=$cs")")
done
for cs in 4k 64k; do
    images+=("$(mk v3-zstd-c$cs 4M "cluster_size=$cs,compression_type=zstd")")
done
# Extended L2.
for cs in 16k 64k; do
    images+=("$(mk ext-c$cs 4M "cluster_size=$cs,extended_l2=on")")
done
images+=("$(mk ext-zstd-c64k 4M "cluster_size=64k,extended_l2=on,compression_type=zstd")")
# Refcount widths.
for rb in 1 64; do
    images+=("$(mk rc$rb-c64k 4M "cluster_size=64k,refcount_bits=$rb")")
done
images+=("$(mk rc1-c4k 4M "cluster_size=4k,refcount_bits=1")")
images+=("$(mk rc64-ext-c16k 4M "cluster_size=16k,extended_l2=on,refcount_bits=64")")
# Refcount table growth: 512-byte clusters with 64-bit refcounts, so the
# one-cluster refcount table (64 blocks of 64 clusters) covers only 2 MiB
# of file, filled almost to the end with allocated (all-zero, so the
# sparse seed stays small) clusters: the fuzzer's first allocations grow
# the table.
f=$img/grow-rc64-c512.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 "$f" 4M
qio -c "write -P 0 0 1900k" -c "write -P 0x11 1900k 512" "$f"
images+=("$f")
# Preallocated metadata, lazy refcounts.
images+=("$(mk prealloc-c64k 4M "cluster_size=64k,preallocation=metadata")")
images+=("$(mk lazy-c4k 4M "cluster_size=4k,lazy_refcounts=on")")
# Dirty: lazy refcounts and a "crash" (qemu-io abort) leave the dirty bit
# set; fuzz_write's first write repairs it (common/repair.c).
f=$img/dirty-c4k.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k,lazy_refcounts=on "$f" 4M
qemu-io -f qcow2 "$f" -c "write -q -P 0x16 0 8k" -c "write -q -c -P 0x17 16k 4k" \
    -c "discard -q 0 4k" -c "flush" -c "abort" >/dev/null 2>&1 || true
images+=("$f")
# 2 MiB clusters (large files: only these two).
size_b=$((16 << 20))
images+=("$(mk v3-c2M 16M "cluster_size=2M")")
images+=("$(mk ext-c2M 16M "cluster_size=2M,extended_l2=on")")
size_b=$((4 << 20))
# Persistent bitmaps (bitmaps extension + autoclear bit).
f=$img/bitmaps-c64k.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k "$f" 4M
qemu-img bitmap --add "$f" b0
qemu-img bitmap --add -g 128k "$f" b1
qio -c "write -P 0x77 0 512" -c "write -P 0x78 64k 512" -c "write -P 0x79 128k 512" "$f"
images+=("$f")
# Huge virtual size, empty disk.
f=$img/huge-c64k.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k "$f" 64T
qio -c "write -P 0x12 0 512" -c "write -P 0x13 1T 512" -c "write -P 0x14 $(( (64 << 40) - 4096 )) 4096" "$f"
images+=("$f")
f=$img/huge-c512.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 "$f" 4G
qio -c "write -P 0x12 0 4k" -c "write -P 0x13 3G 4k" "$f"
images+=("$f")
f=$img/empty.qcow2
qemu-img create -q -f qcow2 "$f" 0
images+=("$f")
f=$img/odd-size.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k "$f" 1000005
qio -c "write -P 0x15 998400 1605" "$f"
images+=("$f")

# Backing chains: tops name "base.qcow2" in their own directory.
chain_pair ()   # NAME BASE-OPTS TOP-OPTS [raw]
{
    local name=$1 bopts=$2 topts=$3 raw=${4:-} d=$work/chain-$1
    mkdir -p "$d"
    if [ "$raw" = raw ]; then
        /usr/bin/python3 -c '
import sys
b = bytearray(4 << 20)
for i in range(0, 1 << 20, 4096): b[i:i+7] = b"rawdata"
open(sys.argv[1], "wb").write(b)' "$d/base.qcow2"
        (cd "$d" && qemu-img create -q -f qcow2 -b base.qcow2 -F raw \
             -o "$topts" top.qcow2 4M)
    else
        (cd "$d" && qemu-img create -q -f qcow2 -o "$bopts" base.qcow2 4M)
        qio -c "write -P 0xb1 0 512" -c "write -P 0xb1 64k 512" \
            -c "write -P 0xb1 512k 512" -c "write -c -P 0xb2 1M 64k" \
            -c "write -z 2M 64k" -c "write -P 0xb3 3M 512" "$d/base.qcow2"
        case $name in
            probe*) (cd "$d" && qemu-img create -q -f qcow2 -b base.qcow2 \
                         -F qcow2 -o "$topts" top.qcow2 4M)
                    # No backing format extension: rename it to an
                    # unknown (ignored) extension type, so readers probe.
                    /usr/bin/python3 -c '
import struct, sys
f = open(sys.argv[1], "r+b"); b = f.read(65536)
i = b.find(struct.pack(">I", 0xe2792aca), 104)
assert i > 0
f.seek(i); f.write(struct.pack(">I", 0x7fff0001))' "$d/top.qcow2" ;;
            *)      (cd "$d" && qemu-img create -q -f qcow2 -b base.qcow2 \
                         -F qcow2 -o "$topts" top.qcow2 4M) ;;
        esac
    fi
    qio -c "write -P 0xc1 4k 4k" -c "write -P 0xc2 1M 8k" \
        -c "write -z 2M 4k" -c "discard 3M 64k" "$d/top.qcow2"
    case $name in
        loop*) qemu-img rebase -q -u -f qcow2 -b top.qcow2 -F qcow2 "$d/base.qcow2" ;;
    esac
    echo "$d"
}
pairs=()
pairs+=("$(chain_pair std "cluster_size=64k" "cluster_size=64k")")
pairs+=("$(chain_pair ext-over-std "cluster_size=4k" "cluster_size=64k,extended_l2=on")")
pairs+=("$(chain_pair v2-over-zstd "cluster_size=64k,compression_type=zstd" "compat=0.10,cluster_size=4k")")
pairs+=("$(chain_pair ext16k-over-ext "cluster_size=64k,extended_l2=on" "cluster_size=16k,extended_l2=on")")
pairs+=("$(chain_pair probe "cluster_size=512" "cluster_size=64k")")
pairs+=("$(chain_pair raw "" "cluster_size=64k" raw)")
pairs+=("$(chain_pair loop "cluster_size=64k" "cluster_size=64k")")
pairs+=("$(chain_pair rc1 "cluster_size=4k,refcount_bits=1" "cluster_size=4k,refcount_bits=1")")

# Every image (and every chain layer) seeds fuzz_open_read; every image
# and overlay seeds fuzz_write; the pairs seed fuzz_chain.  Images are
# stored as sparse "QCXS" containers (fuzz/fuzz-common.h), small ones
# also byte for byte.
/usr/bin/python3 - "$out" "${images[@]}" -- "${pairs[@]}" <<'EOF'
import hashlib, os, random, struct, sys

out = sys.argv[1]
args = sys.argv[2:]
sep = args.index("--")
images, pairs = args[:sep], args[sep + 1:]

def sparse(data):
    """The QCXS container: non-zero 16-byte blocks, merged across short
    gaps, as (u32 offset, u16 length, bytes) chunks."""
    out = bytearray(b"QCXS" + struct.pack("<I", len(data)))
    i, n = 0, len(data)
    while i < n:
        if not any(data[i:i + 16]):
            i += 16
            continue
        start = i
        end = min(i + 16, n)
        while end < n and end - start < 65535 - 48:
            nxt = data[end:end + 48]
            if not any(nxt):
                break
            end = min(end + 16, n)
        out += struct.pack("<IH", start, end - start) + data[start:end]
        i = end
    return bytes(out)

def ops_header(rng, flags, nops, mix):
    """4 header bytes + 32 operations of 8 bytes (fuzz/fuzz_write.c)."""
    h = bytearray([flags, rng.randrange(256), nops, 0])
    for i in range(32):
        t = rng.choice(mix)
        off = rng.randrange(1 << 32)
        shift = rng.choice([0, 4, 9, 12, 15])
        off >>= rng.randrange(0, 20)        # many small offsets
        b5 = shift | (0x80 if rng.random() < 0.3 else 0)
        ln = rng.choice([0, 511, 4095, 65535, rng.randrange(65536)])
        h += bytes([t | (rng.randrange(32) << 3)]) + struct.pack("<I", off) \
            + bytes([b5]) + struct.pack("<H", ln)
    return bytes(h)

def seed_of(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")

read_dir = os.path.join(out, "corpus-fuzz_open_read")
def add_read_seed(name, data):
    open(os.path.join(read_dir, "seed-%s.qcxs" % name), "wb").write(sparse(data))
    if len(data) <= 65536:
        open(os.path.join(read_dir, "seed-%s" % name), "wb").write(data)

for path in images:
    add_read_seed(os.path.basename(path), open(path, "rb").read())
for d in pairs:
    n = os.path.basename(d)
    for layer in ("top", "base"):
        add_read_seed("%s-%s.qcow2" % (n, layer),
                      open(os.path.join(d, layer + ".qcow2"), "rb").read())

write_dir = os.path.join(out, "corpus-fuzz_write")
writable = images + [os.path.join(d, "top.qcow2") for d in pairs]
for path in writable:
    data = open(path, "rb").read()
    name = os.path.basename(os.path.dirname(path)) + "-" + os.path.basename(path) \
        if path.endswith("top.qcow2") else os.path.basename(path)
    rng = random.Random(seed_of(name))
    variants = [
        ("writes", 0x00, 12, [0, 1, 6]),
        ("mixed", 0x02, 24, [0, 1, 2, 3, 4, 5, 6, 7]),
        ("zero-trim-small-cache", 0x05, 16, [0, 2, 3, 4, 4, 7]),
        ("fault", 0x08 | 0x40, 16, [0, 1, 2, 4, 5]),
    ]
    for vname, flags, nops, mix in variants:
        hdr = ops_header(rng, flags, nops, mix)
        with open(os.path.join(write_dir, "seed-%s-%s" % (name, vname)), "wb") as f:
            f.write(hdr + sparse(data))

chain_dir = os.path.join(out, "corpus-fuzz_chain")
for d in pairs:
    top = sparse(open(os.path.join(d, "top.qcow2"), "rb").read())
    base = sparse(open(os.path.join(d, "base.qcow2"), "rb").read())
    assert len(top) < (1 << 24)
    n = os.path.basename(d)
    for vname, flags in [("follow", 0x00), ("deep", 0x08),
                         ("override-probe", 0x04 | 0x10),
                         ("override-qcow2", 0x05), ("override-raw", 0x06)]:
        with open(os.path.join(chain_dir, "seed-%s-%s" % (n, vname)), "wb") as f:
            f.write(bytes([flags]) + struct.pack("<I", len(top))[:3] + top + base)
EOF
for t in fuzz_open_read fuzz_write fuzz_chain; do
    echo "make-seeds.sh: $(ls "$out/corpus-$t" | wc -l) files in $out/corpus-$t"
done
