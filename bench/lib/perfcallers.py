#!/usr/bin/python3
# perfcallers.py SCRIPT KEY...: from `perf script -F comm,ip,sym,dso` output,
# the share of samples whose stack contains KEY and, for each, the first
# caller frame in the plugin, the filter or nbdkit (who waits on that lock,
# who calls ftruncate, ...).
import sys
from collections import Counter

stacks, cur = [], []
for line in open(sys.argv[1]):
    if not line.startswith((" ", "\t")):
        if cur:
            stacks.append(cur)
        cur = []
        continue
    f = line.split(None, 1)
    if len(f) == 2:
        cur.append(f[1].strip())
if cur:
    stacks.append(cur)
n = len(stacks) or 1
print("samples: %d" % len(stacks))
for key in sys.argv[2:]:
    c = Counter()
    for s in stacks:
        idx = [i for i, fr in enumerate(s) if key in fr]
        if not idx:
            continue
        for fr in s[idx[0] + 1:]:
            if "plugin.so" in fr or "filter.so" in fr or "/nbdkit)" in fr:
                name = fr.split(" (")[0]
                c[name if name != "[unknown]" else "nbdkit core"] += 1
                break
        else:
            c["(no nbdkit/plugin frame)"] += 1
    t = sum(c.values())
    print("%-24s %5.1f%% of samples; first caller in nbdkit/plugin/filter: %s" % (
        key, 100.0 * t / n, ", ".join("%s %.1f%%" % (k, 100.0 * v / n) for k, v in c.most_common(6))))
