#!/usr/bin/python3
"""Compare the block status (base:allocation) of a qcow2xchain export with
qemu-img map of the chain (QEMU resolving it).

usage: chain-extents.py URI SPEC [--probes N] [--seed S] [--require F1,F2]
                        [--top-defers]

SPEC is what qemu-img map opens: the top image's file name, or a json:
filename (a cut or overridden chain).  Expected flags per byte, from
`qemu-img map --output=json SPEC`:
  data:true                                    -> 0 (data, in any layer)
  else "offset" in the entry and depth == 0    -> 2 (ZERO: the top layer
                                                     keeps a host cluster)
  else                                         -> 3 (HOLE|ZERO)
With --top-defers (the served top image defers unallocated space to a
backing file: it names one, or chain-backing= supplies one), an entry at
depth 0 that is "present":false is 3: a subcluster the top leaves to the
backing file, where no layer below has anything (past the end of a
shorter backing file, or chain-depth=0), is a hole of the chain even
though the top keeps a host cluster around it.  This is the documented
difference from qemu-img map ("Extents of the chain" in the man page).
Both sides are expanded to runs (adjacent equal flags merged) and compared
exactly; then N random REQ_ONE probes at unaligned offsets must report the
expected flags at that offset without running past the expected run.
--require lists flag values that must occur in QEMU's map (a test that
does not exercise them is a test bug).
"""
import json
import random
import subprocess
import sys

import nbd

NAMES = {0: "data", 1: "HOLE", 2: "ZERO", 3: "HOLE|ZERO"}


def merge(runs):
    out = []
    for (s, n, f) in runs:
        if n == 0:
            continue
        if out and out[-1][2] == f and out[-1][0] + out[-1][1] == s:
            out[-1] = (out[-1][0], out[-1][1] + n, f)
        else:
            out.append((s, n, f))
    return out


def expected_runs(spec, top_defers=False):
    out = subprocess.run(["qemu-img", "map", "--output=json", spec],
                         check=True, stdout=subprocess.PIPE).stdout
    runs = []
    for e in json.loads(out):
        if e["data"]:
            f = 0
        elif "offset" in e and e["depth"] == 0 and \
                (e["present"] or not top_defers):
            f = 2
        else:
            f = 3
        runs.append((e["start"], e["length"], f))
    return merge(runs)


def actual_runs(h, size):
    runs = []
    pos = 0
    while pos < size:
        got = []

        def cb(ctx, off, entries, err):
            if ctx == "base:allocation":
                got.append((off, list(entries)))
            return 0

        h.block_status(min(size - pos, 1 << 30), pos, cb)
        if not got or got[0][0] != pos:
            sys.exit("chain-extents: bad block status reply at %d: %r" % (pos, got))
        start = pos
        ents = got[0][1]
        for i in range(0, len(ents), 2):
            n, fl = ents[i], ents[i + 1]
            if n == 0:
                sys.exit("chain-extents: zero-length extent at %d" % start)
            n = min(n, size - start)
            runs.append((start, n, fl & 3))
            start += n
            if start >= size:
                break
        if start == pos:
            sys.exit("chain-extents: no progress at %d" % pos)
        pos = start
    return merge(runs)


def flag_at(runs, off):
    lo, hi = 0, len(runs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        s, n, f = runs[mid]
        if off < s:
            hi = mid - 1
        elif off >= s + n:
            lo = mid + 1
        else:
            return f, s + n
    return None, off


def show(runs, title):
    print(title, file=sys.stderr)
    for (s, n, f) in runs[:50]:
        print("  [%#10x, %#10x) len %-9d %d %s" % (s, s + n, n, f, NAMES.get(f, "?")),
              file=sys.stderr)
    if len(runs) > 50:
        print("  ... %d more" % (len(runs) - 50), file=sys.stderr)


def main():
    args = sys.argv[1:]
    probes, seed, require, pos = 200, 1, [], []
    top_defers = False
    while args:
        a = args.pop(0)
        if a == "--probes":
            probes = int(args.pop(0))
        elif a == "--seed":
            seed = int(args.pop(0))
        elif a == "--top-defers":
            top_defers = True
        elif a == "--require":
            require = [int(x) for x in args.pop(0).split(",") if x]
        else:
            pos.append(a)
    if len(pos) != 2:
        sys.exit(__doc__)
    uri, spec = pos
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.connect_uri(uri)
    if not h.can_meta_context("base:allocation"):
        sys.exit("chain-extents: server does not support base:allocation")
    size = h.get_size()
    exp = expected_runs(spec, top_defers)
    esize = exp[-1][0] + exp[-1][1] if exp else 0
    if esize != size:
        sys.exit("chain-extents: export size %d != qemu-img map size %d" % (size, esize))
    act = actual_runs(h, size)
    if exp != act:
        pts = sorted({0, size} | {s for s, _, _ in exp + act} |
                     {s + n for s, n, _ in exp + act})
        print("chain-extents: MISMATCH (0 data, 2 ZERO, 3 HOLE|ZERO) for %s" % spec,
              file=sys.stderr)
        k = 0
        for a, b in zip(pts, pts[1:]):
            fe, fa = flag_at(exp, a)[0], flag_at(act, a)[0]
            if fe != fa and k < 30:
                k += 1
                print("  [%#10x, %#10x) expected %s %s, got %s %s"
                      % (a, b, fe, NAMES.get(fe), fa, NAMES.get(fa)), file=sys.stderr)
        show(exp, "expected (qemu-img map):")
        show(act, "actual (NBD block status):")
        sys.exit(1)
    rng = random.Random(seed)
    for i in range(probes):
        if i % 2 == 0:
            s, n, _ = exp[rng.randrange(len(exp))]
            off = min(size - 1, max(0, s + rng.choice((-1, 0, 1, 511, 512, 513))))
        else:
            off = rng.randrange(size)
        count = rng.randint(1, size - off)
        got = []
        h.block_status(count, off,
                       lambda ctx, o, ents, err: got.append((ctx, o, list(ents))) or 0,
                       nbd.CMD_FLAG_REQ_ONE)
        got = [g for g in got if g[0] == "base:allocation"]
        if not got or got[0][1] != off or len(got[0][2]) < 2:
            sys.exit("chain-extents: probe at %d: bad reply %r" % (off, got))
        n, fl = got[0][2][0], got[0][2][1] & 3
        fe, end = flag_at(exp, off)
        if fl != fe or n == 0 or off + n > end:
            sys.exit("chain-extents: probe block_status(count=%d, offset=%d, REQ_ONE): "
                     "got (len %d, flags %d %s), expected flags %d %s, len <= %d"
                     % (count, off, n, fl, NAMES.get(fl), fe, NAMES.get(fe), end - off))
    hist = {}
    for (_, n, f) in exp:
        hist[NAMES[f]] = hist.get(NAMES[f], 0) + n
    print("chain-extents: OK: %d runs match qemu-img map (bytes: %s), %d probes OK"
          % (len(exp), ", ".join("%s %d" % kv for kv in sorted(hist.items())), probes))
    for f in require:
        if NAMES[f] not in hist:
            sys.exit("chain-extents: QEMU's map has no %s extents: the chain does not "
                     "exercise the case (test bug)" % NAMES[f])


if __name__ == "__main__":
    main()
