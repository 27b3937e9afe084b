#!/usr/bin/env bash
# CREATE: preallocation=off|metadata|falloc|full, standard and extended L2,
# no backing file.  Every mode is check-clean and reads as zeros (through
# QEMU and through the plugin, bytes and extents).  With metadata, falloc
# and full every guest cluster has a host cluster (standard L2: a normal
# COPIED entry, reading zeros from the extended file, as QEMU does;
# extended L2: a host offset with all 32 subclusters unallocated, as QEMU
# does), so guest writes do not grow the file.  On disk: off and metadata
# stay sparse, falloc and full take the whole data area.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate stat
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

size=$((8 * 1024 * 1024))
clusters=$((size / 65536))

disk_bytes () { echo $(( $(stat -c '%b * %B' "$1") )); }

for mode in off metadata falloc full; do
    for ext in false true; do
        img=$mode-$ext.qcow2
        create "$img" size=8M preallocation=$mode extended-l2=$ext
        check_clean "$img"
        expect_info "$img" virtual-size=$size extended-l2=$ext
        reads_zero "$img"
        qcx_compare_with_qemu "$img"
        qcx_compare_extents "$img"

        used=$(disk_bytes "$img")
        echo "$img: $(stat -c %s "$img") bytes, $used on disk"
        if [ $mode = off ]; then
            qcx_expect_layout "$img" l2_tables -eq 0
            [ "$(stat -c %s "$img")" -lt $((1024 * 1024)) ] ||
                fail "$img: file is $(stat -c %s "$img") bytes"
            continue
        fi
        qcx_expect_layout "$img" l2_tables -eq 1
        if [ $ext = true ]; then
            qcx_expect_layout "$img" sub_unalloc_with_offset -eq $((clusters * 32))
            qcx_expect_layout "$img" sub_alloc -eq 0
        else
            qcx_expect_layout "$img" normal -eq $clusters
            qcx_expect_layout "$img" zero_with_offset -eq 0
        fi
        [ "$(stat -c %s "$img")" -ge $size ] ||
            fail "$img: file is $(stat -c %s "$img") bytes, smaller than the data"
        case $mode in
            metadata)
                [ "$used" -lt $((1024 * 1024)) ] ||
                    fail "$img: metadata preallocation uses $used bytes on disk" ;;
            falloc|full)
                [ "$used" -ge $size ] ||
                    fail "$img: $mode preallocation uses only $used bytes on disk" ;;
        esac

        # Guest writes land in the reserved clusters: the file keeps its size.
        before=$(stat -c %s "$img")
        qemu-io -f qcow2 "$img" -c "write -q -P 0x77 0 100k" \
            -c "write -q -P 0x78 5M 1M" -c "write -q -P 0x79 $((size - 512)) 512"
        [ "$(stat -c %s "$img")" = "$before" ] ||
            fail "$img: QEMU's writes grew the file ($before -> $(stat -c %s "$img"))"
        check_clean "$img"
        qcx_compare_with_qemu "$img"
        rm -f "$img"
    done
done
