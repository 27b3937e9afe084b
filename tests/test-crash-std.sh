#!/usr/bin/env bash
# CRASH: standard L2, 4 KiB clusters (many L2 tables), prefilled image.
#
# tests/lib/crashtest.py: ${CRASH_ITERATIONS:-5} times (fixed seeds), start the
# server (pidfile + unix socket, not captive), run a random workload with
# periodic flushes and FUA writes on 2 connections, SIGKILL the server at a
# random moment (or, in about 40% of the iterations, make the Nth write to
# the file and all later ones fail with the plugin's inject-error= test
# parameter, then SIGKILL: the file holds the first N-1 writes, as after a
# crash at that point); then qemu-img check must report no corruption (exit 0, or
# 3 = leaks only), every byte acknowledged before the last completed flush
# (or by a completed FUA request) and not touched since must read back, and
# the crashed image must reopen, take more writes and shut down cleanly.
# Flushes are sent either alone (barrier) or among other requests.
# CRASH_ITERATIONS=N for more iterations; CRASH_OLD_OR_NEW=1 also requires
# bytes written after the last flush to read back as an old or a new value,
# never data from elsewhere.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

"$PY" "$srcdir/lib/crashtest.py" --plugin "$PLUGIN" --dir "$tmpdir" \
    --create cluster_size=4k,extended_l2=off --size 6M --seed 500 --prefill ||
    fail "crash test failed (reproduce: CRASH_ITERATIONS=N QCX_KEEP_TMP=1 $0)"
