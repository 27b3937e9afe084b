#!/usr/bin/env bash
# run.sh [IMAGE [PARAM=VALUE...]]
#
# Serve a qcow2 image with the qcow2x plugin, in the foreground, on TCP
# localhost (127.0.0.1), port 10809 or the next free port.
#
# Without IMAGE, a small demo image is made first with
# scripts/make-demo-image.sh (in $QCX_DEMO_DIR, default
# ${TMPDIR:-/tmp}/qcow2x-demo-$UID, remade at every run) and served
# read-write.  An IMAGE of yours is served read-only, unless QCX_RW=1.
# An IMAGE that names a backing file is served with its whole chain
# through the qcow2xchain filter (unless layer-only=true is given).
# Extra arguments are passed to the plugin (and the filter), e.g.
#   run.sh overlay.qcow2 layer-only=true
#   QCX_RW=1 run.sh overlay.qcow2 cow-unit=cluster
# Set QCX_PORT to choose the port.  Ctrl-C stops the server.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=$top/plugin/nbdkit-qcow2x-plugin.so
filter=$top/filter/nbdkit-qcow2xchain-filter.so

die() { echo "run.sh: $*" >&2; exit 1; }

command -v nbdkit >/dev/null 2>&1 || die "nbdkit not found (run 'make deps')"

if [ ! -f "$plugin" ] || [ ! -f "$filter" ]; then
    echo "run.sh: plugin or filter not built yet, running make" >&2
    make -C "$top" all >&2 || die "build failed"
fi

readonly=1
if [ $# -ge 1 ] && [ -n "$1" ]; then
    image=$1
    shift
    [ -f "$image" ] || die "$image: no such file"
    [ "${QCX_RW:-0}" = 1 ] && readonly=0
else
    [ $# -ge 1 ] && shift       # an empty IMAGE (make run IMAGE=) means demo
    demodir=${QCX_DEMO_DIR:-${TMPDIR:-/tmp}/qcow2x-demo-$(id -u)}
    mkdir -p "$demodir"
    image=$demodir/demo.qcow2
    echo "run.sh: making demo image $image" >&2
    "$top/scripts/make-demo-image.sh" "$image"
    readonly=0
fi
image=$(cd "$(dirname "$image")" && pwd)/$(basename "$image")

# Does the image name a backing file?  (qcow2 magic, and a non-zero
# backing_file_offset at header bytes 8-15.)
has_backing=0
magic=$(od -An -tx1 -N4 "$image" | tr -d ' \n')
if [ "$magic" = 514649fb ] &&
   [ -n "$(od -An -tx1 -j8 -N8 "$image" | tr -d ' \n0')" ]; then
    has_backing=1
fi
layer_only=0
for a in "$@"; do
    case "$a" in
        layer-only=true|layer-only=1|layer-only=yes|layer-only=on) layer_only=1 ;;
    esac
done

nbdkit_args=(-f -i 127.0.0.1)
mode=read-write
if [ "$readonly" = 1 ]; then
    nbdkit_args+=(-r)
    mode=read-only
fi
chain=
if [ "$has_backing" = 1 ] && [ "$layer_only" = 0 ]; then
    nbdkit_args+=(--filter="$filter")
    chain=" (the whole backing chain, through the qcow2xchain filter)"
fi

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
qcow2x: serving $image ($mode)$chain
URI: $uri

In another terminal, try:
  nbdinfo $uri
  nbdinfo --map $uri
  nbdsh -u $uri -c 'print(h.pread(512, 0))'
MSG
if [ "$readonly" = 0 ]; then
    cat <<MSG
  nbdsh -u $uri -c 'h.pwrite(b"hello", 65536)' -c 'h.flush()'
MSG
fi
cat <<MSG
  nbdcopy $uri out.raw
and compare with:
  qemu-img map --output=json $image
  qemu-img convert -O raw $image expected.raw && cmp out.raw expected.raw
MSG
if [ "$readonly" = 0 ]; then
    cat <<MSG
After stopping the server:
  qemu-img check $image
MSG
fi
echo
echo "Press Ctrl-C to stop the server."

exec nbdkit "${nbdkit_args[@]}" -p "$port" "$plugin" file="$image" "$@"
