#!/usr/bin/env bash
# V2V: an image with the corrupt bit (incompatible feature bit 1, header
# bytes 72-79) is served read-only even without -r: writes fail (EPERM or
# EROFS, or the export is advertised read-only so clients refuse to write),
# nbdkit logs a clear message containing "corrupt", and the file is not
# modified.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit sha256sum
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 4M
qemu-io -f qcow2 -c "write -q -P 0x5a 0 1M" "$img" >/dev/null
"$PY" "$srcdir/lib/workload.py" setbit "$img" 72 1
sum1=$(sha256sum < "$img")

cat > "$tmpdir/try.py" <<'PY'
import errno, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
print("read-only flag: %s" % h.is_read_only())
h.set_strict_mode(0)
bad = []
try:
    h.pwrite(b"x" * 4096, 0)
except nbd.Error as e:
    print("pwrite failed as expected: %s" % e)
    if e.errnum not in (errno.EPERM, errno.EROFS):
        bad.append("pwrite failed with errno %s, expected EPERM/EROFS"
                   % e.errnum)
else:
    bad.append("pwrite to an image with the corrupt bit succeeded")
if h.pread(4096, 0) != b"\x5a" * 4096:
    bad.append("data changed")
if bad:
    sys.exit("; ".join(bad))
PY
rc=0
qcx_nbdkit_rw "$img" --run "$PY $(printf %q "$tmpdir/try.py") \"\$uri\"" \
    2> "$tmpdir/stderr" || rc=$?
cat "$tmpdir/stderr"
[ $rc = 0 ] || fail "writes to a corrupt image did not fail cleanly"
grep -qi corrupt "$tmpdir/stderr" ||
    fail "nbdkit did not say the image is corrupt"
sum2=$(sha256sum < "$img")
[ "$sum1" = "$sum2" ] || fail "the image file of a corrupt image changed"
