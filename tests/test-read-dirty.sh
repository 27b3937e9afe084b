#!/usr/bin/env bash
# READ: an image left dirty by a crash with lazy refcounts (incompatible
# bit 0 set, refcounts stale: qemu-img check reports errors).  Reading
# needs no refcounts, and -r writes nothing (the repair before the first
# write is test-write-dirty-repair.sh); served with -r it reads like QEMU
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp
requires_python_nbd

img=$tmpdir/dirty.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$img" 4M
# qemu-io aborts (simulated crash) after the writes: the dirty bit stays.
qemu-io -f qcow2 "$img" -c "write -q -P 0x07 0 1M" -c "write -q -P 0x08 2M 300k" \
    -c "flush" -c "abort" >/dev/null 2>&1 || true
qcx_expect_layout "$img" dirty -eq 1
qcx_qemu_raw "$img" "$tmpdir/q.raw"
[ "$(od -A n -t x1 -N 1 "$tmpdir/q.raw" | tr -d ' ')" = 07 ] ||
    fail "test bug: QEMU does not see the data written before the crash"
qcx_compare_with_qemu "$img"
