#!/usr/bin/env bash
# CHAIN RESOLUTION: how the qcow2xchain filter finds and opens the layers.
#  - relative backing names are resolved against the directory of the
#    image that names them (nbdkit run from another cwd, holding decoy
#    images at the places a cwd-relative resolution would find);
#    equal file names in different directories are not a loop
#  - backing format extension present (honoured: a qcow2 file declared
#    raw is read as raw bytes, as QEMU does) and absent (probed)
#  - refused at start-up (during nbdkit start, no hang) naming the
#    chain: missing backing file, loop a->b->a, self loop, loop through
#    a symlink, chain deeper than chain-max-depth (and the default 64)
#  - chain-backing= serves an overlay over a copy of its base elsewhere
#    (the original base gone) or over another base, and gives a backing
#    file to an image that has none (chain-backing-format=raw too)
#  - chain-depth=0/1 cut the chain (QEMU: json: with "backing": null)
# Bytes and extents are compared with QEMU's view of the same chain.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp timeout
requires_python_nbd

cd "$tmpdir"
mkdir -p chain/sub chain/base run/sub base elsewhere d1 d2 d3 loops deep

# ---- relative names: chain/top -> sub/mid.qcow2 -> ../base/base.qcow2
$chainpy layer chain/base/base.qcow2 4M --seed 1 full
(cd chain/sub && $chainpy layer mid.qcow2 4M -b ../base/base.qcow2 -F qcow2 --seed 2 rand:20)
(cd chain && $chainpy layer top.qcow2 4M -o extended_l2=on -b sub/mid.qcow2 -F qcow2 \
    --seed 3 rand:20)
# decoys where a cwd-relative (run/) or top-relative resolution would look
$chainpy layer run/sub/mid.qcow2 4M --seed 91 full
$chainpy layer base/base.qcow2 4M --seed 92 full
$chainpy layer chain/base.qcow2 4M --seed 93 full

cd run
chain_compare ../chain/top.qcow2 ../chain/top.qcow2
CHAIN_REQUIRE=0,3 chain_extents ../chain/top.qcow2 ../chain/top.qcow2
cd /
chain_compare "$tmpdir/chain/top.qcow2" "$tmpdir/chain/top.qcow2"
cd "$tmpdir"

# same file name in three directories: not a loop
$chainpy layer d3/img.qcow2 2M --seed 4 full
(cd d2 && $chainpy layer img.qcow2 2M -b ../d3/img.qcow2 -F qcow2 --seed 5 rand:10)
(cd d1 && $chainpy layer img.qcow2 2M -b ../d2/img.qcow2 -F qcow2 --seed 6 rand:10)
chain_compare d1/img.qcow2 d1/img.qcow2

# ---- backing format extension absent: probe (qcow2, raw); present: honoured
$chainpy layer f-base.qcow2 2M --seed 7 full
$chainpy layer f-base.raw 2M --fmt raw --seed 8 full
$chainpy layer f-q.qcow2 2M -b f-base.qcow2 -F qcow2 --seed 9 rand:10
$chainpy layer f-r.qcow2 2M -b f-base.raw -F raw --seed 10 rand:10
$chainpy layer f-asraw.qcow2 2M -b f-base.qcow2 -F raw --seed 11 rand:10
$chainpy strip-backing-format f-q.qcow2
$chainpy strip-backing-format f-r.qcow2
for img in f-q.qcow2 f-r.qcow2; do
    qcx_expect_layout "$img" ext_backing_format -eq 0
    qemu-img info "$img" | grep -q '^backing file format' &&
        fail "$img still has a backing format"
    chain_compare "$img" "$img"
    chain_extents "$img" "$img"
done
chain_compare f-asraw.qcow2 f-asraw.qcow2
chain_extents f-asraw.qcow2 f-asraw.qcow2

