#!/usr/bin/env bash
# qcow2x bad input: a compressed cluster descriptor pointing outside the file: EIO for that
#   cluster ("compressed"), the connection stays up, other clusters read correctly
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

requires_python_nbd
# 1 MiB, 64 KiB clusters, compressed; the descriptor of guest cluster 1 (64-128 KiB) points
# 1 GiB beyond EOF.  zlib and zstd images.
for c in compressed-beyond-eof compressed-beyond-eof-zstd; do
    bad $c "$tmpdir/$c.qcow2" --good "$tmpdir/$c.good.qcow2"
    qcx_qemu_raw "$tmpdir/$c.good.qcow2" "$tmpdir/$c.good.raw"
    bad run-eio --plugin "$PLUGIN" --what $c --expect "$tmpdir/$c.good.raw" \
        --bad 64K:64K --log-phrase "compressed" "$tmpdir/$c.qcow2" || rc=1
done
exit $rc
