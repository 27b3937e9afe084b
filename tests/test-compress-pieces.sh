#!/usr/bin/env bash
# COMPRESSED WRITES, clusters written in pieces (compress=true): fixed
# sequences of NBD requests against a raw model, on standard and extended
# L2 images (64 KiB clusters, no backing file):
#   c0  4 KiB write (a piece: written normally, a candidate), then a zero
#       of the whole cluster with NO_HOLE (keeps the host cluster): at the flush the candidate
#       must not be compressed from its stale host bytes (it stays zero)
#   c1  two pieces completing the cluster -> compressed at the flush
#   c2  one piece, flush (compressed with zeros around it), another
#       piece into the compressed cluster (recompressed), flush
#   c3  a whole cluster of random data -> stays a normal cluster
#   c4  a whole cluster of text -> compressed; then a partial zero in it
#       (merged and recompressed)
#   c5  a piece, then a trim of the whole cluster before any flush
# Reads are checked after every step; after the server exits, qemu-img
# check must be clean and qemu-img compare must match the model; on the
# standard L2 image the cluster kinds are counted (compressed 3, normal
# 1, zero with a kept host offset 1).
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

cd "$tmpdir"
cat > seq.py <<'EOF'
import os, random, sys
import nbd

ref_path = sys.argv[1]
K = 1024
C = 64 * K
rng = random.Random(7)
text = bytes(rng.choice(b"abcdefgh \n") for _ in range(C))
noise = rng.randbytes(C)
model = bytearray(16 * C)
h = nbd.NBD()
h.connect_uri(sys.argv[2])

def check(what):
    got = h.pread(len(model), 0)
    if got != model:
        i = next(i for i in range(len(model)) if got[i] != model[i])
        sys.exit("FAIL: %s: byte %d differs (got %d, expected %d)"
                 % (what, i, got[i], model[i]))
    print("ok:", what)

def write(off, data):
    h.pwrite(data, off)
    model[off:off + len(data)] = data

def zero(off, n, flags=0):
    h.zero(n, off, flags)
    model[off:off + n] = bytes(n)

write(0 * C + 8 * K, text[:4 * K])
zero(0 * C, C, nbd.CMD_FLAG_NO_HOLE)      # keeps the host cluster
write(1 * C, text[:20 * K])
write(2 * C + 40 * K, text[40 * K:50 * K])
write(5 * C + 4 * K, text[:4 * K])
check("pieces written")
h.trim(C, 5 * C)
model[5 * C:6 * C] = bytes(C)
h.flush()
check("after the first flush")
write(1 * C + 20 * K, text[20 * K:])
write(2 * C + 4 * K, noise[:3 * K])
write(3 * C, noise)
write(4 * C, text)
zero(4 * C + 1000, 1500)
h.flush()
check("after the second flush")
open(ref_path, "wb").write(model)
h.shutdown()
EOF

for ext in off on; do
    rm -f img.qcow2 ref.raw
    qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=$ext,compression_type=zstd \
        img.qcow2 1M
    qcx_nbdkit_rw img.qcow2 compress=true --run "$PY seq.py ref.raw \"\$uri\"" ||
        fail "extended_l2=$ext: request sequence failed"
    out=$(qemu-img check img.qcow2 2>&1) || fail "extended_l2=$ext: qemu-img check: $out"
    qemu-img compare -q -f raw -F qcow2 ref.raw img.qcow2 ||
        fail "extended_l2=$ext: qemu-img compare: image differs from the model"
    if [ $ext = off ]; then
        qcx_expect_layout img.qcow2 compressed -eq 3
        qcx_expect_layout img.qcow2 normal -eq 1
        qcx_expect_layout img.qcow2 zero_with_offset -eq 1
    else
        qcx_expect_layout img.qcow2 compressed -eq 3
    fi
    echo "OK: extended_l2=$ext"
done
echo "test-compress-pieces: OK"
