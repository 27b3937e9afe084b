#!/usr/bin/env bash
# ERRINJECT: write/sync/truncate failures (ENOSPC, EIO, EDQUOT), extended L2.
#
# tests/lib/errinject.py: for each NTH of a sweep, serve a fresh copy of an
# 8 MiB extended-L2 image (64 KiB clusters) with the plugin's
# inject-error=OP:NTH:ERRNO[:persistent] and apply the same deterministic
# workload (writes, zeros, trims, FUA, flushes, reads; 2 connections,
# synchronous).  Checked: the failing request fails with the errno and the
# connection stays up; the NEXT flush reports a write error (never
# pretends success); a one-shot fault leaves the server working (later
# requests and the final flushes succeed); reads return the model except
# where a failed request wrote; qemu-img check finds no corruption (leaks
# allowed); after a clean shutdown qemu-img convert equals the model and
# the image reopens; after SIGKILL (right after the flush that reported the
# error) or with a persistent fault, everything acknowledged by a
# successful flush or FUA reads back.  Sweeps: write NTH 1..40 (every one
# must make a request fail) and sparser up to 160, kill and persistent
# variants, sync 1..8, truncate 1..4.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

"$PY" "$srcdir/lib/errinject.py" --plugin "$PLUGIN" --dir "$tmpdir" \
    --create cluster_size=64k,extended_l2=on --size 8M --seed 11 \
    --sweep write:1-40 --sweep write:45-160/10 --sweep write:2-40/4:kill \
    --sweep write:1,3,6,10,20,35:persistent --sweep sync:1-8 \
    --sweep truncate:1-4 --must-trigger write:40 \
    --expect-hit "data cluster" --expect-hit "L2 table" \
    --expect-hit "refcount block" ||
    fail "error injection sweep failed (one run: errinject.py ... --sweep SPEC --keep)"
