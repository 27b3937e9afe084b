#!/usr/bin/python3
"""Backing-chain test images (QEMU tools only) and QEMU-side checks for the
qcow2xchain filter tests.

usage:
  chainmk.py layer IMG SIZE [--fmt qcow2|raw] [-o OPTS] [-b BACKING [-F FMT]]
                   [--seed S] [OP ...]
      Create IMG with qemu-img create (-o OPTS; -b/-F as given, so a
      relative BACKING is relative to IMG's directory, as in QEMU), then
      apply OPs with qemu-io (-f FMT of IMG, so an overlay's writes see its
      backing chain).  Every data write has its own seeded random bytes.
      OP (offsets/lengths accept k/m suffixes, '+' and '-', e.g. 64k+100):
        d:OFF:LEN   random data               p:OFF:LEN   low-entropy data
        c:OFF:LEN   compressed write (discard first; cluster aligned)
        z:OFF:LEN   write -z (zero, keeps host clusters)
        u:OFF:LEN   write -z -u (zero, may unmap)
        t:OFF:LEN   discard
        full        random data over the whole image
        rand:N      N random ops of the kinds above, offsets/lengths biased
                    to cluster and subcluster boundaries
  chainmk.py spec IMG [DEPTH [BACKING [FORMAT]]]
      Print QEMU's name for IMG's backing chain: IMG itself, or a json:
      filename that keeps at most DEPTH backing layers below IMG ("-" for
      all) and/or gives IMG the backing file BACKING (format FORMAT, or
      probed: qcow2 magic, else raw), whatever IMG's header says.
  chainmk.py check IMG
      qemu-img check IMG: no errors, corruptions or leaks.
  chainmk.py strip-backing-format IMG
      Remove the backing file format header extension (QEMU then probes).
  chainmk.py layer-map IMG
      qemu-img map --output=json of IMG's layer alone (backing:null).
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

EXT_BACKING_FORMAT = 0xE2792ACA


def die(msg):
    sys.exit("chainmk.py: " + msg)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.stderr.write(r.stdout.decode(errors="replace"))
        die("command failed (exit %d): %s" % (r.returncode, " ".join(cmd)))
    return r.stdout.decode(errors="replace")


def num(s):
    """Integer with k/m suffixes, '+' and '-' (e.g. 1M+64k-700)."""
    import re
    tot, sign = 0, 1
    for tok in re.findall(r"[+-]|[0-9a-fA-Fx]+[kKmM]?", str(s)):
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


def header(path):
    with open(path, "rb") as f:
        h = f.read(4096)
    if h[:4] != b"QFI\xfb":
        return None
    version, bfo, bfs, cbits, size = struct.unpack_from(">IQIIQ", h, 4)
    incompat = struct.unpack_from(">Q", h, 72)[0] if version >= 3 else 0
    hlen = struct.unpack_from(">I", h, 100)[0] if version >= 3 else 72
    return dict(version=version, cluster=1 << cbits, size=size,
                ext=bool(incompat & 16), hlen=hlen, bfo=bfo, bfs=bfs)


def low_entropy(rng, n):
    alpha = bytes(rng.sample(range(1, 256), 4))
    table = bytes(alpha[i % len(alpha)] for i in range(256))
    return rng.randbytes(n).translate(table)


def cmd_layer(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="chainmk.py layer")
    ap.add_argument("img")
    ap.add_argument("size")
    ap.add_argument("--fmt", default="qcow2")
    ap.add_argument("-o", dest="opts")
    ap.add_argument("-b", dest="backing")
    ap.add_argument("-F", dest="bfmt")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("ops", nargs="*")
    a = ap.parse_intermixed_args(argv)
    size = num(a.size)
    cmd = ["qemu-img", "create", "-q", "-f", a.fmt]
    if a.opts:
        cmd += ["-o", a.opts]
    if a.backing:
        cmd += ["-b", a.backing]
        if a.bfmt:
            cmd += ["-F", a.bfmt]
    run(cmd + [a.img, str(size)])
    h = header(a.img) if a.fmt == "qcow2" else None
    cs = h["cluster"] if h else 65536
    sub = cs // 32 if h and h["ext"] else cs
    rng = random.Random(a.seed)
    tmp = tempfile.mkdtemp(prefix="chainmk.", dir=os.path.dirname(os.path.abspath(a.img)))
    files = []
    cmds = []
    # v2 overlays: QEMU ignores discards, so a compressed write (which needs
    # a cluster without a host offset) only works on untouched clusters.
    v2_backed = bool(h and h["version"] < 3 and a.backing)
    touched = set()

    def datafile(n, low=False):
        f = os.path.join(tmp, "d%d" % len(files))
        with open(f, "wb") as fh:
            fh.write(low_entropy(rng, n) if low else rng.randbytes(n))
        files.append(f)
        return f

    def add(kind, off, n, rand=False):
        n = min(n, size - off)
        if n <= 0:
            return
        span = set(range(off // cs, (off + n + cs - 1) // cs))
        if kind == "c" and v2_backed and span & touched:
            if rand:
                return
            die("compressed write %d+%d: cluster already written in a v2 "
                "overlay (put c: ops first)" % (off, n))
        if kind != "t" or not v2_backed:
            touched.update(span)
        if kind == "d":
            cmds.append("write -q -s %s %d %d" % (datafile(n), off, n))
        elif kind == "p":
            cmds.append("write -q -s %s %d %d" % (datafile(n, True), off, n))
        elif kind == "c":
            if off % cs or (n % cs and off + n != size):
                die("compressed write %d+%d not cluster aligned" % (off, n))
            cmds.append("discard -q %d %d" % (off, n))
            cmds.append("write -q -c -s %s %d %d" % (datafile(n, True), off, n))
        elif kind == "z":
            cmds.append("write -q -z %d %d" % (off, n))
        elif kind == "u":
            cmds.append("write -q -z -u %d %d" % (off, n))
        elif kind == "t":
            cmds.append("discard -q %d %d" % (off, n))
        else:
            die("unknown op kind " + kind)

    def rand_op():
        kinds = ["d", "d", "d", "p", "z", "u", "t"] + (["c"] if h else [])
        if a.fmt == "raw":
            kinds = ["d", "d", "p"]
        k = rng.choice(kinds)
        ncl = max(1, size // cs)
        c = rng.randrange(ncl)
        if k == "c":
            add("c", c * cs, cs * rng.randint(1, 2), rand=True)
            return
        r = rng.random()
        if r < 0.35:
            off, n = c * cs, cs * rng.randint(1, 3)
        elif r < 0.7:
            off = c * cs + rng.randrange(cs // sub) * sub
            n = sub * rng.randint(1, 5)
        else:
            off = c * cs + rng.randrange(cs)
            n = rng.randint(1, 2 * cs)
        if k in ("z", "u", "t") and a.fmt == "qcow2":
            # qemu-io only zeroes/discards aligned ranges reliably
            off = off // 512 * 512
            n = max(512, n // 512 * 512)
        add(k, off, n)

    for op in a.ops:
        if op == "full":
            add("d", 0, size)
        elif op.startswith("rand:"):
            for _ in range(int(op[5:])):
                rand_op()
        else:
            parts = op.split(":")
            if len(parts) != 3:
                die("bad op " + op)
            add(parts[0], num(parts[1]), num(parts[2]))
    for i in range(0, len(cmds), 200):
        argv2 = ["qemu-io", "-f", a.fmt, a.img]
        for c in cmds[i:i + 200]:
            argv2 += ["-c", c]
        run(argv2)
    for f in files:
        os.unlink(f)
    os.rmdir(tmp)
    print("chainmk: %s (%s, %d bytes%s): %d qemu-io commands" %
          (os.path.basename(a.img), a.fmt, size,
           ", backing " + a.backing if a.backing else "", len(cmds)))


def probe(path):
    with open(path, "rb") as f:
        return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"


def info(path):
    return json.loads(run(["qemu-img", "info", "--output=json", "-U", path]))


def node(path, fmt, depth, override=None):
    path = os.path.abspath(path)
    fmt = fmt or probe(path)
    d = {"driver": fmt, "file": {"driver": "file", "filename": path}}
    if fmt != "qcow2":
        return d
    if depth == 0:
        d["backing"] = None
        return d
    nd = None if depth is None else depth - 1
    if override:
        d["backing"] = node(override[0], override[1], nd)
        return d
    i = info(path)
    if "full-backing-filename" in i:
        d["backing"] = node(i["full-backing-filename"],
                            i.get("backing-filename-format"), nd)
    return d


def cmd_spec(argv):
    if not 1 <= len(argv) <= 4:
        die("usage: spec IMG [DEPTH [BACKING [FORMAT]]]")
    img = argv[0]
    depth = None if len(argv) < 2 or argv[1] in ("-", "") else int(argv[1])
    override = (argv[2], argv[3] if len(argv) > 3 else None) \
        if len(argv) > 2 and argv[2] else None
    if depth is None and override is None:
        print(img)
        return
    print("json:" + json.dumps(node(img, "qcow2", depth, override)))


def cmd_check(argv):
    img = argv[0]
    r = subprocess.run(["qemu-img", "check", "--output=json", img],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    try:
        d = json.loads(out)
    except ValueError:
        d = None
    bad = r.returncode != 0 or d is None or any(
        d.get(k, 0) for k in ("check-errors", "corruptions", "leaks",
                              "corruptions-fixed", "leaks-fixed"))
    if bad:
        sys.stderr.write(out + "\n")
        sys.stderr.write(subprocess.run(["qemu-img", "check", img],
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT).stdout.decode())
        die("qemu-img check %s: not clean (exit %d)" % (img, r.returncode))
    print("check OK: %s" % os.path.basename(img))


def cmd_strip_backing_format(argv):
    img = argv[0]
    h = header(img)
    with open(img, "r+b") as f:
        data = bytearray(f.read(h["cluster"]))
        p = (h["hlen"] + 7) & ~7
        start = p
        keep = []
        found = False
        while p + 8 <= len(data):
            t, n = struct.unpack_from(">II", data, p)
            if t == 0:
                break
            blob = bytes(data[p:p + 8 + ((n + 7) & ~7)])
            if t == EXT_BACKING_FORMAT:
                found = True
            else:
                keep.append(blob)
            p += len(blob)
        if not found:
            die("%s has no backing format extension" % img)
        new = b"".join(keep) + bytes(8)
        new += bytes(p + 8 - start - len(new))
        data[start:start + len(new)] = new
        f.seek(0)
        f.write(data)
    print("stripped backing format extension of %s" % os.path.basename(img))


def cmd_layer_map(argv):
    spec = "json:" + json.dumps({"driver": "qcow2", "backing": None,
                                 "file": {"driver": "file",
                                          "filename": os.path.abspath(argv[0])}})
    sys.stdout.write(run(["qemu-img", "map", "--output=json", spec]))


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) >= 2 else 1)
    c, argv = sys.argv[1], sys.argv[2:]
    {"layer": cmd_layer, "spec": cmd_spec, "check": cmd_check,
     "strip-backing-format": cmd_strip_backing_format,
     "layer-map": cmd_layer_map}.get(c, lambda _: die("unknown command " + c))(argv)


if __name__ == "__main__":
    main()
