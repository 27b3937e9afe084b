#!/usr/bin/python3
"""Apply a fixed list of NBD operations to an export and to a raw model,
checking the export against the model after every operation.

usage: chain-ops.py URI REF [--trim-ignored] [--seed S] OP...

REF is a raw file with the export's expected contents; it is updated.
OP (numbers accept k/m suffixes, '+' and '-'):
  write:OFF:LEN            random data (seeded)
  zero:OFF:LEN[:FLAGS]     write zeroes; FLAGS joined by ',': nohole
                           (NBD_CMD_FLAG_NO_HOLE, i.e. no MAY_TRIM), fua
  trim:OFF:LEN[:fua]       trim (the model zeroes the range, unless
                           --trim-ignored: then the model is unchanged)
  check                    read the whole export and compare
After each op the op's range plus 128 KiB around it is read back and
compared with the model.  Exit 1 on the first mismatch.
"""
import mmap
import random
import re
import sys

import nbd


def num(s):
    tot, sign = 0, 1
    for tok in re.findall(r"[+-]|[0-9a-fA-Fx]+[kKmM]?", s):
        if tok in "+-":
            sign = 1 if tok == "+" else -1
            continue
        m = 1
        if tok[-1] in "kK":
            m, tok = 1 << 10, tok[:-1]
        elif tok[-1] in "mM":
            m, tok = 1 << 20, tok[:-1]
        tot += sign * int(tok, 0) * m
    return tot


def compare(h, model, a, b, what):
    got = h.pread(b - a, a)
    exp = model[a:b]
    if got != exp:
        i = next(k for k in range(b - a) if got[k] != exp[k])
        j = i
        while j < b - a and got[j] != exp[j]:
            j += 1
        sys.exit("chain-ops: FAIL after %s: mismatch at %d (0x%x): %d differing "
                 "bytes from there; got %s expected %s"
                 % (what, a + i, a + i, j - i, bytes(got[i:i + 8]).hex(),
                    bytes(exp[i:i + 8]).hex()))


def main():
    args = sys.argv[1:]
    trim_ignored = False
    seed = 1
    pos = []
    while args:
        a = args.pop(0)
        if a == "--trim-ignored":
            trim_ignored = True
        elif a == "--seed":
            seed = int(args.pop(0))
        else:
            pos.append(a)
    if len(pos) < 2:
        sys.exit(__doc__)
    uri, ref, ops = pos[0], pos[1], pos[2:]
    rng = random.Random(seed)
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    f = open(ref, "r+b")
    model = mmap.mmap(f.fileno(), 0)
    if len(model) != size:
        sys.exit("chain-ops: model has %d bytes, export %d" % (len(model), size))
    for op in ops:
        if op == "check":
            for a in range(0, size, 1 << 20):
                compare(h, model, a, min(size, a + (1 << 20)), "check")
            continue
        p = op.split(":")
        kind, off, n = p[0], num(p[1]), num(p[2])
        fl = set(p[3].split(",")) if len(p) > 3 and p[3] else set()
        if n <= 0 or off < 0 or off + n > size:
            sys.exit("chain-ops: bad op %s (size %d)" % (op, size))
        flags = nbd.CMD_FLAG_FUA if "fua" in fl else 0
        if kind == "write":
            d = rng.randbytes(n)
            h.pwrite(d, off, flags)
            model[off:off + n] = d
        elif kind == "zero":
            if "nohole" in fl:
                flags |= nbd.CMD_FLAG_NO_HOLE
            h.zero(n, off, flags)
            model[off:off + n] = bytes(n)
        elif kind == "trim":
            h.trim(n, off, flags)
            if not trim_ignored:
                model[off:off + n] = bytes(n)
        else:
            sys.exit("chain-ops: unknown op " + op)
        compare(h, model, max(0, off - 65536), min(size, off + n + 65536), op)
    h.flush()
    for a in range(0, size, 1 << 20):
        compare(h, model, a, min(size, a + (1 << 20)), "all ops (final read-back)")
    h.shutdown()
    model.flush()
    print("chain-ops: %d ops OK, final read-back of %d bytes OK" % (len(ops), size))


if __name__ == "__main__":
    main()
