#!/usr/bin/env bash
# CHAIN KEEP-MAPPING: an extended-L2 overlay preallocated over a base
# (qemu-img create -o extended_l2=on,preallocation=metadata -b base; and
# the same created through the plugin: create=true ... preallocation=
# metadata) has a host cluster for every guest cluster while still
# reading the base.  Through the filter with discard=keep-mapping, trims
# (with/without FUA), zeroes with and without MAY_TRIM, rewrites and
# partial writes in a scrambled order (fixed seed; 4 connections, random
# workload with a trim-heavy mix), afterwards qemu-img map of the overlay
# alone shows every guest cluster at the same host offset as before, the
# file did not grow, qemu-img check is clean, qemu-img compare with the
# raw model is identical, the base is unchanged.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp sha256sum
requires_python_nbd

cd "$tmpdir"
$chainpy layer base.qcow2 4M -o cluster_size=65536 --seed 1 full u:1M:64k
chain_sums base.qcow2 > base.sha256

qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=65536,preallocation=metadata \
    -b base.qcow2 -F qcow2 qemu.qcow2 4M
qcx_nbdkit_rw file=plugin.qcow2 create=true size=4M cluster-size=64K backing=base.qcow2 \
    backing-format=qcow2 preallocation=metadata layer-only=true --run true ||
    fail "creating plugin.qcow2 through the plugin failed"

# offsets IMG: one line per guest cluster "GUEST HOST" (overlay alone);
# fails unless every cluster has a host offset.
offsets ()
{
    $chainpy layer-map "$1" | $PY -c '
import json, sys
cs = 65536
m = json.load(sys.stdin)
out = {}
for e in m:
    if "offset" not in e:
        sys.exit("%s: guest range [%d, +%d) has no host offset" % (sys.argv[1], e["start"], e["length"]))
    for g in range(e["start"] // cs * cs, e["start"] + e["length"], cs):
        a = max(g, e["start"])
        h = e["offset"] + (a - e["start"]) - (a - g)
        if out.setdefault(g, h) != h:
            sys.exit("cluster %d mapped to two host offsets" % g)
for g in sorted(out):
    print(g, out[g])
' "$1"
}

for img in qemu.qcow2 plugin.qcow2; do
    qcx_expect_layout $img sub_unalloc_with_offset -eq $((64 * 32))
    offsets $img > $img.before
    [ "$(wc -l < $img.before)" = 64 ] || fail "$img: expected 64 mapped clusters"
    size_before=$(stat -c %s $img)
    qemu-img convert -O raw $img $img.ref
    for seed in 1 2; do
        chain_workload $img $img.ref --conns 4 --seed $seed --ops 800 --verify-start \
            --mix write=30,read=15,zero=10,zerotrim=15,fastzero=3,trim=20,flush=2,fua=5 \
            -- discard=keep-mapping
    done
    # deterministic: trim everything, rewrite in reverse order, trim odd
    # clusters, zero (MAY_TRIM) even ones, partial rewrites
    ops=(trim:0:4M)
    for c in $(seq 63 -1 0); do ops+=(write:$((c * 65536 + 3000)):50000); done
    for c in $(seq 1 2 63); do ops+=(trim:$((c * 65536)):65536:fua); done
    for c in $(seq 0 2 63); do ops+=(zero:$((c * 65536)):65536); done
    for c in $(seq 5 7 63); do ops+=(write:$((c * 65536 + 100)):700); done
    ops+=(check)
    printf -v cmd '%q %q "$uri" %q' "$PY" "$qcx_lib/chain-ops.py" "$img.ref"
    for a in "${ops[@]}"; do printf -v cmd '%s %q' "$cmd" "$a"; done
    chain_nbdkit_rw $img discard=keep-mapping --run "$cmd" ||
        fail "$img: deterministic ops through the filter failed"

    offsets $img > $img.after
    if ! cmp -s $img.before $img.after; then
        diff $img.before $img.after | head -20 >&2
        fail "$img: guest clusters moved (discard=keep-mapping)"
    fi
    echo "mapping OK: $img: all 64 guest clusters at their original host offsets"
    [ "$(stat -c %s $img)" = "$size_before" ] ||
        fail "$img: file grew from $size_before to $(stat -c %s $img) bytes"
    chain_check_clean $img
    chain_compare_ref $img.ref $img
    sha256sum -c base.sha256 >/dev/null || fail "the base image changed"
done
echo "test-chain-keep-mapping: OK"
