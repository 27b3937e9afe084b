#!/usr/bin/env bash
# scripts/run.sh (what `make run` runs), as a user would use it:
#   1. without IMAGE: it makes the demo image (scripts/make-demo-image.sh)
#      and serves it read-write in the foreground; we wait for the URI it
#      prints, run the ready-to-paste commands it prints (nbdinfo --map,
#      nbdsh pread, nbdcopy, nbdsh pwrite) exactly as printed, and check
#      them against qemu-img convert / qemu-img map of the demo image;
#      the export must be writable and the right size; SIGTERM must stop
#      the server, which leaves the image qemu-img check clean.
#   2. with IMAGE (and QCX_PORT): it serves that image read-only (writes
#      fail); bytes checked again with nbdcopy.
#   3. with IMAGE and QCX_RW=1: read-write; a write lands in the image.
#   4. with an IMAGE that has a backing file: the whole chain, through
#      the qcow2xchain filter (bytes = qemu-img convert of the overlay);
#      with layer-only=true, the layer alone.
# The demo image itself must be the promised mix: extended L2, zstd,
# compressed clusters, zero subclusters and unallocated space.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit qemu-img qemu-io nbdinfo nbdcopy nbdsh timeout
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN"

run_sh=$top/scripts/run.sh
export QCX_DEMO_DIR=$tmpdir/demo

