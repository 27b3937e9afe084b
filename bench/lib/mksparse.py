#!/usr/bin/python3
# mksparse.py SIZE_BYTES SRC OUT: a sparse raw file of SIZE_BYTES with 64 KiB of
# data (taken from SRC at the same offset modulo its size) at the start of every MiB.
import os, sys

size, src, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
chunk, step = 64 * 1024, 1024 * 1024
srcsize = os.path.getsize(src)
with open(src, "rb") as s, open(out, "wb") as o:
    o.truncate(size)
    for off in range(0, size, step):
        s.seek(off % (srcsize - chunk))
        data = s.read(chunk)
        if data.count(0) == len(data):      # never an all-zero chunk
            data = b"\x01" + data[1:]
        os.pwrite(o.fileno(), data, off)
