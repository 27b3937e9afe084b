#!/usr/bin/python3
"""Build qcow2 test images with QEMU tools only (qemu-img, qemu-io).

usage: mkimg.py RECIPE OUT [options]

Every write uses distinct pseudo-random data (seeded, via qemu-io write -s)
so a reader that fetches the right bytes from the wrong place is caught.

Recipes:
  ext-states OUT [--cluster-size N] [--backing BASE]
      extended L2 image whose clusters cover every subcluster state:
      allocated, zero with host offset, zero without host offset,
      unallocated in an allocated cluster, unallocated cluster, mixed
      clusters, unaligned writes (COW inside a subcluster), a write across
      a cluster boundary, a compressed cluster, a compressed cluster
      zeroed, a discarded cluster, and a last cluster only partly
      written (its tail is past the end of the file).  With --backing the
      image is an overlay of BASE (qcow2).
  std-states OUT [--cluster-size N] [--compat 0.10|1.1] [--backing BASE]
      standard L2 image: data clusters, zero clusters with and without a
      host offset (v3), discarded clusters, partial-cluster writes,
      a compressed cluster, unallocated clusters.
  compressed OUT SIZE [--alg zlib|zstd] [--cluster-size N] [--ext on|off]
                  [--seed S]
      qemu-img convert -c of mixed data (compressed clusters of many sizes
      packed back to back, so compressed data crosses host cluster
      boundaries and shares sectors with its neighbour), then qemu-io:
      write -c of a compressible cluster, a compressed cluster partly
      overwritten (decompressed to a normal cluster), one zeroed, one
      zeroed in part (subclusters, or COW on standard L2).
  shuffled OUT SIZE [--cluster-size N] [--ext on|off] [--seed S]
      random data written in chunks of 1..3 clusters at unaligned offsets,
      in random order, over 3/4 of the disk: host clusters end up out of
      guest order, so guest-contiguous ranges are host-discontiguous.
  base OUT SIZE [--cluster-size N]
      fully written qcow2 base image (random data) for overlays.
  data OUT SIZE [--seed S] [-o QEMU-IMG-OPTS] [--compress] [--mode M]
      qemu-img convert of gen-data.py output (mode mix by default) into a
      qcow2 image made with -o OPTS (and -c with --compress).
"""
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout.decode(errors="replace"))
        sys.exit("mkimg.py: command failed: %s" % " ".join(cmd))
    return r.stdout


class Writer:
    """Collects qemu-io commands; data writes get their own random file."""

    def __init__(self, img, seed, image_opts=None):
        self.img = img
        self.rng = random.Random(seed)
        self.cmds = []
        self.tmp = tempfile.mkdtemp(prefix="mkimg.")
        self.n = 0
        self.image_opts = image_opts

    def data(self, off, length):
        self.n += 1
        f = os.path.join(self.tmp, "w%d" % self.n)
        with open(f, "wb") as fh:
            fh.write(self.rng.randbytes(length))
        self.cmds.append("write -q -s %s %d %d" % (f, off, length))

    def comp(self, off, length):
        # Compressible but not constant data.
        self.n += 1
        f = os.path.join(self.tmp, "w%d" % self.n)
        alpha = bytes(self.rng.sample(range(1, 256), 6))
        table = bytes(alpha[i % len(alpha)] for i in range(256))
        with open(f, "wb") as fh:
            fh.write(self.rng.randbytes(length).translate(table))
        self.cmds.append("write -q -c -s %s %d %d" % (f, off, length))

    def zero(self, off, length, unmap=False):
        self.cmds.append("write -q -z %s%d %d" % ("-u " if unmap else "", off, length))

    def discard(self, off, length):
        self.cmds.append("discard -q %d %d" % (off, length))

    def flush(self):
        if not self.cmds:
            return
        args = ["qemu-io"]
        args += ["-f", "qcow2", self.img]
        for c in self.cmds:
            args += ["-c", c]
        run(args)
        self.cmds = []
        for f in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, f))

    def done(self):
        self.flush()
        os.rmdir(self.tmp)


