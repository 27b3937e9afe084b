#!/usr/bin/env bash
# CREATE: compression=zlib|zstd, with standard and extended L2 entries.
# Like QEMU, the header is 112 bytes long (header_length covers the
# compression_type byte) and zstd sets incompatible bit 3 ("compression
# type").  qemu-img info shows the type, and QEMU can then write
# compressed clusters with that codec, which the plugin reads back.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdinfo nbdcopy cmp truncate od
requires_python_nbd

. "$srcdir/lib/createlib.sh"

cd "$tmpdir"

# be32 IMG OFFSET: a big-endian 32-bit header field.
be32 () { od -An -tu4 --endian=big -j "$2" -N4 "$1" | tr -d ' '; }
be64 () { od -An -tu8 --endian=big -j "$2" -N8 "$1" | tr -d ' '; }
byte () { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }

for comp in zlib zstd; do
    for ext in true false; do
        img=$comp-$ext.qcow2
        create "$img" size=4M compression=$comp extended-l2=$ext
        check_clean "$img"
        expect_info "$img" compression-type=$comp extended-l2=$ext compat=1.1
        [ "$(be32 "$img" 100)" = 112 ] ||
            fail "$img: header_length $(be32 "$img" 100), expected 112"
        incompat=$(be64 "$img" 72)
        if [ $comp = zstd ]; then want_type=1; else want_type=0; fi
        [ "$(byte "$img" 104)" = $want_type ] ||
            fail "$img: compression_type byte $(byte "$img" 104)"
        [ $(( (incompat >> 3) & 1 )) = $want_type ] ||
            fail "$img: compression type bit wrong (incompatible=$incompat)"
        [ $(( (incompat >> 4) & 1 )) = $([ $ext = true ] && echo 1 || echo 0) ] ||
            fail "$img: extended L2 bit wrong (incompatible=$incompat)"
        [ $(( incompat & ~0x18 )) = 0 ] ||
            fail "$img: unexpected incompatible bits $incompat"
        reads_zero "$img"

        # QEMU writes compressed clusters into the new image with its codec.
        qemu-io -f qcow2 "$img" -c "write -c -q -P 0x5a 0 64k" \
            -c "write -c -q -P 0xa5 1M 64k" -c "write -q -P 0x11 3M 4k"
        qcx_expect_layout "$img" compressed -eq 2
        qcx_expect_layout "$img" compression_type -eq $want_type
        check_clean "$img"
        qcx_compare_with_qemu "$img"
    done
done
