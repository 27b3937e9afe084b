#!/usr/bin/env bash
# FLUSH: after one failed fdatasync, every later flush fails too.
#
# The kernel may drop the pages it failed to write and not report that
# again, so a retried fdatasync can succeed without them: a flush that
# then said "durable" would lie about data written before the failure.
# The plugin (like QEMU) fails every sync after the first failure.  With
# a one-shot injected sync fault (inject-error=sync:1:EIO):
#  - the request that hits it fails with EIO, and so do all later
#    flushes and FUA writes, although the fault itself fired only once
#    (later writes may fail too: the first write syncs the header);
#  - reads keep working and return what was written;
#  - data flushed before the fault reads back after the restart, and
#    the image has no corruption (qemu-img check: clean or leaks);
#  - after a restart the image takes writes and flushes again.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k "$img" 8M
# on disk before the server starts: must survive whatever follows
qemu-io -f qcow2 "$img" -c "write -q -P 0x11 4M 100k" >/dev/null

cat > "$tmpdir/sticky.py" <<'EOF'
import errno
import sys
import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])

def expect_eio(what, fn):
    try:
        fn()
    except nbd.Error as e:
        if e.errnum != errno.EIO:
            sys.exit("%s failed with errno %s, expected EIO" % (what, e.errnum))
        print("%s: failed as expected (%s)" % (what, e))
        return
    sys.exit("%s succeeded after a failed fdatasync" % what)

def may_fail(what, fn):
    try:
        fn()
        return True
    except nbd.Error as e:
        print("%s: failed (%s)" % (what, e))
        return False

# The first write syncs the header before writing (the fault fires
# there) or, if it did not, the flush after it does.
ok = may_fail("write 1", lambda: h.pwrite(b"\x55" * 65536, 0))
if sys.argv[2] == "write-ok" and not ok:
    sys.exit("write 1 failed, but the fault was meant for the flush")
expect_eio("flush 1", h.flush)
expect_eio("flush 2", h.flush)
wrote = may_fail("write 2", lambda: h.pwrite(b"\x22" * 4096, 1 << 20))
expect_eio("flush 3", h.flush)
expect_eio("FUA write", lambda: h.pwrite(b"\x33" * 4096, 2 << 20,
                                           nbd.CMD_FLAG_FUA))
if h.pread(4096, 4 << 20) != b"\x11" * 4096:
    sys.exit("a read after the failed sync does not return the data on disk")
if wrote and h.pread(4096, 1 << 20) != b"\x22" * 4096:
    sys.exit("a read after the failed sync does not return the data written")
h.shutdown()
EOF
# sync:1 is the sync of the header before the first write; sync:2 the
# first flush's, after a write that succeeded.
for case in "1 write-may-fail" "2 write-ok"; do
    set -- $case
    qcx_nbdkit_rw "$img" inject-error=sync:$1:EIO \
        --run "$PY $(printf %q "$tmpdir/sticky.py") \"\$uri\" $2" 2>"$tmpdir/err.txt" || {
        cat "$tmpdir/err.txt" >&2
        fail "sync:$1: the session with the injected sync fault failed"
    }
    cat "$tmpdir/err.txt"
    grep -q "an earlier fdatasync failed" "$tmpdir/err.txt" ||
        fail "sync:$1: later flushes did not say why they fail"
done

rc=0
qemu-img check "$img" >"$tmpdir/check.txt" 2>&1 || rc=$?
cat "$tmpdir/check.txt"
[ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "qemu-img check exit $rc: corruption"

# A restart clears the state: writes and flushes work again, and what
# they write is there for QEMU.
cat > "$tmpdir/again.py" <<'EOF'
import sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\x44" * 8192, 3 << 20)
h.flush()
h.shutdown()
EOF
qcx_nbdkit_rw "$img" --run "$PY $(printf %q "$tmpdir/again.py") \"\$uri\"" ||
    fail "writing after the restart failed"
rc=0
qemu-img check "$img" >"$tmpdir/check.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { cat "$tmpdir/check.txt" >&2; fail "qemu-img check exit $rc after the restart"; }
qemu-img convert -O raw "$img" "$tmpdir/after.raw"
cmp -s <(dd if="$tmpdir/after.raw" bs=4096 skip=768 count=2 2>/dev/null) \
    <(head -c 8192 /dev/zero | tr '\0' '\104') ||
    fail "the write flushed after the restart does not read back through QEMU"
cmp -s <(dd if="$tmpdir/after.raw" bs=1024 skip=4096 count=100 2>/dev/null) \
    <(head -c 102400 /dev/zero | tr '\0' '\021') ||
    fail "data on disk before the failed sync does not read back through QEMU"
echo "test-flush-after-sync-error: OK"