def create(out, size, opts, backing=None):
    if os.path.exists(out):
        os.unlink(out)
    cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts]
    if backing:
        cmd += ["-b", os.path.abspath(backing), "-F", "qcow2"]
    run(cmd + [out, str(size)])


def ext_states(out, cs, backing):
    s = cs // 32
    size = 20 * cs + 3 * s          # not a multiple of the cluster size
    create(out, size, "cluster_size=%d,extended_l2=on" % cs, backing)
    w = Writer(out, 1001)
    C = lambda i: i * cs
    # C0: allocated cluster, two zero subclusters with host offset kept
    w.data(C(0), cs)
    w.zero(C(0) + 3 * s, 2 * s)
    # C1: whole cluster zeroed, host offset kept (all 32 zero subclusters)
    w.data(C(1), cs)
    w.zero(C(1), cs)
    # C2: three subclusters allocated (one by an unaligned write inside it,
    # COW), the others unallocated with the host offset kept
    w.data(C(2), s)
    w.data(C(2) + 5 * s + 100, 50)
    w.data(C(2) + 31 * s, s)
    # C3: one zero subcluster, no host cluster; the rest unallocated
    w.zero(C(3) + 2 * s, s)
    # C4: whole cluster zero without host offset
    w.zero(C(4), cs, unmap=True)
    # C5: unallocated
    # C6: allocated, zero (with -u: subclusters keep the offset) in the middle
    w.data(C(6), cs)
    w.zero(C(6) + 10 * s, 3 * s, unmap=True)
    # C7/C8: unaligned write across a cluster boundary
    w.data(C(8) - 3, 7)
    # C9: half written, zero range, then a small write inside a zero subcluster
    w.data(C(9), 16 * s)
    w.zero(C(9) + 8 * s, 2 * s)
    w.data(C(9) + 9 * s + 17, 33)
    # C10: compressed cluster
    w.comp(C(10), cs)
    # C11: compressed cluster, then zeroed
    w.comp(C(11), cs)
    w.zero(C(11), cs)
    # C12: allocated then discarded
    w.data(C(12), cs)
    w.discard(C(12), cs)
    # C13: compressed cluster, then partly overwritten (decompressed into a
    # normal cluster)
    w.comp(C(13), cs)
    w.data(C(13) + 7 * s + 5, 2 * s)
    # C14: every other subcluster allocated, the rest zero / unallocated
    for i in range(0, 32, 2):
        w.data(C(14) + i * s, s)
    for i in range(1, 32, 4):
        w.zero(C(14) + i * s, s)
    # C15..C17: unallocated; C18: zero subclusters only, alternating
    for i in range(0, 32, 3):
        w.zero(C(18) + i * s, s)
    # Last (partial) cluster C20, only its 2nd subcluster written, and it is
    # the last allocation, so the rest of its host cluster is past EOF.
    w.data(C(20) + s + 1, s - 2)
    w.done()


