#!/usr/bin/python3
"""Independent, test-side parse of a qcow2 image's L1/L2 tables.

usage: qcow2-layout.py IMG [--key NAME]

Prints a JSON object of counters (or just one counter with --key), used by
the tests to assert that an image built with qemu-img/qemu-io really
contains the on-disk states the test is about (so a test cannot pass
vacuously because QEMU happened to lay the image out differently).

Counters:
  version, cluster_bits, extended_l2, refcount_order, compression_type,
  l2_tables             L2 tables referenced by L1
  normal                standard clusters with a host offset
  compressed            compressed clusters
  compressed_cross_cluster  compressed data spanning a host cluster boundary
  compressed_shared_sector  compressed data starting in the last 512-byte
                        sector of another compressed cluster's data
  zero_with_offset      (standard L2) zero flag with a host offset kept
  zero_no_offset        (standard L2) zero flag without a host offset
  sub_alloc             (extended L2) allocated subclusters
  sub_zero_with_offset  (extended L2) zero subclusters in a cluster with a
                        host offset
  sub_zero_no_offset    (extended L2) zero subclusters, no host offset
  sub_unalloc_with_offset (extended L2) unallocated subclusters in a
                        cluster with a host offset
  mixed_clusters        (extended L2) clusters with more than one
                        subcluster state
  dirty                 incompatible bit 0 (dirty, lazy refcounts)
  autoclear_bitmaps     autoclear bit 0 (bitmaps extension valid)
  ext_feature_table, ext_backing_format, ext_bitmaps
                        header extensions present (0/1); ext_other: count
                        of other extension types
  cluster_past_eof      host clusters (with a host offset) that extend past
                        the end of the file (QEMU leaves the unwritten tail
                        of the last cluster out of the file)
"""
import json
import struct
import sys


def main():
    args = sys.argv[1:]
    key = None
    if "--key" in args:
        i = args.index("--key")
        key = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    with open(args[0], "rb") as f:
        data = f.read()
    (magic, version, _bfo, _bfs, cluster_bits, _size, _crypt, l1_size,
     l1_off, _rt_off, _rt_clusters, _nsnap, _snap_off) = \
        struct.unpack_from(">IIQIIQIIQQIIQ", data, 0)
    if magic != 0x514649fb:
        sys.exit("not a qcow2 image")
    incompat = 0
    refcount_order = 4
    ctype = 0
    if version >= 3:
        incompat, _compat, _autoclear, refcount_order, hdr_len = \
            struct.unpack_from(">QQQII", data, 72)
        if hdr_len > 104:
            ctype = data[104]
    ext = bool(incompat & (1 << 4))
    autoclear = struct.unpack_from(">Q", data, 88)[0] if version >= 3 else 0
    exts = {}
    p = 72 if version < 3 else struct.unpack_from(">I", data, 100)[0]
    p = (p + 7) & ~7
    while p + 8 <= len(data):
        etype, elen = struct.unpack_from(">II", data, p)
        if etype == 0:
            break
        exts[etype] = exts.get(etype, 0) + 1
        p += 8 + ((elen + 7) & ~7)
    cs = 1 << cluster_bits
    esize = 16 if ext else 8
    nl2 = cs // esize
    c = dict(version=version, cluster_bits=cluster_bits, extended_l2=int(ext),
             refcount_order=refcount_order, compression_type=ctype,
             l2_tables=0, normal=0, compressed=0, compressed_cross_cluster=0,
             compressed_shared_sector=0, zero_with_offset=0, zero_no_offset=0,
             sub_alloc=0, sub_zero_with_offset=0, sub_zero_no_offset=0,
             sub_unalloc_with_offset=0, mixed_clusters=0,
             cluster_past_eof=0, dirty=int(bool(incompat & 1)),
             autoclear_bitmaps=int(bool(autoclear & 1)),
             ext_feature_table=int(0x6803f857 in exts),
             ext_backing_format=int(0xe2792aca in exts),
             ext_bitmaps=int(0x23852875 in exts),
             ext_other=sum(v for k, v in exts.items()
                           if k not in (0x6803f857, 0xe2792aca, 0x23852875)))
    OFF = 0x00fffffffffffe00
    x = 62 - (cluster_bits - 8)
    comp = []   # (start, end_of_last_sector)
    for i in range(l1_size):
        (l1e,) = struct.unpack_from(">Q", data, l1_off + 8 * i)
        l2_off = l1e & OFF
        if not l2_off:
            continue
        c["l2_tables"] += 1
        for j in range(nl2):
            (e,) = struct.unpack_from(">Q", data, l2_off + esize * j)
            bitmap = struct.unpack_from(">Q", data, l2_off + esize * j + 8)[0] \
                if ext else 0
            if e & (1 << 62):
                hoff = e & ((1 << x) - 1)
                nsect = ((e >> x) & ((1 << (cluster_bits - 8)) - 1)) + 1
                end = (hoff // 512 + nsect) * 512
                comp.append((hoff, end))
                c["compressed"] += 1
                if hoff // cs != (end - 1) // cs:
                    c["compressed_cross_cluster"] += 1
                continue
            hoff = e & OFF
            if hoff and hoff + cs > len(data):
                c["cluster_past_eof"] += 1
            if not ext:
                if e & 1:
                    c["zero_with_offset" if hoff else "zero_no_offset"] += 1
                elif hoff:
                    c["normal"] += 1
                continue
            states = set()
            for s in range(32):
                a = (bitmap >> s) & 1
                z = (bitmap >> (32 + s)) & 1
                if a:
                    c["sub_alloc"] += 1
                    states.add("a")
                elif z:
                    c["sub_zero_with_offset" if hoff else "sub_zero_no_offset"] += 1
                    states.add("z")
                elif hoff:
                    c["sub_unalloc_with_offset"] += 1
                    states.add("u")
                else:
                    states.add("u")
            if hoff:
                c["normal"] += 1
            if len(states) > 1:
                c["mixed_clusters"] += 1
    comp.sort()
    for (a, b) in zip(comp, comp[1:]):
        if b[0] < a[1] and b[0] // 512 == (a[1] - 1) // 512:
            c["compressed_shared_sector"] += 1
    if key:
        print(c[key])
    else:
        print(json.dumps(c, indent=1))


if __name__ == "__main__":
    main()
