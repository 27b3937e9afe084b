#!/usr/bin/env bash
# qcow2x hostile image: compressed descriptors that run past the file or over other clusters, served
#   without -r: read-only with an "inconsistent" warning (or a clear refusal); writes fail
#   with EPERM; the file is unchanged; other clusters read as qemu-img convert
#   - compressed-beyond-eof: host offset 1 GiB beyond EOF (reads of that cluster: EIO)
#   - compressed-nsect-beyond-eof: the last stored cluster's sector count at the maximum
#     the field holds (2^(cluster_bits-8) sectors = 2 clusters; more cannot be encoded):
#     runs ~100 KiB past EOF (that cluster: EIO or QEMU's bytes)
#   - compressed-nsect-overlap: the same over a normal data cluster stored after it, inside
#     the file (everything, that cluster included, reads as QEMU reads it)
# (images from tests/lib/badimage.py; see its header for what run-hostile / run-write-safe check)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

c=compressed-beyond-eof
bad $c "$tmpdir/$c.qcow2" --good "$tmpdir/$c.good.qcow2"
qcx_qemu_raw "$tmpdir/$c.good.qcow2" "$tmpdir/$c.good.raw"
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.good.raw" --bad 64K:64K \
    --write-at 64K --write-at 320K "$tmpdir/$c.qcow2" || rc=1

c=compressed-nsect-beyond-eof
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
last=$(bad last-compressed "$tmpdir/$c.qcow2")
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
    --maybe-bad "$last:64K" --write-at "$last" --write-at 320K "$tmpdir/$c.qcow2" || rc=1

c=compressed-nsect-overlap
bad $c "$tmpdir/$c.qcow2"
qcx_qemu_raw "$tmpdir/$c.qcow2" "$tmpdir/$c.raw"
last=$(bad last-compressed "$tmpdir/$c.qcow2")
bad run-hostile --plugin "$PLUGIN" --case $c --expect "$tmpdir/$c.raw" \
    --write-at "$last" --write-at 320K "$tmpdir/$c.qcow2" || rc=1
exit $rc