def std_states(out, cs, compat, backing):
    size = 24 * cs + 4096 if cs > 4096 else 24 * cs
    create(out, size, "cluster_size=%d,compat=%s" % (cs, compat), backing)
    w = Writer(out, 2002)
    C = lambda i: i * cs
    for i in range(0, 8):
        w.data(C(i), cs)
    w.zero(C(1), cs)                 # zero flag, offset kept (v3)
    w.zero(C(2), cs, unmap=True)     # zero flag, no offset (v3)
    w.discard(C(3), cs)              # discarded
    w.zero(C(4) + 512, 1024)         # partial zero: data cluster (COW)
    w.data(C(5) + 3, 1000)           # partial overwrite
    w.zero(C(9), cs)                 # zero on an unallocated cluster
    w.zero(C(10), 3 * cs, unmap=True)
    w.data(C(12) + cs // 2, cs)      # unaligned, two clusters
    w.comp(C(15), cs)                # compressed
    w.comp(C(16), cs)
    w.zero(C(16), cs)                # compressed, then zeroed
    w.comp(C(17), cs)
    w.data(C(17) + 100, 200)         # compressed, then partly overwritten
    w.data(C(23) + 7, 5)             # last full cluster, partly written
    w.done()


def compressed(out, size, cs, alg, ext, seed):
    data(out, size, seed, "cluster_size=%d,extended_l2=%s,compression_type=%s"
         % (cs, ext, alg), True, "mix")
    n = size // cs
    w = Writer(out, seed)
    # QEMU only writes compressed data over clusters without a host offset.
    w.zero(1 * cs, cs, unmap=True)
    w.comp(1 * cs, cs)
    if n > 4:
        w.zero((n - 2) * cs, cs, unmap=True)
        w.comp((n - 2) * cs, cs)
    w.data(2 * cs + cs // 3, 777)         # partial overwrite of compressed
    w.zero(0, cs)                         # zeroed compressed cluster
    w.zero(3 * cs + cs // 2, cs // 4)     # partial zero of compressed
    w.done()


def shuffled(out, size, cs, ext, seed):
    create(out, size, "cluster_size=%d,extended_l2=%s" % (cs, ext))
    rng = random.Random(seed)
    chunks = []
    pos = 0
    while pos < size:
        n = min(rng.randint(1, 3 * cs), size - pos)
        if rng.random() < 0.75:
            chunks.append((pos, n))
        pos += n
    rng.shuffle(chunks)
    w = Writer(out, seed)
    for i, (off, n) in enumerate(chunks):
        w.data(off, n)
        if i % 500 == 499:
            w.flush()
    w.done()


def base(out, size, cs):
    create(out, size, "cluster_size=%d" % cs)
    w = Writer(out, 3003)
    step = 1 << 20
    for off in range(0, size, step):
        w.data(off, min(step, size - off))
    w.done()


def data(out, size, seed, opts, compress, mode):
    with tempfile.TemporaryDirectory(prefix="mkimg.") as d:
        raw = os.path.join(d, "in.raw")
        run(["/usr/bin/python3", os.path.join(HERE, "gen-data.py"),
             str(seed), str(size), raw, mode])
        if os.path.exists(out):
            os.unlink(out)
        cmd = ["qemu-img", "convert", "-f", "raw", "-O", "qcow2"]
        if opts:
            cmd += ["-o", opts]
        if compress:
            cmd += ["-c"]
        run(cmd + [raw, out])


def parse_size(s):
    mult = {"k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20}.get(s[-1])
    return int(s[:-1]) * mult if mult else int(s)


def main():
    a = sys.argv[1:]
    if len(a) < 2:
        sys.exit(__doc__)
    recipe, out = a[0], a[1]
    rest = a[2:]
    opt = {"--cluster-size": "65536", "--compat": "1.1", "--backing": None,
           "--alg": "zlib", "--ext": "off",
           "--seed": "1", "-o": "", "--mode": "mix"}
    flags = set()
    pos = []
    while rest:
        x = rest.pop(0)
        if x in opt:
            opt[x] = rest.pop(0)
        elif x == "--compress":
            flags.add(x)
        else:
            pos.append(x)
    cs = parse_size(opt["--cluster-size"])
    if recipe == "ext-states":
        ext_states(out, cs, opt["--backing"])
    elif recipe == "std-states":
        std_states(out, cs, opt["--compat"], opt["--backing"])
    elif recipe == "compressed":
        compressed(out, parse_size(pos[0]), cs, opt["--alg"], opt["--ext"],
                   int(opt["--seed"]))
    elif recipe == "shuffled":
        shuffled(out, parse_size(pos[0]), cs, opt["--ext"], int(opt["--seed"]))
    elif recipe == "base":
        base(out, parse_size(pos[0]), cs)
    elif recipe == "data":
        data(out, parse_size(pos[0]), int(opt["--seed"]), opt["-o"],
             "--compress" in flags, opt["--mode"])
    else:
        sys.exit("mkimg.py: unknown recipe " + recipe)
    run(["qemu-img", "check", "-q", "-f", "qcow2", out])


if __name__ == "__main__":
    main()
