#!/usr/bin/env bash
# Replay every fuzzer finding in tests/fuzz-regressions/ through the
# normal plugin (and, for chain inputs, the filter) with nbdkit:
# nbdkit must either refuse the image at start-up with an error
# message, or serve it: every request then gets an answer (data or an
# error such as EIO) and the server neither crashes nor hangs.
#
# File names say which fuzz target found them (fuzz/*.c):
#   read-*   fuzz_open_read input: an image (raw or the sparse "QCXS"
#            container, fuzz/fuzz-common.h); served layer-only, with the
#            open options the target derived from the input's hash;
#            read (first MiBs, end, every data extent's start, random
#            samples) and block status of the whole disk.
#   write-*  fuzz_write input: 260-byte operations header + image; the
#            operations (writes, zero, trim, flush, FUA, fast zero, an
#            injected I/O fault) go through a writable server, then the
#            result is read as above.
#   chain-*  fuzz_chain input: flags, top length, top, base; the top is
#            served through --filter=qcow2xchain over the base (names and
#            overrides as the target chose them) and read; each layer
#            alone is read too.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit timeout
requires_python_nbd
_qcx_check_plugin
FILTER=${QCX_FILTER:-$top/filter/nbdkit-qcow2xchain-filter.so}
[ -f "$FILTER" ] || fail "filter not built: $FILTER (run make -C $top)"

