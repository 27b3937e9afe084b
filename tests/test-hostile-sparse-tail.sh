#!/usr/bin/env bash
# qcow2x hostile image: a valid 8 MiB image with 512-byte clusters whose file has a 1 TiB
#   sparse tail (trailing bytes after the last cluster are allowed; qemu-img convert reads the
#   image at once).  Resource bound: with -r, nbdkit serves qemu-img convert's bytes under a
#   1 GiB address-space limit (nothing proportional to the file size may be allocated) and
#   without walking the tail (a walk of 1 TiB takes minutes; the hang bound is 60 s, no
#   wall-clock performance limit).  Without -r: no crash, no hang, and either the right bytes
#   or a refusal with an error line.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy truncate timeout ldd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"

cd "$tmpdir"
qemu-img create -q -f qcow2 -o cluster_size=512 img.qcow2 8M
qemu-io -f qcow2 -c "write -P 0x11 0 64k" -c "write -P 0x22 3M 1M" -c "write -z 5M 64k" \
    img.qcow2 >/dev/null
truncate -s 1T img.qcow2
qcx_qemu_raw img.qcow2 qemu.raw

# No address-space limit for sanitizer builds (they reserve terabytes up front).
limit=$((1 << 20))        # KiB
if [ -n "${QCX_SANITIZER:-}" ] || ldd "$PLUGIN" | grep -Eq 'lib[atl]san|libubsan'; then
    limit=unlimited
fi

serve () {   # serve HANG-SECONDS NBDKIT-ARGS... : copy the export to out.raw, log to err.txt
    local max=$1 t0 t1 rc=0
    shift
    rm -f out.raw
    t0=$(date +%s%N)
    ( ulimit -v "$limit"; export MALLOC_ARENA_MAX=2
      timeout "$max" nbdkit -U - "$@" --run 'nbdcopy "$uri" out.raw' ) 2>err.txt || rc=$?
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    sed 's/^/    stderr: /' err.txt
    ! grep -Eqi 'AddressSanitizer|runtime error:|Segmentation|Aborted|core dumped' err.txt ||
        fail "$*: crash report"
    [ "$rc" -ne 124 ] || fail "$*: hang (not done after $max s: tail walked?)"
    [ "$rc" -lt 124 ] || fail "$*: nbdkit killed (status $rc)"
    return $rc
}

serve 60 -r "$PLUGIN" img.qcow2 || fail "-r: not served (status $?)"
cmp -s qemu.raw out.raw || fail "-r: bytes differ from qemu-img convert"
echo "OK: -r: served in $ms ms under a ${limit} KiB address-space limit"

if serve 90 "$PLUGIN" img.qcow2; then
    cmp -s qemu.raw out.raw || fail "rw: bytes differ from qemu-img convert"
    echo "OK: without -r: served in $ms ms"
else
    grep -qi error err.txt || fail "without -r: refused without an error line"
    echo "OK: without -r: refused in $ms ms: $(grep -i error err.txt | head -1)"
fi
