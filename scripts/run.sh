#!/usr/bin/env bash
# run.sh [IMAGE [PLUGIN-ARGS...]]
#
# Serve a qcow2 image read-only with the qcow2x plugin, in the foreground,
# on TCP localhost (127.0.0.1), port 10809 or the next free port.
# Without IMAGE, a small demo image is made first with
# scripts/make-demo-image.sh (in $QCX_DEMO_DIR, default
# ${TMPDIR:-/tmp}/qcow2x-demo-$UID).  Extra arguments are passed to the
# plugin, e.g.  run.sh overlay.qcow2 layer-only=true
# Set QCX_PORT to choose the port.  Ctrl-C stops the server.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=$top/plugin/nbdkit-qcow2x-plugin.so

die() { echo "run.sh: $*" >&2; exit 1; }

command -v nbdkit >/dev/null 2>&1 || die "nbdkit not found (run 'make deps')"

if [ ! -f "$plugin" ]; then
    echo "run.sh: $plugin not built yet, running make" >&2
    make -C "$top" all >&2 || die "build failed"
fi

if [ $# -ge 1 ] && [ -n "$1" ]; then
    image=$1
    shift
    [ -f "$image" ] || die "$image: no such file"
else
    [ $# -ge 1 ] && shift       # an empty IMAGE (make run IMAGE=) means demo
    demodir=${QCX_DEMO_DIR:-${TMPDIR:-/tmp}/qcow2x-demo-$(id -u)}
    mkdir -p "$demodir"
    image=$demodir/demo.qcow2
    echo "run.sh: making demo image $image" >&2
    "$top/scripts/make-demo-image.sh" "$image"
fi
image=$(cd "$(dirname "$image")" && pwd)/$(basename "$image")

# Pick a port: 10809 (the NBD default) unless something answers there.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${QCX_PORT:-}" ]; then
    port=$QCX_PORT
else
    port=10809
    while port_busy "$port"; do
        port=$((port + 1))
        [ "$port" -lt 10909 ] || die "no free port in 10809..10908"
    done
fi
uri=nbd://127.0.0.1:$port

cat <<MSG
qcow2x: serving $image (read-only)
URI: $uri

In another terminal, try:
  nbdinfo $uri
  nbdinfo --map $uri
  nbdsh -u $uri -c 'print(h.pread(512, 0))'
  nbdcopy $uri out.raw
and compare with:
  qemu-img map --output=json $image
  qemu-img convert -O raw $image expected.raw && cmp out.raw expected.raw

Press Ctrl-C to stop the server.
MSG

exec nbdkit -f -r -i 127.0.0.1 -p "$port" "$plugin" file="$image" "$@"
