#!/usr/bin/env bash
# CRASH: through the qcow2xchain filter (copy-on-write from a backing file).
#
# tests/test-crash-{ext,std,refcount1}.sh cover the plugin alone; this one
# covers the filter's copy-on-write path, which issue 5 lists too.  An
# empty overlay over a qcow2 base full of random data, so almost every
# write is a copy-on-write: the filter reads the base and writes the
# widened unit (a 2 KiB subcluster on the extended-L2 overlay, the whole
# 64 KiB cluster on the standard-L2 one).  tests/lib/crashtest.py, unchanged,
# ${CRASH_ITERATIONS:-5} times per overlay (fixed seeds): random workload
# with flushes and FUA on 2 connections, SIGKILL at a random moment, then
# qemu-img check of the overlay without corruption (leaks allowed), every
# byte acknowledged by a completed flush or FUA reads back through
# qemu-img (QEMU resolving the chain), and the crashed overlay reopens
# through the filter, takes more writes and shuts down cleanly.  The
# filter is put in front of the plugin by an nbdkit wrapper on PATH
# (crashtest.py starts `nbdkit ... PLUGIN file=IMG`).  The base must not
# change.  `make check-crash` runs it with CRASH_ITERATIONS=100.
. "$(dirname "$0")/functions.sh"
. "$srcdir/lib/chainlib.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit sha256sum
requires_python_nbd
_chain_check_built

real_nbdkit=$(command -v nbdkit)
mkdir -p "$tmpdir/bin"
cat > "$tmpdir/bin/nbdkit" <<WRAP
#!/bin/sh
exec "$real_nbdkit" --filter="$FILTER" "\$@"
WRAP
chmod +x "$tmpdir/bin/nbdkit"
export PATH=$tmpdir/bin:$PATH

"$PY" -c 'import random, sys
d = bytearray(random.Random(8).randbytes(6 << 20))
d[0x100000:0x120000] = bytes(0x20000)
sys.stdout.buffer.write(d)' > "$tmpdir/base.raw"
qemu-img convert -q -f raw -O qcow2 -o cluster_size=64k "$tmpdir/base.raw" \
    "$tmpdir/base.qcow2"
rm -f "$tmpdir/base.raw"
sha256sum "$tmpdir/base.qcow2" > "$tmpdir/base.sha256"
bk=backing_file=$tmpdir/base.qcow2,backing_fmt=qcow2

"$PY" "$srcdir/lib/crashtest.py" --plugin "$PLUGIN" --dir "$tmpdir/ext" \
    --create "cluster_size=64k,extended_l2=on,$bk" --size 6M --seed 700 ||
    fail "crash test through the filter (extended L2) failed (reproduce: CRASH_ITERATIONS=N QCX_KEEP_TMP=1 $0)"
"$PY" "$srcdir/lib/crashtest.py" --plugin "$PLUGIN" --dir "$tmpdir/std" \
    --create "cluster_size=64k,extended_l2=off,$bk" --size 6M --seed 800 ||
    fail "crash test through the filter (standard L2) failed (reproduce: CRASH_ITERATIONS=N QCX_KEEP_TMP=1 $0)"
sha256sum -c "$tmpdir/base.sha256" || fail "the base image changed"