# start_server OUTFILE [ARGS...]: run.sh in the background under timeout;
# sets $server_pid and $uri once the URI is printed and nbdinfo connects.
server_pid=
start_server ()
{
    local out=$1
    shift
    ( cd "$tmpdir" && exec timeout 300 "$run_sh" "$@" ) >"$out" 2>"$out.err" &
    server_pid=$!
    cleanup_fn stop_server "$server_pid"
    uri=
    local i
    for i in $(seq 1 600); do
        uri=$(sed -n 's/^URI: //p' "$out" | head -n 1)
        [ -n "$uri" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$uri" ]; then
        cat "$out" "$out.err" >&2
        fail "run.sh printed no URI"
    fi
    for i in $(seq 1 300); do
        nbdinfo --size "$uri" >/dev/null 2>&1 && return 0
        if ! kill -0 "$server_pid" 2>/dev/null; then
            cat "$out" "$out.err" >&2
            fail "run.sh exited before serving"
        fi
        sleep 0.1
    done
    cat "$out" "$out.err" >&2
    fail "cannot connect to $uri"
}

stop_server ()
{
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    # timeout(1) forwards SIGTERM to nbdkit (run.sh execs it).
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# printed_cmd OUT PREFIX: the line printed by run.sh starting with PREFIX.
printed_cmd ()
{
    local line
    line=$(grep -E "^  $2 " "$1" | head -n 1 | sed 's/^  //')
    [ -n "$line" ] || fail "run.sh did not print a '$2' line"
    echo "$line"
}

# ---- 1. the demo ----
out=$tmpdir/run1.out
start_server "$out"
cat "$out"
demo=$(sed -n 's/^qcow2x: serving \(.*\) (read-write)$/\1/p' "$out")
[ "$demo" = "$QCX_DEMO_DIR/demo.qcow2" ] ||
    fail "run.sh served '$demo', expected the demo image in \$QCX_DEMO_DIR"
case "$uri" in
    nbd://127.0.0.1:[0-9]*) ;;
    *) fail "unexpected URI $uri" ;;
esac

# The demo image has what make-demo-image.sh promises.
info=$(qemu-img info --output=json "$demo")
grep -q '"extended-l2": true' <<< "$info" || fail "demo image: no extended L2"
grep -q '"compression-type": "zstd"' <<< "$info" || fail "demo image: not zstd"
grep -q '"compat": "1.1"' <<< "$info" || fail "demo image: not qcow2 v3"
qemu-img check -q "$demo" || fail "demo image: qemu-img check failed"
qemu-img map --output=json "$demo" > "$tmpdir/demo.map"
"$PY" - "$tmpdir/demo.map" <<'EOF' || fail "demo image lacks a promised region type"
import json, sys
m = json.load(open(sys.argv[1]))
kinds = {
    "normal data": any(e["data"] and "offset" in e for e in m),
    "compressed data": any(e["data"] and "offset" not in e for e in m),
    "zero subclusters (host cluster kept)": any(e["zero"] and e["present"] and "offset" in e for e in m),
    "zero clusters": any(e["zero"] and e["present"] and "offset" not in e for e in m),
    "unallocated": any(not e["present"] for e in m),
}
missing = [k for k, v in kinds.items() if not v]
print("demo image regions:", kinds)
sys.exit(1 if missing else 0)
EOF

# Export: right size, writable.
size=$(nbdinfo --size "$uri")
[ "$size" = "$(qemu-img info --output=json "$demo" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" ] ||
    fail "export size $size differs from the virtual size"
nbdinfo "$uri" | grep -q 'is_read_only: false' || fail "demo export is not writable"

qcx_qemu_raw "$demo" "$tmpdir/expected.raw"

# The printed commands, run as printed, from a scratch directory.
cmd_map=$(printed_cmd "$out" "nbdinfo --map")
cmd_sh=$(printed_cmd "$out" "nbdsh")
cmd_copy=$(printed_cmd "$out" "nbdcopy")
cmd_write=$(printed_cmd "$out" "nbdsh -u [^ ]* -c 'h\\.pwrite\\(b\"[^\"]*\",")
[ "$cmd_copy" = "nbdcopy $uri out.raw" ] || fail "unexpected nbdcopy line: $cmd_copy"
mkdir "$tmpdir/user"
cd "$tmpdir/user"

echo "+ $cmd_copy"
bash -c "$cmd_copy"
cmp out.raw "$tmpdir/expected.raw" || fail "nbdcopy output differs from qemu-img convert"
echo "nbdcopy OK"

echo "+ $cmd_sh"
bash -c "$cmd_sh" > pread.out
"$PY" -c '
import sys
data = open(sys.argv[1], "rb").read(512)
want = repr(bytearray(data))    # libnbd < 1.16 returns a bytearray, later bytes
got = open(sys.argv[2]).read().rstrip("\n")
ok = got in (want, repr(data))
sys.exit(0 if ok else "nbdsh printed %r, expected %r" % (got[:80], want[:80]))
' "$tmpdir/expected.raw" pread.out
echo "nbdsh pread OK"

echo "+ $cmd_map"
bash -c "$cmd_map" > map.out
cat map.out
"$PY" - "$tmpdir/demo.map" map.out <<'EOF'
import json, sys
def coalesce(entries):
    runs = []
    for s, l, t in entries:
        if runs and runs[-1][2] == t and runs[-1][0] + runs[-1][1] == s:
            runs[-1][1] += l
        else:
            runs.append([s, l, t])
    return runs
qemu = []
for e in json.load(open(sys.argv[1])):      # demo image: no backing file
    t = 0 if e["data"] else (2 if "offset" in e else 3)
    qemu.append((e["start"], e["length"], t))
got = [tuple(int(x) for x in line.split()[:3]) for line in open(sys.argv[2]) if line.strip()]
a, b = coalesce(qemu), coalesce(got)
if a != b:
    sys.exit("nbdinfo --map differs from qemu-img map:\n qemu:   %s\n plugin: %s" % (a, b))
print("nbdinfo --map OK (%d runs)" % len(b))
EOF

# The printed write, then a flush (part of the printed command): the
# bytes must be in the image, as qemu-img sees it, at once.
echo "+ $cmd_write"
bash -c "$cmd_write"
woff=$(echo "$cmd_write" | sed -n 's/.*h\.pwrite(b"\([^"]*\)", \([0-9]*\)).*/\2/p')
wdata=$(echo "$cmd_write" | sed -n 's/.*h\.pwrite(b"\([^"]*\)", \([0-9]*\)).*/\1/p')
[ -n "$woff" ] && [ -n "$wdata" ] || fail "cannot parse the printed write: $cmd_write"
qcx_qemu_raw "$demo" "$tmpdir/written.raw"
"$PY" -c '
import sys
data = open(sys.argv[1], "rb").read()
off, want = int(sys.argv[2]), sys.argv[3].encode()
sys.exit(0 if data[off:off + len(want)] == want else
         "written bytes not in the image: %r" % data[off:off + len(want)])
' "$tmpdir/written.raw" "$woff" "$wdata"
rm -f out.raw
bash -c "$cmd_copy"
cmp out.raw "$tmpdir/written.raw" || fail "after the write: nbdcopy differs from qemu-img convert"
echo "printed write OK"
cd "$tmpdir"

stop_server "$server_pid" || fail "run.sh (nbdkit) did not stop on SIGTERM"
if nbdinfo --size "$uri" >/dev/null 2>&1; then
    # Another server may have taken the port; it must not be ours.
    kill -0 "$server_pid" 2>/dev/null && fail "server still running"
fi
qemu-img check "$demo" || fail "demo image not clean after the server stopped"
echo "stopped OK"

# ---- 2. an explicit IMAGE, a chosen port ----
img=$tmpdir/explicit.qcow2
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k "$img" 4M
qemu-io -f qcow2 -c 'write -q -P 0x5a 12k 20k' -c 'write -q -c -P 0x3c 1M 4k' "$img"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$tmpdir/run2.out
export QCX_PORT=$port
start_server "$out" "$img"
unset QCX_PORT
[ "$uri" = "nbd://127.0.0.1:$port" ] || fail "QCX_PORT ignored: $uri"
grep -qxF "qcow2x: serving $img (read-only)" "$out" ||
    fail "run.sh did not say it serves $img read-only"
nbdinfo "$uri" | grep -q 'is_read_only: true' || fail "explicit IMAGE: export is not read-only"
grep -q "h.pwrite" "$out" && fail "run.sh printed a write command for a read-only export"
if nbdsh -u "$uri" -c 'h.pwrite(b"x", 0)' 2>/dev/null; then
    fail "explicit IMAGE: a write to the read-only export succeeded"
fi
nbdcopy "$uri" "$tmpdir/explicit.raw"
qcx_qemu_raw "$img" "$tmpdir/explicit.expected.raw"
cmp "$tmpdir/explicit.raw" "$tmpdir/explicit.expected.raw" ||
    fail "explicit image: bytes differ from qemu-img convert"
stop_server "$server_pid" || fail "run.sh (nbdkit) did not stop on SIGTERM"
echo "explicit IMAGE OK"

# ---- 3. an explicit IMAGE, QCX_RW=1 ----
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$tmpdir/run3.out
export QCX_PORT=$port QCX_RW=1
start_server "$out" "$img"
unset QCX_PORT QCX_RW
grep -qxF "qcow2x: serving $img (read-write)" "$out" ||
    fail "QCX_RW=1: run.sh did not say it serves $img read-write"
nbdsh -u "$uri" -c 'h.pwrite(b"\x42" * 3000, 2000000)' -c 'h.flush()'
stop_server "$server_pid" || fail "run.sh (nbdkit) did not stop on SIGTERM"
qemu-img check "$img" || fail "QCX_RW=1: image not clean"
qemu-io -f qcow2 -c 'read -q -P 0x42 2000000 3000' -c 'read -q -P 0x5a 12k 20k' "$img" ||
    fail "QCX_RW=1: the write is not in the image"
echo "QCX_RW=1 OK"

# ---- 4. an overlay: the chain through the filter, or layer-only ----
qemu-img create -q -f qcow2 -o extended_l2=on -b explicit.qcow2 -F qcow2 \
    "$tmpdir/overlay.qcow2"
qemu-io -f qcow2 -c 'write -q -P 0x77 1M 2k' "$tmpdir/overlay.qcow2"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$tmpdir/run4.out
export QCX_PORT=$port
start_server "$out" "$tmpdir/overlay.qcow2"
unset QCX_PORT
grep -q "^qcow2x: serving $tmpdir/overlay.qcow2 (read-only) .*qcow2xchain" "$out" ||
    fail "run.sh did not say it serves the overlay's chain"
nbdcopy "$uri" "$tmpdir/chain.raw"
qcx_qemu_raw "$tmpdir/overlay.qcow2" "$tmpdir/chain.expected.raw"
cmp "$tmpdir/chain.raw" "$tmpdir/chain.expected.raw" ||
    fail "overlay: bytes differ from qemu-img convert of the chain"
stop_server "$server_pid" || fail "run.sh (nbdkit) did not stop on SIGTERM"
echo "overlay chain OK"

port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$tmpdir/run5.out
export QCX_PORT=$port
start_server "$out" "$tmpdir/overlay.qcow2" layer-only=true
unset QCX_PORT
grep -qxF "qcow2x: serving $tmpdir/overlay.qcow2 (read-only)" "$out" ||
    fail "layer-only=true: run.sh should serve the layer alone"
nbdcopy "$uri" "$tmpdir/layer.raw"
qcx_qemu_raw "$tmpdir/overlay.qcow2" "$tmpdir/layer.expected.raw" layer-only
cmp "$tmpdir/layer.raw" "$tmpdir/layer.expected.raw" ||
    fail "overlay layer-only: bytes differ from qemu-img convert of the layer"
nbdinfo --map "$uri" | awk '$3 == 1 { f = 1 } END { exit !f }' ||
    fail "overlay layer-only: no deferred (hole) extent"
stop_server "$server_pid" || fail "run.sh (nbdkit) did not stop on SIGTERM"
echo "overlay layer-only OK"
