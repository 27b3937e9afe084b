#!/usr/bin/python3
"""Random unaligned reads of an NBD export, checked against a raw file.

usage: random-reads.py URI RAW [--seed S] [--count N] [--max-len L]
                       [--hints B1,B2,...]

RAW is the expected guest view (qemu-img convert -O raw).  With a fixed
seed, issues N preads: a third at uniformly random offsets, the rest
starting within a few bytes/sectors of "interesting" boundaries (multiples
of each hint size B, e.g. the cluster size, subcluster size and the guest
span of one L2 table), so reads straddle clusters, subclusters and L2
tables.  Lengths are random in [1, L], biased towards small and odd sizes.
Every read must return exactly RAW's bytes.
"""
import random
import sys

import nbd


def main():
    args = sys.argv[1:]
    seed, count, max_len, hints = 1, 2000, 262144, []
    pos = []
    while args:
        a = args.pop(0)
        if a == "--seed":
            seed = int(args.pop(0))
        elif a == "--count":
            count = int(args.pop(0))
        elif a == "--max-len":
            max_len = int(args.pop(0))
        elif a == "--hints":
            hints = [int(x, 0) for x in args.pop(0).split(",") if x]
        else:
            pos.append(a)
    if len(pos) != 2:
        sys.exit(__doc__)
    uri, raw = pos
    with open(raw, "rb") as f:
        exp = f.read()
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    if size != len(exp):
        sys.exit("random-reads: export size %d != expected %d" % (size, len(exp)))
    if not hints:
        hints = [512, 4096, 65536]
    rng = random.Random(seed)
    bad = 0
    for i in range(count):
        if i % 3 == 0:
            off = rng.randrange(size)
        else:
            b = rng.choice(hints)
            nb = size // b
            base = rng.randint(0, nb) * b
            off = base + rng.choice((-513, -512, -7, -1, 0, 1, 3, 511, 512, 4095))
            off = min(max(off, 0), size - 1)
        r = rng.random()
        if r < 0.4:
            n = rng.randint(1, 600)
        elif r < 0.8:
            n = rng.randint(1, max_len)
        else:
            n = rng.choice((1, 512, 4096, 65536, max_len))
        n = min(n, size - off)
        got = h.pread(n, off)
        if got != exp[off:off + n]:
            bad += 1
            j = next(k for k in range(n) if got[k] != exp[off + k])
            print("random-reads: MISMATCH pread(count=%d, offset=%d): first "
                  "difference at guest offset %d: got 0x%02x expected 0x%02x"
                  % (n, off, off + j, got[j], exp[off + j]), file=sys.stderr)
            if bad >= 10:
                break
    if bad:
        sys.exit("random-reads: %s%d bad reads (seed %d)"
                 % ("at least " if bad >= 10 else "", bad, seed))
    print("random-reads: OK: %d reads (seed %d, hints %s)" % (count, seed, hints))


if __name__ == "__main__":
    main()
