#!/usr/bin/env bash
# STRESS: 8 connections x 16 in flight on 512-byte clusters (metadata growth).
#
# A 2 MiB image with 512-byte clusters (standard L2): an L2 table maps
# 32 KiB and a refcount block covers 128 KiB of the file, so the
# concurrent, overlapping requests of tests/lib/stress.py (see
# test-stress-ext.sh) keep allocating L2 tables and refcount blocks while
# other requests read, trim and free clusters.  Every read checked against
# the set of values NBD's ordering rules allow; quiet phase with exact
# comparisons; qemu-img check clean and qemu-img compare identical.  Also
# run by `make check-tsan`.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 "$img" 2M
qcx_qemu_raw "$img" "$tmpdir/start.raw"
before=$("$PY" "$srcdir/lib/workload.py" header "$img")

printf -v cmd '%q %q "$uri" --ref %q --out %q --image %q --seed %q --ops %q --max-len 48K' \
    "$PY" "$srcdir/lib/stress.py" "$tmpdir/start.raw" "$tmpdir/final.raw" \
    "$img" 301 "${STRESS_OPS:-6000}"
qcx_nbdkit_rw "$img" --run "$cmd" ||
    fail "stress run failed (reproduce: QCX_KEEP_TMP=1 $0)"
"$PY" "$srcdir/lib/workload.py" verify "$img" "$tmpdir/final.raw" ||
    fail "image not clean, or differs from the final model"
after=$("$PY" "$srcdir/lib/workload.py" header "$img")
echo "refcount structures: before $before, after $after"
