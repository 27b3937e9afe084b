#!/bin/bash
# nbdkit with a sanitizer runtime ($QCX_SAN_PRELOAD) preloaded into
# nbdkit ONLY.  An instrumented plugin needs its runtime loaded before
# nbdkit starts, but shells segfault with libtsan preloaded, and nbdkit
# runs --run CMD through /bin/sh -c, which would inherit LD_PRELOAD.  So
# captive mode is emulated: nbdkit (preloaded) serves a private socket in
# the background, CMD runs without LD_PRELOAD with $uri, $nbd and
# $unixsocket set, then nbdkit is stopped; the exit status is CMD's, or
# nbdkit's if the server failed (e.g. a sanitizer report aborted it).
# Installed as "nbdkit" first on PATH by `make check-asan/check-tsan`.
PRELOAD=${QCX_SAN_PRELOAD:?QCX_SAN_PRELOAD is not set}
REAL=/usr/bin/nbdkit
args=() run= usock=0
while [ $# -gt 0 ]; do
    case "$1" in
        --run) run=$2; shift 2 ;;
        --run=*) run=${1#--run=}; shift ;;
        -U) if [ "$2" = - ]; then usock=1; else args+=(-U "$2"); fi; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$run" ]; then
    [ $usock = 1 ] && args=(-U - "${args[@]}")
    LD_PRELOAD="$PRELOAD${LD_PRELOAD:+ $LD_PRELOAD}" exec "$REAL" "${args[@]}"
fi
d=$(mktemp -d /tmp/qcx-san.XXXXXX)
trap 'rm -rf "$d"' EXIT
LD_PRELOAD="$PRELOAD${LD_PRELOAD:+ $LD_PRELOAD}" \
    "$REAL" -f -U "$d/sock" -P "$d/pid" "${args[@]}" </dev/null \
    2> >(tee "$d/stderr" >&2) &
pid=$!
waited=0
while [ ! -s "$d/pid" ] || [ ! -S "$d/sock" ]; do
    if ! kill -0 $pid 2>/dev/null; then
        wait $pid; exit $?
    fi
    # A server that refused to start (it printed an error) but has not
    # exited after 1.5 s is stuck in exit: with the ASan runtime preloaded,
    # glibc's exit handlers can deadlock on the locale lock (seen in
    # libp11-kit's destructor, loaded by nbdkit for TLS).  Treat it as
    # the refusal it is.
    if [ $waited -ge 30 ] && grep -q "error:" "$d/stderr" 2>/dev/null; then
        kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null
        exit 1
    fi
    sleep 0.05
    waited=$((waited + 1))
done
uri="nbd+unix:///?socket=$d/sock" nbd="nbd+unix:///?socket=$d/sock" \
unixsocket="$d/sock" exportname= tls=0 \
    /bin/sh -c "$run" </dev/null
rc=$?
kill -TERM $pid 2>/dev/null
wait $pid
nrc=$?
if [ $nrc -ne 0 ]; then
    echo "nbdkit (sanitizer wrapper): server exited with status $nrc" >&2
    [ $rc -eq 0 ] && rc=$nrc
fi
exit $rc
