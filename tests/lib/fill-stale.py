#!/usr/bin/python3
"""Fill host bytes that a qcow2 image reserves but that hold no guest data.

usage: fill-stale.py IMG [--pattern BYTE] [--min-bytes N] [--no-check]

Runs `qemu-img map --output=json` on IMG's own layer (backing:null via the
json: form when IMG names a backing file) and, for every entry with
data:false that still has an "offset" (zero clusters/subclusters that kept
their host cluster, unallocated subclusters of allocated clusters), writes
BYTE (default 0xA5) over those host bytes.  A reader that wrongly returns
host bytes for such regions then returns 0xA5 instead of zeros (or instead
of the backing file's data), and the tests catch it.  Reserved bytes past
the end of the file (QEMU does not write the tail of the last cluster) are
left alone: that state is QEMU's and readers must cope with it.

Checks (unless --no-check) that QEMU's view of the layer is unchanged by
the fill (qemu-img convert before and after), that no filled range overlaps
host bytes holding guest data, and (with --min-bytes) that at least N bytes
were filled, i.e. the image really has the states the test is about.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile


def run(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout


def layer_spec(img):
    info = json.loads(run(["qemu-img", "info", "--output=json", "-f", "qcow2", img]))
    if "backing-filename" in info:
        return ["json:" + json.dumps({"driver": "qcow2", "backing": None,
                "file": {"driver": "file", "filename": os.path.abspath(img)}})]
    return ["-f", "qcow2", img]


def qemu_view_hash(spec):
    with tempfile.TemporaryDirectory(prefix="fill-stale.") as d:
        out = os.path.join(d, "out.raw")
        run(["qemu-img", "convert", "-O", "raw"] + spec + [out])
        h = hashlib.sha256()
        with open(out, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()


def main():
    args = sys.argv[1:]
    pattern = 0xA5
    min_bytes = 0
    check = True
    pos = []
    while args:
        a = args.pop(0)
        if not a.startswith("--"):
            pos.append(a)
        elif a == "--pattern":
            pattern = int(args.pop(0), 0)
        elif a == "--min-bytes":
            min_bytes = int(args.pop(0))
        elif a == "--no-check":
            check = False
        else:
            sys.exit("fill-stale.py: unknown option " + a)
    if len(pos) != 1:
        sys.exit(__doc__)
    img = pos[0]
    spec = layer_spec(img)
    before = qemu_view_hash(spec) if check else None
    entries = json.loads(run(["qemu-img", "map", "--output=json"] + spec))

    data_ranges = [(e["offset"], e["offset"] + e["length"]) for e in entries
                   if e["data"] and "offset" in e]
    stale = [(e["offset"], e["offset"] + e["length"], e["start"]) for e in entries
             if not e["data"] and "offset" in e]
    for (s, t, g) in stale:
        for (ds, dt) in data_ranges:
            if s < dt and ds < t:
                sys.exit("fill-stale.py: %s: reserved range [%d,%d) (guest %d) "
                         "overlaps data at host [%d,%d)" % (img, s, t, g, ds, dt))
    fsize = os.path.getsize(img)
    total = 0
    beyond = 0
    with open(img, "r+b") as f:
        for (s, t, g) in stale:
            if t > fsize:
                # QEMU leaves the tail of the last host cluster unwritten
                # (e.g. unallocated subclusters after a partial write):
                # keep that state, a reader must cope with it.
                beyond += t - max(s, fsize)
                t = fsize
            if t <= s:
                continue
            f.seek(s)
            f.write(bytes([pattern]) * (t - s))
            total += t - s
        f.flush()
        os.fsync(f.fileno())
    print("fill-stale: %s: filled %d bytes in %d ranges with 0x%02x%s"
          % (os.path.basename(img), total, len(stale), pattern,
             "; %d reserved bytes beyond end of file left alone" % beyond
             if beyond else ""))
    if check:
        after = qemu_view_hash(spec)
        if after != before:
            sys.exit("fill-stale.py: %s: QEMU's view changed after filling "
                     "(test bug)" % img)
    if total < min_bytes:
        sys.exit("fill-stale.py: %s: only %d reserved-but-unused bytes, "
                 "expected at least %d: the image lacks the states the test "
                 "is about" % (img, total, min_bytes))


if __name__ == "__main__":
    main()
