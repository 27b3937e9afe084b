"""Shared by compare-extents.py (one layer or image) and chain-extents.py
(a qcow2xchain export): compare an export's NBD block status
(base:allocation) with runs expected from qemu-img map.

Runs are (start, length, flags) with flags 0 data, 1 HOLE, 2 ZERO,
3 HOLE|ZERO; adjacent runs with equal flags are merged.  check() compares
the export's runs with the expected ones exactly, then makes N random
REQ_ONE probes at unaligned offsets (half of them next to a run boundary,
where off-by-one errors live): each must report the expected flags at
that offset without running past the expected run.  Exits with a message
on the first difference.
"""
import random
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


def connect(uri, tag):
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.connect_uri(uri)
    if not h.can_meta_context("base:allocation"):
        sys.exit("%s: server does not support base:allocation" % tag)
    return h


def actual_runs(h, size, tag):
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
            sys.exit("%s: bad block status reply at %d: %r" % (tag, pos, got))
        start = pos
        ents = got[0][1]
        for i in range(0, len(ents), 2):
            n, fl = ents[i], ents[i + 1]
            if n == 0:
                sys.exit("%s: zero-length extent at %d" % (tag, start))
            n = min(n, size - start)
            runs.append((start, n, fl & 3))
            start += n
            if start >= size:
                break
        if start == pos:
            sys.exit("%s: no progress at %d" % (tag, pos))
        pos = start
    return merge(runs)


def flag_at(runs, off):
    """(flags, end of the run) at OFF, or (None, OFF) outside RUNS."""
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


def diff(exp, act, size):
    points = sorted({0, size} | {s for s, _, _ in exp + act}
                    | {s + n for s, n, _ in exp + act})
    bad = []
    for a, b in zip(points, points[1:]):
        if a >= size:
            break
        fe, fa = flag_at(exp, a)[0], flag_at(act, a)[0]
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


def probe(h, exp, size, rng, tag):
    off = rng.randrange(size)
    if rng.random() < 0.5:
        s, _, _ = exp[rng.randrange(len(exp))]
        off = min(size - 1, max(0, s + rng.choice((-1, 0, 1, 511, 512, 513))))
    count = rng.randint(1, size - off)
    got = []
    h.block_status(count, off,
                   lambda ctx, o, ents, err: got.append((ctx, o, list(ents))) or 0,
                   nbd.CMD_FLAG_REQ_ONE)
    got = [g for g in got if g[0] == "base:allocation"]
    if not got or got[0][1] != off or len(got[0][2]) < 2:
        sys.exit("%s: probe at %d: bad reply %r" % (tag, off, got))
    n, fl = got[0][2][0], got[0][2][1] & 3
    fe, end = flag_at(exp, off)
    if fl != fe or n == 0 or off + n > end:
        sys.exit("%s: probe block_status(count=%d, offset=%d, REQ_ONE): got "
                 "(len %d, flags %d %s), expected flags %s %s with len <= %d"
                 % (tag, count, off, n, fl, NAMES.get(fl, "?"), fe,
                    NAMES.get(fe, "?"), end - off))


def check(uri, exp, what, tag, probes=200, seed=1, require=()):
    """Compare URI's block status with EXP (runs from qemu-img map of WHAT)."""
    h = connect(uri, tag)
    size = h.get_size()
    exp_size = exp[-1][0] + exp[-1][1] if exp else 0
    if exp_size != size:
        sys.exit("%s: export size %d != qemu-img map size %d"
                 % (tag, size, exp_size))
    act = actual_runs(h, size, tag)
    if exp != act:
        print("%s: MISMATCH for %s (flags: 0 data, 1 HOLE, 2 ZERO, 3 HOLE|ZERO)"
              % (tag, what), file=sys.stderr)
        for (a, b, fe, fa) in diff(exp, act, size)[:40]:
            print("  [%#12x, %#12x) len %-10d expected %s %-9s got %s %s"
                  % (a, b, b - a, fe, NAMES.get(fe, "?"), fa, NAMES.get(fa, "?")),
                  file=sys.stderr)
        show(exp, "expected (qemu-img map):")
        show(act, "actual (NBD block status):")
        sys.exit(1)
    rng = random.Random(seed)
    for _ in range(probes):
        probe(h, exp, size, rng, tag)
    hist = {}
    for (_, n, f) in exp:
        hist[NAMES[f]] = hist.get(NAMES[f], 0) + n
    print("%s: OK: %s: %d runs match qemu-img map (bytes: %s), %d probes OK"
          % (tag, what, len(exp), ", ".join("%s %d" % kv for kv in sorted(hist.items())),
             probes))
    for f in require:
        if NAMES[f] not in hist:
            sys.exit("%s: %s: qemu-img map has no %s extents: the test does not "
                     "exercise the case (test bug)" % (tag, what, NAMES[f]))