regdir=$srcdir/fuzz-regressions
shopt -s nullglob
inputs=("$regdir"/read-* "$regdir"/write-* "$regdir"/chain-*)
if [ ${#inputs[@]} -eq 0 ]; then
    echo "no regression inputs in $regdir"
    exit 0
fi

fz=$tmpdir/fz.py
cat > "$fz" <<'EOF'
# Decoding of fuzzer inputs and the NBD client side of the replay.
import errno, os, random, struct, sys

def decode(d):
    """An image part: raw bytes, or the QCXS sparse container."""
    if len(d) < 8 or d[:4] != b"QCXS":
        return d
    size = min(struct.unpack("<I", d[4:8])[0], 32 << 20)
    out = bytearray(size)
    p = 8
    while p + 6 <= len(d):
        off, ln = struct.unpack("<IH", d[p:p + 6])
        p += 6
        ch = d[p:p + ln]
        p += len(ch)
        if off < size:
            out[off:off + len(ch)] = ch[:size - off]
    return bytes(out)

def fnv(d):
    """fuzz_hash() of fuzz/fuzz-common.h."""
    h = 0xcbf29ce484222325
    for b in d[:4096]:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h ^ len(d)

def backing_name(img):
    """The header's backing file name, roughly as the library reads it."""
    if len(img) < 72 or img[:4] != b"QFI\xfb":
        return None
    off, = struct.unpack(">Q", img[8:16])
    size, = struct.unpack(">I", img[16:20])
    if off == 0 or size == 0 or size > 1023 or off + size > len(img):
        return None
    name = img[off:off + size]
    if b"\0" in name:
        return None
    return name.decode("latin-1")

def safe(name):
    return bool(name) and "/" not in name

# What the server may answer to a request of a broken image; anything
# else means the connection died (ENOTCONN, ECONNRESET, ...) or a
# resource bound was exceeded (ENOMEM: the images here are small, the
# server must not need more memory than its documented bounds).
ANSWERS = {errno.EIO, errno.EINVAL, errno.ENOSPC, errno.EPERM, errno.EROFS,
           errno.ENOTSUP, errno.EOVERFLOW, errno.EFBIG, errno.EDQUOT}

def req(fn, *a):
    import nbd
    try:
        return fn(*a)
    except nbd.Error as e:
        if e.errnum in ANSWERS:
            return None
        sys.exit("request %s%r: connection lost or unexpected error: %s"
                 % (fn.__name__, a[1:] if a else (), e))

def walk(h, seed):
    """Bounded reads and block status (like the fuzz targets' walker)."""
    size = h.get_size()
    if size == 0:
        return
    rng = random.Random(seed)
    for off in range(0, min(size, 4 << 20), 256 << 10):
        req(h.pread, min(256 << 10, size - off), off)
    req(h.pread, min(size, 65536), size - min(size, 65536))
    data = []
    def cb(meta, off, entries, err):
        for i in range(0, len(entries), 2):
            if entries[i + 1] == 0 and len(data) < 200:
                data.append((off, entries[i]))
            off += entries[i]
        cb.next = off
        return 0
    pos, calls = 0, 0
    while pos < size and calls < 500:
        cb.next = pos
        if req(h.block_status, min(size - pos, 1 << 30), pos, cb) is None \
           and cb.next == pos:
            pos += min(size - pos, 1 << 30)    # failed: skip this range
        else:
            pos = max(cb.next, pos + 1)
        calls += 1
    for off, ln in data:
        if off < size:
            req(h.pread, min(ln, 65536, size - off), off)
    for _ in range(32):
        off = rng.randrange(size)
        req(h.pread, min(1 + rng.randrange(8192), size - off), off)

def ops(h, blob):
    """The operations of a fuzz_write input (fuzz/fuzz_write.c)."""
    import nbd
    size = h.get_size()
    nr = blob[2] % 33
    for i in range(nr):
        b = blob[4 + 8 * i:12 + 8 * i]
        t = b[0] % 8
        if t == 5:
            req(h.flush)
            continue
        if size == 0:
            continue
        off = (struct.unpack("<I", b[1:5])[0] << (b[5] & 15)) % size
        ln = struct.unpack("<H", b[6:8])[0] + 1
        if (b[5] & 0x80) and t not in (0, 1, 6):
            ln *= 64
        ln = min(ln, size - off)
        if t in (0, 1, 6):
            buf = bytes(((i * 131 + j * 7 + 1) & 0xff) for j in range(ln))
            req(h.pwrite, buf, off, nbd.CMD_FLAG_FUA if t == 6 else 0)
        elif t == 2:
            req(h.zero, ln, off, nbd.CMD_FLAG_NO_HOLE)
        elif t == 3:
            req(h.zero, ln, off, 0)
        elif t == 4:
            req(h.trim, ln, off)
        elif t == 7:
            fl = nbd.CMD_FLAG_FAST_ZERO
            if not (b[0] & 8):
                fl |= nbd.CMD_FLAG_NO_HOLE
            if h.can_fast_zero():
                req(h.zero, ln, off, fl)
    req(h.flush)

def main():
    mode = sys.argv[1]
    if mode == "split":
        # split KIND INPUT DIR: write the image(s) and print the options.
        kind, inp, d = sys.argv[2:5]
        blob = open(inp, "rb").read()
        if kind == "read":
            open(os.path.join(d, "img.qcow2"), "wb").write(decode(blob))
            h = fnv(blob)
            opts = []
            hb = h % 3 - 1
            if hb == 0: opts.append("has-backing=false")
            if hb == 1: opts.append("has-backing=true")
            if (h >> 8) & 1: opts.append("l2-cache-size=1")
            print(" ".join(opts))
        elif kind == "write":
            if len(blob) < 260:
                print("SKIP")
                return
            open(os.path.join(d, "img.qcow2"), "wb").write(decode(blob[260:]))
            open(os.path.join(d, "ops.bin"), "wb").write(blob[:260])
            fl = blob[0]
            opts = []
            if fl & 1: opts.append("l2-cache-size=1")
            hb = (fl >> 1) & 3
            if hb == 1: opts.append("has-backing=false")
            if hb == 2: opts.append("has-backing=true")
            if fl & 8:
                op = ["write", "sync", "truncate", "write"][(fl >> 4) & 3]
                e = "EIO" if fl & 0x80 else "ENOSPC"
                opts.append("inject-error=%s:%d:%s%s" % (
                    op, blob[1] + 1, e, ":persistent" if fl & 0x40 else ""))
            print(" ".join(opts))
        else:
            if len(blob) < 4:
                print("SKIP")
                return
            fl = blob[0]
            tl = min(int.from_bytes(blob[1:4], "little"), len(blob) - 4)
            top, base = decode(blob[4:4 + tl]), decode(blob[4 + tl:])
            open(os.path.join(d, "top.qcow2"), "wb").write(top)
            open(os.path.join(d, "base.qcow2"), "wb").write(base)
            opts = []
            if (fl & 4) or not safe(backing_name(top)):
                opts.append("chain-backing=%s" % os.path.join(d, "base.qcow2"))
                fmt = [None, "qcow2", "raw", "qcow2"][fl & 3]
                if fmt: opts.append("chain-backing-format=" + fmt)
            depth = 2 if (fl & 8) and safe(backing_name(base)) else 1
            opts.append("chain-depth=%d" % depth)
            if fl & 16: opts.append("l2-cache-size=1")
            print(" ".join(opts))
        return
    # read|write URI MARKER [OPS]: the client side.
    import nbd
    uri, marker = sys.argv[2], sys.argv[3]
    open(marker, "w").close()
    h = nbd.NBD()
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    if mode == "write":
        ops(h, open(sys.argv[4], "rb").read())
    else:
        walk(h, 1)
    h.shutdown()

main()
EOF

# serve WHAT INPUT NBDKIT-ARGS... -- CLIENT-ARGS...: run nbdkit captive,
# the client reading or writing; refusing to start is fine if it says
# why, a crash, a hang or a lost connection is not.
serve ()
{
    local what=$1 input=$2
    shift 2
    local args=() client=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    client=("$@")
    local marker=$tmpdir/served err=$tmpdir/stderr rc=0 cmd
    rm -f "$marker"
    printf -v cmd '%q %q %q "$uri" %q' "$PY" "$fz" "${client[0]}" "$marker"
    if [ ${#client[@]} -gt 1 ]; then printf -v cmd '%s %q' "$cmd" "${client[1]}"; fi
    # Bounded address space, so an oversized allocation fails at once
    # instead of swapping (not under sanitizers: their shadow memory
    # needs a huge address space).
    ( if [ -z "${QCX_SANITIZER:-}" ]; then ulimit -v $((4 << 20)); fi
      exec timeout --kill-after=5 120 nbdkit -U - "${args[@]}" --run "$cmd" \
        </dev/null >"$tmpdir/stdout" 2>"$err" ) || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        cat "$err" >&2
        fail "$input ($what): nbdkit hung (timeout)"
    fi
    if [ "$rc" -ge 128 ]; then
        cat "$err" >&2
        fail "$input ($what): nbdkit died with signal $((rc - 128))"
    fi
    if grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' "$err"; then
        cat "$err" >&2
        fail "$input ($what): sanitizer report"
    fi
    if [ -f "$marker" ]; then
        if [ "$rc" -ne 0 ]; then
            cat "$err" "$tmpdir/stdout" >&2
            fail "$input ($what): served, but the client failed (status $rc)"
        fi
        echo "  $what: served"
    else
        if [ "$rc" -eq 0 ] || ! grep -qi 'error' "$err"; then
            cat "$err" >&2
            fail "$input ($what): not served, and no error message (status $rc)"
        fi
        echo "  $what: refused: $(grep -i -m1 error "$err")"
    fi
}

for input in "${inputs[@]}"; do
    name=$(basename "$input")
    d=$tmpdir/work
    rm -rf "$d"
    mkdir -p "$d"
    echo "== $name"
    case $name in
        read-*)
            read -r -a opts <<<"$("$PY" "$fz" split read "$input" "$d")"
            serve read "$name" -r "$PLUGIN" "$d/img.qcow2" layer-only=true \
                "${opts[@]}" -- read
            ;;
        write-*)
            read -r -a opts <<<"$("$PY" "$fz" split write "$input" "$d")"
            if [ "${opts[*]:-}" = SKIP ]; then echo "  too short"; continue; fi
            serve write "$name" "$PLUGIN" "$d/img.qcow2" layer-only=true \
                "${opts[@]}" -- write "$d/ops.bin"
            ro=()
            for o in "${opts[@]}"; do
                case $o in inject-error=*) ;; *) ro+=("$o") ;; esac
            done
            serve "read after writes" "$name" -r "$PLUGIN" "$d/img.qcow2" \
                layer-only=true "${ro[@]}" -- read
            ;;
        chain-*)
            read -r -a opts <<<"$("$PY" "$fz" split chain "$input" "$d")"
            if [ "${opts[*]:-}" = SKIP ]; then echo "  too short"; continue; fi
            serve chain "$name" -r --filter="$FILTER" "$PLUGIN" \
                "$d/top.qcow2" "${opts[@]}" -- read
            serve "top alone" "$name" -r "$PLUGIN" "$d/top.qcow2" \
                layer-only=true -- read
            serve "base alone" "$name" -r "$PLUGIN" "$d/base.qcow2" \
                layer-only=true -- read
            ;;
    esac
done
echo "replayed ${#inputs[@]} fuzzer inputs"
