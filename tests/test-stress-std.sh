#!/usr/bin/env bash
# STRESS: 8 connections x 16 in-flight requests, overlapping, standard L2.
#
# A 1 MiB image with 64 KiB standard-L2 clusters (the allocation unit is
# the whole cluster), fresh: every one of the 128 requests in flight races
# on allocating (and copy-on-writing the rest of) one of 16 clusters.
# tests/lib/stress.py (see test-stress-ext.sh): aio write/read/zero/trim/
# flush/block status on 8 connections x 16 in flight, a fixed number of
# requests (fixed seed), every read checked byte by byte against the set of
# values NBD's ordering rules allow; a quiet phase with exact comparisons.
# Then a second session on the now allocated image.  After each session:
# qemu-img check clean (no errors, no leaks) and qemu-img compare with the
# exact final model.  Also run by `make check-tsan`.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=off "$img" 1M
qcx_qemu_raw "$img" "$tmpdir/m0.raw"

for s in 1 2; do
    printf -v cmd '%q %q "$uri" --ref %q --out %q --image %q --seed %q --ops %q' \
        "$PY" "$srcdir/lib/stress.py" "$tmpdir/m$((s - 1)).raw" \
        "$tmpdir/m$s.raw" "$img" $((200 + s)) "${STRESS_OPS:-6000}"
    qcx_nbdkit_rw "$img" --run "$cmd" ||
        fail "stress session $s failed (reproduce: QCX_KEEP_TMP=1 $0)"
    "$PY" "$srcdir/lib/workload.py" verify "$img" "$tmpdir/m$s.raw" ||
        fail "session $s: image not clean, or differs from the final model"
done
