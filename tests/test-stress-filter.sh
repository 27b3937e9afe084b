#!/usr/bin/env bash
# STRESS: 8 connections x 16 in flight through the qcow2xchain filter.
#
# A 2 MiB qcow2 base full of random data (plus a zero cluster), and on it
# an empty overlay: first extended L2 (64 KiB clusters, cow-unit=subcluster:
# partial writes are widened to 2 KiB with the missing bytes copied from
# the base), then standard L2 (widened to the 64 KiB cluster).
# tests/lib/stress.py (see test-stress-ext.sh): overlapping aio
# write/read/zero/trim/flush/block status on 8 connections x 16 in flight,
# so concurrent partial writes race on copying the same units up from the
# base while reads of the same bytes are in flight; every read checked
# against the set of values NBD's ordering rules allow (base data included
# until overwritten); quiet phase with exact comparisons.  Then qemu-img
# check of the overlay clean, qemu-img compare (QEMU resolving the chain)
# identical to the final model, base unchanged.  Also run by `make check-tsan`.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit sha256sum
requires_python_nbd
_chain_check_built

cd "$tmpdir"
"$PY" -c 'import random, sys
r = random.Random(7)
d = bytearray(r.randbytes(2 << 20))
d[0x50000:0x60000] = bytes(0x10000)
sys.stdout.buffer.write(d)' > base.raw
qemu-img convert -q -f raw -O qcow2 -o cluster_size=64k base.raw base.qcow2
sha256sum base.qcow2 > base.sha256

n=0
for opts in extended_l2=on extended_l2=off; do
    n=$((n + 1))
    top=top$n.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=64k,$opts -b base.qcow2 -F qcow2 "$top"
    qemu-img convert -O raw "$top" start$n.raw
    printf -v cmd '%q %q "$uri" --ref %q --out %q --image %q --seed %q --ops %q' \
        "$PY" "$srcdir/lib/stress.py" start$n.raw final$n.raw "$top" \
        $((400 + n)) "${STRESS_OPS:-6000}"
    chain_nbdkit_rw "$top" --run "$cmd" ||
        fail "stress through the filter ($opts) failed (reproduce: QCX_KEEP_TMP=1 $0)"
    "$PY" "$srcdir/lib/workload.py" verify "$top" final$n.raw ||
        fail "$opts overlay: not clean, or the chain differs from the final model"
done
sha256sum -c base.sha256 || fail "the base image changed"
