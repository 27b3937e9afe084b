#!/usr/bin/env bash
# CREATE: cluster sizes 512, 4K, 16K, 64K and 2M, with standard and (where
# the spec allows: 16K and up) extended L2 entries.  Each image is
# check-clean, qemu-img info shows the cluster size and L2 entry kind, it
# reads as zeros, and the plugin serves it like QEMU.  Without an explicit
# extended-l2=, extended L2 is on exactly where the cluster size allows it.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img nbdkit nbdinfo nbdcopy cmp truncate
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

for cs in 512 4096 16384 65536 2097152; do
    exts=false
    if [ "$cs" -ge 16384 ]; then exts="false true"; fi
    for ext in $exts; do
        img=c$cs-$ext.qcow2
        create "$img" size=5M cluster-size=$cs extended-l2=$ext
        check_clean "$img"
        expect_info "$img" virtual-size=5242880 cluster-size=$cs \
            extended-l2=$ext compat=1.1 refcount-bits=16
        reads_zero "$img"
        qcx_compare_with_qemu "$img"
        rm -f "$img"
    done
done

# The default follows the cluster size.
create auto4k.qcow2 size=1M cluster-size=4K
expect_info auto4k.qcow2 cluster-size=4096 extended-l2=false
create auto16k.qcow2 size=1M cluster-size=16K
expect_info auto16k.qcow2 cluster-size=16384 extended-l2=true
check_clean auto4k.qcow2
check_clean auto16k.qcow2
