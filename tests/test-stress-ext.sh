#!/usr/bin/env bash
# STRESS: 8 connections x 16 in-flight requests, overlapping, extended L2.
#
# A 2 MiB image, 64 KiB clusters with extended L2 entries (2 KiB
# subclusters), prefilled by qemu-io (data, zero, discarded and compressed
# clusters).  tests/lib/stress.py keeps 8 connections x 16 requests in
# flight (aio write/read/zero/trim/flush/block status, FUA sometimes) aimed
# at the same clusters and subclusters (a moving 2-cluster hot spot), for a
# fixed number of requests (fixed seed).  Every read is checked byte by
# byte against the set of values NBD's ordering rules allow (settled
# writes not superseded + requests concurrent with the read).  Then a
# quiet phase (whole-export reads on every connection, non-overlapping
# writes everywhere, exact comparison, block status vs data), and on the
# image qemu-img check (clean: no errors, no leaks) and qemu-img compare
# with the exact final model.  Also run by `make check-tsan`.
# STRESS_OPS / STRESS_SEED override the request count / seed.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on "$img" 2M
"$PY" "$srcdir/lib/workload.py" prefill "$img" --seed 71 --tmpdir "$tmpdir" \
    --budget 1M
qcx_qemu_raw "$img" "$tmpdir/start.raw"

printf -v cmd '%q %q "$uri" --ref %q --out %q --image %q --seed %q --ops %q' \
    "$PY" "$srcdir/lib/stress.py" "$tmpdir/start.raw" "$tmpdir/final.raw" \
    "$img" 101 "${STRESS_OPS:-10000}"
qcx_nbdkit_rw "$img" --run "$cmd" ||
    fail "stress run failed (reproduce: QCX_KEEP_TMP=1 $0)"
"$PY" "$srcdir/lib/workload.py" verify "$img" "$tmpdir/final.raw" ||
    fail "image not clean, or differs from the final model"
