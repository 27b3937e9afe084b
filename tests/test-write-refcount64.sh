#!/usr/bin/env bash
# WRITE: refcount_bits=64, 512-byte clusters
#
# A 512-byte refcount block holds 64 refcounts (32 KiB of host file) and
# a one-cluster refcount table 64 blocks (2 MiB): filling a 6 MiB disk
# needs many new refcount blocks and a bigger refcount table, which must
# move (it is contiguous).
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

qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 "$img" 6M
wl prefill "$img" --seed 64 --tmpdir "$tmpdir" --budget 1M
qcx_expect_layout "$img" refcount_order -eq 6
qcx_qemu_raw "$img" "$ref"
before=$(wl header "$img")
echo "before: $before"
session 1 --ops 2000 --verify-start --mix write=40,read=15,zero=8,zerotrim=6,fastzero=3,trim=6,flush=3,fua=5,big=8 --big-len 192K
session 2 --ops 1500 --conns 2 --mix write=40,read=15,zero=8,zerotrim=6,fastzero=3,trim=6,flush=3,fua=5,big=8 --big-len 192K
after=$(wl header "$img")
echo "after: $after"
"$PY" - "$before" "$after" <<'EOF' || fail "refcount table did not grow: the test did not exercise refcount table growth"
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ok = (a["refcount_blocks"] >= b["refcount_blocks"] + 20 and
      a["refcount_table_clusters"] > b["refcount_table_clusters"])
sys.exit(0 if ok else 1)
EOF
