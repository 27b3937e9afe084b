#!/usr/bin/env bash
# qcow2x bad input: encrypted images (LUKS, legacy AES, crypt_method patched) are refused
#   ("encrypt")
# (images from tests/lib/badimage.py; see its header for what each check asserts)
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN (run make -C $top)"
export PLUGIN TMPDIR=$tmpdir
bad () { "$PY" "$srcdir/lib/badimage.py" "$@"; }
rc=0

for c in crypt-luks crypt-aes crypt-method-1 crypt-method-2 crypt-method-3; do
    bad refuse $c --phrase "encrypt" || rc=1
done
exit $rc
