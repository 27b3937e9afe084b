#!/usr/bin/python3
"""Compare the export's NBD block status (base:allocation) with qemu-img map.

usage: compare-extents.py URI IMG [--layer-only] [--probes N] [--seed S]
                          [--require F1,F2,...]

Expected flags per byte, from `qemu-img map --output=json` (of IMG's layer
alone, json: backing:null form, with --layer-only; else of IMG):
  data:true                                  -> 0 (data)
  present:false and the layer has a backing  -> 1 (HOLE: deferred)
  "offset" in the entry                      -> 2 (ZERO, host cluster kept)
  otherwise                                  -> 3 (HOLE|ZERO)
"The layer has a backing" holds only with --layer-only (the plugin serving
one layer of a chain); without it the whole image view is compared.

Both sides are expanded to runs (start, length, flags), adjacent runs with
equal flags merged, and compared exactly.  Then N random probes (default
200, fixed seed) ask block status with REQ_ONE at unaligned offsets: the
first extent must be reported at that offset, with the expected flags, and
must not extend past the end of the expected run.  --require lists flag
values that must occur in the expected map (guards against vacuous tests).
"""
import json
import os
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


def expected_runs(img, layer_only):
    if layer_only:
        spec = ["json:" + json.dumps({"driver": "qcow2", "backing": None,
                "file": {"driver": "file", "filename": os.path.abspath(img)}})]
    else:
        spec = ["-f", "qcow2", img]
    out = subprocess.run(["qemu-img", "map", "--output=json"] + spec,
                         check=True, stdout=subprocess.PIPE).stdout
    runs = []
    for e in json.loads(out):
        if e["data"]:
            f = 0
        elif not e["present"] and layer_only:
            f = 1
        elif "offset" in e:
            f = 2
        else:
            f = 3
        runs.append((e["start"], e["length"], f))
    return merge(runs)


def actual_runs(h, size):
    runs = []
    pos = 0
    while pos < size:
        count = min(size - pos, 1 << 30)
        got = []

        def cb(ctx, off, entries, err):
            if ctx == "base:allocation":
                got.append((off, list(entries)))
            return 0

        h.block_status(count, pos, cb)
        if not got:
            sys.exit("compare-extents: no base:allocation reply at %d" % pos)
        off, ents = got[0]
        if off != pos:
            sys.exit("compare-extents: reply for offset %d, asked %d" % (off, pos))
        start = pos
        for i in range(0, len(ents), 2):
            n, fl = ents[i], ents[i + 1]
            if n == 0:
                sys.exit("compare-extents: zero-length extent at %d" % start)
            n = min(n, size - start)
            runs.append((start, n, fl & 3))
            start += n
            if start >= size:
                break
        if start == pos:
            sys.exit("compare-extents: no progress at %d" % pos)
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
    raise IndexError(off)


def diff(exp, act, size):
    points = sorted({0, size} | {s for s, _, _ in exp} | {s + n for s, n, _ in exp}
                    | {s for s, _, _ in act} | {s + n for s, n, _ in act})
    bad = []
    for a, b in zip(points, points[1:]):
        if a >= size:
            break
        fe = flag_at(exp, a)[0]
        try:
            fa = flag_at(act, a)[0]
        except IndexError:
            fa = None
        if fe != fa:
            if bad and bad[-1][1] == a and bad[-1][2:] == (fe, fa):
                bad[-1] = (bad[-1][0], b, fe, fa)
            else:
                bad.append((a, b, fe, fa))
    return bad


def show(runs, title):
    print(title, file=sys.stderr)
    for (s, n, f) in runs[:60]:
        print("  [%#12x, %#12x) len %-10d %d %s" % (s, s + n, n, f, NAMES.get(f, "?")),
              file=sys.stderr)
    if len(runs) > 60:
        print("  ... %d more" % (len(runs) - 60), file=sys.stderr)


def main():
    args = sys.argv[1:]
    layer_only = False
    probes = 200
    seed = 1
    require = []
    pos = []
    while args:
        a = args.pop(0)
        if a == "--layer-only":
            layer_only = True
        elif a == "--probes":
            probes = int(args.pop(0))
        elif a == "--seed":
            seed = int(args.pop(0))
        elif a == "--require":
            require = [int(x) for x in args.pop(0).split(",")]
        elif a == "":
            pass
        else:
            pos.append(a)
    if len(pos) != 2:
        sys.exit(__doc__)
    uri, img = pos

    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.connect_uri(uri)
    if not h.can_meta_context("base:allocation"):
        sys.exit("compare-extents: server does not support base:allocation")
    size = h.get_size()

    exp = expected_runs(img, layer_only)
    exp_size = exp[-1][0] + exp[-1][1] if exp else 0
    if exp_size != size:
        sys.exit("compare-extents: export size %d != qemu-img map size %d"
                 % (size, exp_size))
    act = actual_runs(h, size)

    if exp != act:
        print("compare-extents: MISMATCH for %s%s (flags: 0 data, 1 HOLE, "
              "2 ZERO, 3 HOLE|ZERO)" % (img, " layer-only" if layer_only else ""),
              file=sys.stderr)
        for (a, b, fe, fa) in diff(exp, act, size)[:40]:
            print("  [%#12x, %#12x) len %-10d expected %d %-9s got %s %s"
                  % (a, b, b - a, fe, NAMES[fe], fa, NAMES.get(fa, "?")),
                  file=sys.stderr)
        show(exp, "expected (qemu-img map):")
        show(act, "actual (NBD block status):")
        sys.exit(1)

    rng = random.Random(seed)
    for i in range(probes):
        off = rng.randrange(size)
        if i % 2 == 0:
            # Near a run boundary, where off-by-one errors live.
            s, n, _ = exp[rng.randrange(len(exp))]
            off = min(size - 1, max(0, s + rng.choice((-1, 0, 1, 511, 512, 513))))
        count = rng.randint(1, size - off)
        got = []
        h.block_status(count, off,
                       lambda ctx, o, ents, err: got.append((ctx, o, list(ents))) or 0,
                       nbd.CMD_FLAG_REQ_ONE)
        got = [g for g in got if g[0] == "base:allocation"]
        if not got or got[0][1] != off or len(got[0][2]) < 2:
            sys.exit("compare-extents: probe at %d: bad reply %r" % (off, got))
        n, fl = got[0][2][0], got[0][2][1] & 3
        fe, end = flag_at(exp, off)
        if fl != fe or n == 0 or off + n > end:
            sys.exit("compare-extents: probe block_status(count=%d, offset=%d, "
                     "REQ_ONE): got (len %d, flags %d %s), expected flags %d %s "
                     "with len <= %d" % (count, off, n, fl, NAMES.get(fl, "?"),
                                         fe, NAMES[fe], end - off))
    hist = {}
    for (_, n, f) in exp:
        hist[NAMES[f]] = hist.get(NAMES[f], 0) + n
    print("compare-extents: OK: %s: %d runs match qemu-img map (bytes: %s), "
          "%d probes OK" % (os.path.basename(img), len(exp),
                            ", ".join("%s %d" % kv for kv in sorted(hist.items())),
                            probes))
    for f in require:
        if NAMES[f] not in hist:
            sys.exit("compare-extents: %s: no %s extents: the image does not "
                     "exercise the case (test bug)" % (img, NAMES[f]))


if __name__ == "__main__":
    main()
