#!/usr/bin/env bash
# WRITE: refcount_bits=1, 512-byte clusters
#
# A refcount block of 512 bytes holds 4096 one-bit refcounts (2 MiB of
# host file): big writes over an 8 MiB disk grow the file past several
# refcount blocks, so allocation must add refcount blocks.  (A 1-bit
# refcount cannot count 2: nothing may share a cluster.)
# A random workload (tests/lib/workload.py: unaligned writes biased to
# subcluster/cluster/L2-table boundaries, zero with and without MAY_TRIM,
# FAST_ZERO, trim, flush, FUA, reads checked as they go) runs through the
# plugin against a raw reference with the same operations applied; then
# qemu-img check must be clean (no errors, no leaks) and qemu-img compare
# must find the image identical to the reference.  A second session
# reopens the image and repeats with another seed.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

. "$srcdir/lib/writelib.sh"

qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=1 "$img" 8M
wl prefill "$img" --seed 11 --tmpdir "$tmpdir" --budget 2M
qcx_expect_layout "$img" refcount_order -eq 0
qcx_qemu_raw "$img" "$ref"
before=$(wl header "$img")
echo "before: $before"
session 1 --ops 2000 --verify-start --mix write=40,read=15,zero=8,zerotrim=6,fastzero=3,trim=6,flush=3,fua=5,big=8 --big-len 192K
# a small L2 cache (8 tables of 64 entries = 256 KiB of disk)
pargs=(l2-cache-size=4K)
session 2 --ops 1500 --conns 2 --mix write=40,read=15,zero=8,zerotrim=6,fastzero=3,trim=6,flush=3,fua=5,big=8 --big-len 192K
after=$(wl header "$img")
echo "after: $after"
"$PY" - "$before" "$after" <<'EOF' || fail "refcount blocks did not grow: the test did not exercise refcount block allocation"
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.exit(0 if a["refcount_blocks"] >= b["refcount_blocks"] + 2 else 1)
EOF
