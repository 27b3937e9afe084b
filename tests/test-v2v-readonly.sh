#!/usr/bin/env bash
# V2V: writes to a read-only (-r) export fail (EPERM or EROFS) and change
# nothing.  The client's strict mode is turned off so that the requests
# really reach the server.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit sha256sum
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 4M
qemu-io -f qcow2 -c "write -q -P 0x5a 0 1M" "$img" >/dev/null
sum1=$(sha256sum < "$img")

cat > "$tmpdir/try.py" <<'PY'
import errno, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
if not h.is_read_only():
    sys.exit("export of a -r server is not read-only")
h.set_strict_mode(0)
bad = []
for what, f in [("pwrite", lambda: h.pwrite(b"x" * 4096, 0)),
                ("zero", lambda: h.zero(65536, 0)),
                ("trim", lambda: h.trim(65536, 0))]:
    try:
        f()
    except nbd.Error as e:
        print("%s failed as expected: %s" % (what, e))
        if e.errnum not in (errno.EPERM, errno.EROFS):
            bad.append("%s failed with errno %s, expected EPERM/EROFS"
                       % (what, e.errnum))
    else:
        bad.append("%s succeeded on a read-only export" % what)
if h.pread(4096, 0) != b"\x5a" * 4096:
    bad.append("data changed")
if bad:
    sys.exit("; ".join(bad))
PY
qcx_nbdkit "$img" --run "$PY $(printf %q "$tmpdir/try.py") \"\$uri\"" ||
    fail "writes to a -r export did not fail cleanly"
sum2=$(sha256sum < "$img")
[ "$sum1" = "$sum2" ] || fail "the image file changed under a -r export"
qemu-img check "$img"
