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

The comparison and the N random REQ_ONE probes (default 200, fixed seed)
are extentcheck.py's.  --require lists flag values that must occur in the
expected map (guards against vacuous tests).
"""

import json
import os
import subprocess
import sys

from extentcheck import check, merge


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


def main():
    args = sys.argv[1:]
    layer_only = False
    probes, seed, require, pos = 200, 1, [], []
    while args:
        a = args.pop(0)
        if a == "--layer-only":
            layer_only = True
        elif a == "--probes":
            probes = int(args.pop(0))
        elif a == "--seed":
            seed = int(args.pop(0))
        elif a == "--require":
            require = [int(x) for x in args.pop(0).split(",") if x]
        elif a == "":
            pass
        else:
            pos.append(a)
    if len(pos) != 2:
        sys.exit(__doc__)
    uri, img = pos
    what = os.path.basename(img) + (" layer-only" if layer_only else "")
    check(uri, expected_runs(img, layer_only), what, "compare-extents",
          probes, seed, require)


if __name__ == "__main__":
    main()
