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
The comparison and the N random REQ_ONE probes are extentcheck.py's.
--require lists flag values that must occur in QEMU's map (a test that
does not exercise them is a test bug).
"""

import json
import subprocess
import sys

from extentcheck import check, merge


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
    check(uri, expected_runs(spec, top_defers), spec, "chain-extents",
          probes, seed, require)


if __name__ == "__main__":
    main()
