#!/usr/bin/env bash
# CHAIN ZERO/TRIM: through the filter, zero (with MAY_TRIM, with NO_HOLE,
# with FUA) and trim (with and without FUA) over backing data and over
# the overlay's own data/compressed clusters -- 1 byte, partial
# subcluster, whole subcluster, unaligned multi-subcluster, whole
# cluster, unaligned across clusters, the image's tail -- make the range
# read as zero and the backing data never reappears: checked after every
# op (tests/lib/chain-ops.py), after later partial writes into the zeroed
# ranges (copy-on-write must not fetch backing data there), after a
# restart of nbdkit, by QEMU (qemu-img compare with the raw model, check
# clean) and in the extents (vs qemu-img map).  Overlays: extended L2,
# standard L2, v2 (no zero flag).  Base unchanged.  discard=ignore: trims
# leave the data (and the overlay's mapping) untouched, zero still zeroes.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp sha256sum
requires_python_nbd

cd "$tmpdir"
K=65536
$chainpy layer base.qcow2 8M -o cluster_size=65536 --seed 1 full
chain_sums base.qcow2 > base.sha256

kinds=(zero zero:nohole trim zero:fua trim:fua)
ops=()
prefill=()
for k in 0 1 2 3 4; do
    B=$((k * 12))
    op=${kinds[k]}
    kind=${op%%:*}
    fl=
    [ "$op" = "$kind" ] || fl=:${op#*:}
    prefill+=(c:$(((B + 10) * K)):$K d:$(((B + 8) * K)):$((2 * K)))
    ops+=($kind:$((B * K + 100)):300$fl
          $kind:$(((B + 1) * K + 6144)):2048$fl
          $kind:$(((B + 2) * K + 1000)):10000$fl
          $kind:$(((B + 3) * K)):$K$fl
          $kind:$(((B + 4) * K + 60000)):80000$fl
          $kind:$(((B + 6) * K + 30000)):1$fl
          $kind:$(((B + 8) * K + 777)):3000$fl
          $kind:$(((B + 9) * K)):$K$fl
          $kind:$(((B + 10) * K + 5000)):2000$fl
          write:$(((B + 3) * K + 20000)):100
          write:$(((B + 1) * K + 6144 + 10)):50
          write:$(((B + 2) * K + 4000)):3000
          write:$(((B + 4) * K + 65536 + 100)):100)
done
ops+=(trim:$((8 * 1048576 - 3000)):3000 write:$((8 * 1048576 - 2000)):10 check)

run_ops ()
{
    local img=$1 ref=$2
    shift 2
    local cmd a
    printf -v cmd '%q %q "$uri" %q' "$PY" "$qcx_lib/chain-ops.py" "$ref"
    for a in "$@"; do printf -v cmd '%s %q' "$cmd" "$a"; done
    chain_nbdkit_rw "$img" "${filter_args[@]}" --run "$cmd" ||
        fail "$img ${filter_args[*]}: ops through the filter failed"
}

filter_args=()
for kind in ext std v2; do
    img=$kind.qcow2
    case $kind in
        ext) o=extended_l2=on,cluster_size=65536 ;;
        std) o=cluster_size=65536 ;;
        v2)  o=compat=0.10,cluster_size=65536 ;;
    esac
    $chainpy layer $img 8M -o $o -b base.qcow2 -F qcow2 --seed 2 "${prefill[@]}"
    qcx_expect_layout $img compressed -ge 5
    qemu-img convert -O raw $img $img.ref
    run_ops $img $img.ref "${ops[@]}"
    # a fresh nbdkit: everything still reads as the model
    run_ops $img $img.ref check
    chain_check_clean $img
    chain_compare_ref $img.ref $img
    sha256sum -c base.sha256 >/dev/null || fail "the base image changed"
    req=0,3
    [ $kind != v2 ] || req=0     # v2: zeros over backing data are written data
    CHAIN_REQUIRE=$req chain_extents $img $img
    chain_compare $img $img
done

# discard=ignore: trims change nothing (not even the overlay's mapping),
# zero still zeroes
filter_args=(discard=ignore)
img=ign.qcow2
$chainpy layer $img 8M -o extended_l2=on,cluster_size=65536 -b base.qcow2 -F qcow2 \
    --seed 3 "${prefill[@]}" d:0:100k
qemu-img convert -O raw $img $img.ref
$chainpy layer-map $img > map-before.json
trims=()
for op in "${ops[@]}"; do
    case $op in trim:*) trims+=("$op") ;; esac
done
trims+=(trim:0:8M trim:0:4096:fua)
printf -v tcmd '%q %q "$uri" %q --trim-ignored' "$PY" "$qcx_lib/chain-ops.py" "$img.ref"
for a in "${trims[@]}"; do printf -v tcmd '%s %q' "$tcmd" "$a"; done
chain_nbdkit_rw $img discard=ignore --run "$tcmd" || fail "discard=ignore: trims changed data"
$chainpy layer-map $img > map-after.json
cmp map-before.json map-after.json || fail "discard=ignore: trims changed the overlay's map"
run_ops $img $img.ref zero:$((5 * K + 100)):5000 zero:$((20 * K)):$K:nohole check
chain_check_clean $img
chain_compare_ref $img.ref $img
sha256sum -c base.sha256 >/dev/null || fail "the base image changed"
echo "test-chain-zero-trim: OK"
