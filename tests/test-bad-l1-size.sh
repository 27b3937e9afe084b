#!/usr/bin/env bash
# qcow2x bad input: l1_size too small for the virtual size, or absurdly large, is refused fast
#   ("L1 table", "l1_size") under a 1 GiB address-space limit
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

requires_python_nbd
# The base image (8 MiB, 4 KiB clusters) needs l1_size 4.  Control: with the right value it
# must be served under the same address-space limit, so the failures below are the plugin's.
bad l1-size-4 "$tmpdir/good.qcow2"
qcx_qemu_raw "$tmpdir/good.qcow2" "$tmpdir/good.raw"
bad run-ok --plugin "$PLUGIN" --vmem-mib 1024 --expect "$tmpdir/good.raw" "$tmpdir/good.qcow2" || rc=1
for n in 3 0; do
    bad refuse l1-size-$n --vmem-mib 1024 --phrase "L1 table" --phrase "l1_size" || rc=1
done
for n in 0x7fffffff 0xffffffff 0x2000000; do
    bad refuse l1-size-$n --vmem-mib 1024 --max-rss-mib 128 \
        --phrase "L1 table" --phrase "l1_size" || rc=1
done
exit $rc