# ---- refusals
qemu-img create -q -f qcow2 -u -b m-gone.qcow2 -F qcow2 m-mid.qcow2 2M
qemu-img create -q -f qcow2 -u -b m-mid.qcow2 -F qcow2 m-top.qcow2 2M
chain_expect_fail_start "missing backing file below the top" \
    'cannot open|no such file' 'm-gone\.qcow2' 'm-mid\.qcow2' -- m-top.qcow2
chain_expect_fail_start "missing backing file of the top" \
    'cannot open|no such file' 'm-gone\.qcow2' -- m-mid.qcow2

cd loops
qemu-img create -q -f qcow2 a.qcow2 1M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2
qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2
chain_expect_fail_start "loop a -> b -> a" 'loop' 'a\.qcow2' 'b\.qcow2' -- a.qcow2
qemu-img create -q -f qcow2 self.qcow2 1M
qemu-img rebase -u -b self.qcow2 -F qcow2 self.qcow2
chain_expect_fail_start "self loop" 'loop' 'self\.qcow2' -- self.qcow2
qemu-img create -q -f qcow2 s-a.qcow2 1M
qemu-img create -q -f qcow2 -b s-a.qcow2 -F qcow2 s-b.qcow2
ln -s s-a.qcow2 s-link.qcow2
qemu-img rebase -u -b s-link.qcow2 -F qcow2 s-a.qcow2
chain_expect_fail_start "loop through a symlink" 'loop' 's-a\.qcow2|s-link\.qcow2' -- s-b.qcow2
mkdir dir
ln -s .. dir/up
qemu-img create -q -f qcow2 -u -b dir/up/t-b.qcow2 -F qcow2 t-a.qcow2 1M
qemu-img create -q -f qcow2 -u -b t-a.qcow2 -F qcow2 t-b.qcow2 1M
chain_expect_fail_start "loop through a symlinked directory" 'loop' 't-a\.qcow2' -- t-b.qcow2
cd ..

# depth: c0 <- c1 <- ... <- c65 (cN has N backing layers)
cd deep
qemu-img create -q -f qcow2 -o cluster_size=65536 c0.qcow2 1M
qemu-io -f qcow2 c0.qcow2 -c "write -q -P 0x40 0 64k" >/dev/null
for i in $(seq 1 65); do
    qemu-img create -q -f qcow2 -b c$((i - 1)).qcow2 -F qcow2 c$i.qcow2 1M
done
qemu-io -f qcow2 c5.qcow2 -c "write -q -P 0x45 64k 4k" >/dev/null
chain_compare c5.qcow2 c5.qcow2 chain-max-depth=5
chain_expect_fail_start "5 backing layers, chain-max-depth=4" 'depth|deep' -- c5.qcow2 chain-max-depth=4
chain_compare c64.qcow2 c64.qcow2
chain_expect_fail_start "65 backing layers, default chain-max-depth (64)" \
    'depth|deep' 'c65\.qcow2 -> [^ ]*c64\.qcow2 -> \.\.\. \(62 more\) -> [^ ]*c1\.qcow2 -> [^ ]*c0\.qcow2$' \
    -- c65.qcow2
cd ..

# ---- the same refusals under a long directory path (a CI clone's path
# is longer than a developer's; messages were once cut at 256 bytes):
# every name the message must show is there, and the line ends where it
# should, not in a cut
long=$tmpdir/$(printf 'p%.0s' {1..100})/$(printf 'q%.0s' {1..100})/$(printf 'r%.0s' {1..100})
mkdir -p "$long"
cd "$long"
qemu-img create -q -f qcow2 -u -b m-gone.qcow2 -F qcow2 m-mid.qcow2 2M
qemu-img create -q -f qcow2 -u -b m-mid.qcow2 -F qcow2 m-top.qcow2 2M
chain_expect_fail_start "long path: missing backing file below the top" \
    "cannot open backing file '[^ ]*/m-gone\.qcow2'" \
    '\(chain: [^ ]*m-top\.qcow2 -> [^ ]*m-mid\.qcow2\)$' -- m-top.qcow2
