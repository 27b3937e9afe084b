#!/usr/bin/python3
# report.py RESULTS META: the benchmark table, BENCH/RATIO lines and target checks.
# RESULTS lines: "REP WORKLOAD SERVER VALUE UNIT UNITS-DONE SERVER-CPU-SECONDS"
#   (VALUE: higher is better; UNITS-DONE: I/Os or MiB; CPU "-" if unknown)
# META lines:    "WORKLOAD UNIT SPECIFIC-TARGET NOTE..."  (in table order)
import statistics, sys
from collections import defaultdict

SERVERS = ["file", "qemu-nbd", "qcow2x"]
res = defaultdict(dict)                 # (wid, server) -> {rep: value}
cpu = defaultdict(dict)                 # (wid, server) -> {rep: CPU seconds per unit}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 4:
        res[(f[1], f[2])][int(f[0])] = float(f[3])
    if len(f) >= 7 and f[6] != "-" and float(f[5]) > 0:
        cpu[(f[1], f[2])][int(f[0])] = float(f[6]) / float(f[5])
meta = []
for line in open(sys.argv[2]):
    f = line.split(None, 3)
    if f:
        meta.append((f[0], f[1], f[2], f[3].strip() if len(f) > 3 else ""))

def fmt(v):
    if v is None:
        return "-"
    return "%.0f" % v if v >= 100 else "%.1f" % v

def med(d):
    return statistics.median(d.values()) if d else None

def ratios(wid, other):
    a, b = res.get((wid, "qcow2x"), {}), res.get((wid, other), {})
    return {r: a[r] / b[r] for r in sorted(a) if r in b and b[r] > 0}

rows, lines, misses = [], [], []
for wid, unit, spec, note in meta:
    vals = {s: med(res.get((wid, s), {})) for s in SERVERS}
    if all(v is None for v in vals.values()):
        continue
    rq, rf = ratios(wid, "qemu-nbd"), ratios(wid, "file")
    mq = statistics.median(rq.values()) if rq else None
    mf = statistics.median(rf.values()) if rf else None
    # General target: >= 1.5x qemu-nbd, or >= 0.9x file where that is the lower bar.
    gen = "-"
    if spec != "aux" and (mq is not None or mf is not None):
        gen = "ok" if (mq or 0) >= 1.5 or (mf or 0) >= 0.9 else "MISS"
    sp = "-"
    if spec.startswith("file>="):
        need = float(spec[6:])
        sp = "-" if mf is None else ("ok" if mf >= need else "MISS")
        sp = "%s:%s" % (spec, sp)
    rows.append((wid, unit, vals, mq, mf, gen, sp, note))
    for s in SERVERS:
        d = res.get((wid, s), {})
        if d:
            lines.append("BENCH workload=%s server=%s value=%s unit=%s reps=%s" % (
                wid, s, "%.3f" % vals[s], unit,
                ",".join("%.3f" % d[r] for r in sorted(d))))
    lines.append("RATIO workload=%s qcow2x/qemu-nbd=%s qcow2x/file=%s per-rep-qemu-nbd=%s "
                 "per-rep-file=%s target-general=%s target-specific=%s" % (
        wid, "-" if mq is None else "%.3f" % mq, "-" if mf is None else "%.3f" % mf,
        ",".join("%.3f" % v for v in rq.values()) or "-",
        ",".join("%.3f" % v for v in rf.values()) or "-", gen, sp))
    if spec == "aux":
        sp = "(aux)"
    if gen == "MISS" or sp.endswith("MISS"):
        misses.append(wid)

# Compressed copy: does qcow2x scale with connections?
for wid, unit, spec, note in meta:
    if wid.endswith("-1conn"):
        multi = wid[:-len("-1conn")]
        for s in SERVERS:
            a, b = med(res.get((multi, s), {})), med(res.get((wid, s), {}))
            if a and b:
                lines.append("SCALING workload=%s server=%s multi-conn/1-conn=%.3f" % (multi, s, a / b))

w = max([len(r[0]) for r in rows] + [8])
hdr = "%-*s %-6s %9s %9s %9s %8s %8s  %-4s %s" % (
    w, "workload", "unit", "file", "qemu-nbd", "qcow2x", "x/qemu", "x/file", "gen", "specific")
print(hdr)
print("-" * len(hdr))
for wid, unit, vals, mq, mf, gen, sp, note in rows:
    print("%-*s %-6s %9s %9s %9s %8s %8s  %-4s %s" % (
        w, wid, unit, fmt(vals["file"]), fmt(vals["qemu-nbd"]), fmt(vals["qcow2x"]),
        "-" if mq is None else "%.2f" % mq, "-" if mf is None else "%.2f" % mf, gen, sp))
notes = [(r[0], r[7]) for r in rows if r[7]]
if notes:
    print()
    for wid, note in notes:
        print("  %s: %s" % (wid, note))
print()
print("x/qemu = qcow2x/qemu-nbd, x/file = qcow2x/file: medians of the per-repetition ratios.")
print("gen: qcow2x >= 1.5x qemu-nbd or >= 0.9x file.  Higher is better everywhere.")
print()
# Server CPU cost per unit of work (lower is better): robust to the CPU share
# the benchmark gets on a busy machine, unlike throughput.
print("Server CPU per unit of work (lower is better; user+system time of the server process):")
hdr2 = "%-*s %-11s %9s %9s %9s %8s %8s" % (w, "workload", "unit", "file", "qemu-nbd", "qcow2x",
                                         "x/qemu", "x/file")
print(hdr2)
print("-" * len(hdr2))
for wid, unit, vals, mq, mf, gen, sp, note in rows:
    scale, cu = (1e6, "us/IO") if unit == "IOPS" else (1024e3, "ms/GiB")
    c = {s_: med(cpu.get((wid, s_), {})) for s_ in SERVERS}
    def cr(other):
        a, b = cpu.get((wid, "qcow2x"), {}), cpu.get((wid, other), {})
        r = [a[k] / b[k] for k in a if k in b and b[k] > 0]
        return "-" if not r else "%.2f" % statistics.median(r)
    print("%-*s %-11s %9s %9s %9s %8s %8s" % (
        w, wid, cu, *(fmt(None if c[s_] is None else c[s_] * scale) for s_ in SERVERS),
        cr("qemu-nbd"), cr("file")))
    for s_ in SERVERS:
        if c[s_] is not None:
            lines.append("CPU workload=%s server=%s value=%.3f unit=%s" % (wid, s_, c[s_] * scale, cu))
print()
for l in lines:
    print(l)
print("MISSES %s" % (" ".join(misses) if misses else "none"))