qemu-img create -q -f qcow2 a.qcow2 1M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2
qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2
chain_expect_fail_start "long path: loop a -> b -> a" \
    'loop: [^ ]*a\.qcow2 -> [^ ]*b\.qcow2 -> [^ ]*a\.qcow2$' -- a.qcow2
qemu-img create -q -f qcow2 l0.qcow2 1M
for i in $(seq 1 7); do
    qemu-img create -q -f qcow2 -b l$((i - 1)).qcow2 -F qcow2 l$i.qcow2 1M
done
chain_expect_fail_start "long path: 7 backing layers, chain-max-depth=6" \
    'l7\.qcow2 -> [^ ]*l6\.qcow2 -> \.\.\. \(4 more\) -> [^ ]*l1\.qcow2 -> [^ ]*l0\.qcow2$' \
    -- l7.qcow2 chain-max-depth=6
cd "$tmpdir"

# ---- chain-backing=: an overlay over a copy of its base elsewhere
$chainpy layer o-base.qcow2 3M --seed 12 full
$chainpy layer o-top.qcow2 3M -o extended_l2=on -b o-base.qcow2 -F qcow2 --seed 13 rand:20
mv o-base.qcow2 elsewhere/copy.qcow2
chain_expect_fail_start "overlay whose base moved away" 'cannot open|no such file' 'o-base' -- o-top.qcow2
cd run
spec=$(chain_spec ../o-top.qcow2 - ../elsewhere/copy.qcow2 qcow2)
chain_compare ../o-top.qcow2 "$spec" chain-backing=../elsewhere/copy.qcow2
chain_extents ../o-top.qcow2 "$spec" chain-backing=../elsewhere/copy.qcow2 \
    chain-backing-format=qcow2
cd ..
# ... over another base, and over a raw file
$chainpy layer other.qcow2 3M+4k -o cluster_size=16384 --seed 14 full u:1M:64k
$chainpy layer other.raw 2M --fmt raw --seed 15 full
spec=$(chain_spec o-top.qcow2 - other.qcow2)
chain_compare o-top.qcow2 "$spec" chain-backing=other.qcow2
chain_extents o-top.qcow2 "$spec" chain-backing=other.qcow2
spec=$(chain_spec o-top.qcow2 - other.raw raw)
chain_compare o-top.qcow2 "$spec" chain-backing=other.raw chain-backing-format=raw
chain_extents o-top.qcow2 "$spec" chain-backing=other.raw chain-backing-format=raw
# ... to an image without a backing file
$chainpy layer alone.qcow2 3M --seed 16 d:0:100k z:1M:64k d:2M+1:5000 c:2M+512k:64k
qemu-img info alone.qcow2 | grep -q '^backing file' && fail "alone.qcow2 has a backing file"
spec=$(chain_spec alone.qcow2 - other.qcow2 qcow2)
CHAIN_REQUIRE=0,3 chain_extents alone.qcow2 "$spec" chain-backing=other.qcow2
chain_compare alone.qcow2 "$spec" chain-backing=other.qcow2
spec=$(chain_spec alone.qcow2 - other.raw raw)
chain_compare alone.qcow2 "$spec" chain-backing=other.raw chain-backing-format=raw
# the image itself is not changed by any of this
qemu-img info alone.qcow2 | grep -q '^backing file' && fail "alone.qcow2 got a backing file"

# ---- chain-depth= cuts the chain
for d in 0 1; do
    spec=$(chain_spec chain/top.qcow2 $d)
    CHAIN_REQUIRE=0,3 chain_extents chain/top.qcow2 "$spec" chain-depth=$d
    chain_compare chain/top.qcow2 "$spec" chain-depth=$d
done
chain_compare chain/top.qcow2 chain/top.qcow2 chain-depth=2
echo "test-chain-resolve: OK"
