#!/usr/bin/python3
# qcow2x tests: hostile qcow2 images, and checks of how the plugin treats them.
#
# Make an image:
#   badimage.py CASE OUT [--good GOOD]
#       Build a small valid image with qemu-img/qemu-io, patch the defect CASE into it at the
#       byte level and write it to OUT.  --good also saves the unpatched image (for comparing
#       the regions that must still read correctly).  Prints nothing on success.
#   badimage.py --list            list the cases
#
# Check the plugin (each exits 0 if every check holds, else prints FAIL lines and exits 1):
#   badimage.py run-fail --plugin SO [--phrase P]... IMG [PLUGIN-ARG...]
#       nbdkit must refuse IMG: exit non-zero, no signal, no hang, no crash report, within
#       --max-seconds, under an address-space limit (--vmem-mib, default 1024, 0 = none) and
#       below --max-rss-mib; one stderr line must contain "error" and every phrase
#       (case-insensitive).
#   badimage.py refuse CASE [run-fail options] [PLUGIN-ARG...]
#       Make CASE in $TMPDIR, then run-fail on it.
#   badimage.py run-ok --plugin SO --expect RAW [--log-phrase P]... [--no-r --expect-readonly]
#                      IMG [PLUGIN-ARG...]
#       nbdkit must serve IMG; every byte must equal RAW; nbdkit's stderr must contain each
#       --log-phrase.
#   badimage.py run-eio --plugin SO --expect RAW --bad OFF:LEN [--bad OFF:LEN]... [--log-phrase P]...
#                       IMG [PLUGIN-ARG...]
#       On ONE connection: reads touching a --bad range fail with EIO; every other byte reads
#       and equals RAW (before and after the failing reads); the connection and the server
#       stay up; stderr contains each --log-phrase.
#
# Header layout and entry formats: QEMU docs/interop/qcow2.txt (everything big endian).

import argparse
import errno
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HDR = struct.Struct(">4sIQIIQIIQQIIQQQQII")   # the 104-byte version 3 header
FIELDS = {  # name: (offset, struct format)
    "magic": (0, ">4s"), "version": (4, ">I"), "backing_file_offset": (8, ">Q"),
    "backing_file_size": (16, ">I"), "cluster_bits": (20, ">I"), "size": (24, ">Q"),
    "crypt_method": (32, ">I"), "l1_size": (36, ">I"), "l1_table_offset": (40, ">Q"),
    "refcount_table_offset": (48, ">Q"), "refcount_table_clusters": (56, ">I"),
    "nb_snapshots": (60, ">I"), "snapshots_offset": (64, ">Q"), "incompatible": (72, ">Q"),
    "compatible": (80, ">Q"), "autoclear": (88, ">Q"), "refcount_order": (96, ">I"),
    "header_length": (100, ">I"),
}
EXT_FEATURE_TABLE = 0x6803f857
OFFSET_MASK = 0x00fffffffffffe00
L2_COMPRESSED = 1 << 62

# Names the tests look for.
NAMED_BIT = 13
NAMED_NAME = "qcx-frobnication"
FULL_NAME = "qcx-" + "n" * 38 + "-end"          # exactly 46 bytes: no NUL terminator
assert len(FULL_NAME) == 46
UNKNOWN_EXT_TYPE = 0x71637821                     # an unknown (ignorable) extension type
CRASH_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                      r"runtime error:|Segmentation|core dumped|Aborted|double free|"
                      r"stack smashing|malloc\(\)|free\(\):", re.I)


def die(msg):
    print("badimage.py: " + msg, file=sys.stderr)
    sys.exit(2)


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        die("command failed: %s\n%s" % (" ".join(cmd), r.stdout))


# ---------------------------------------------------------------------------------------------
# Base images.

def qemu_io(img, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    run(args + [img])


def base_std(path, cluster_size=65536):
    """8 MiB, given cluster size, some data (also in every 2 MiB region)."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=%d" % cluster_size,
         path, "8M"])
    qemu_io(path, "write -P 0x11 0 64k", "write -P 0x22 2052k 64k", "write -P 0x33 4M 1M",
            "write -P 0x44 8128k 64k", "write -z 6M 64k")


def base_compressed(path, ctype):
    """1 MiB, 64 KiB clusters, every cluster but one compressed (moderately compressible data,
    so each compressed stream is kilobytes long)."""
    raw = path + ".src.raw"
    rnd = random.Random(4242)
    data = bytearray()
    for i in range(16):
        if i == 5:
            data += bytes(65536)
        else:
            data += bytes(rnd.choice(b"0123456789abcdef") for _ in range(65536))
    with open(raw, "wb") as f:
        f.write(data)
    run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2",
         "-o", "compression_type=%s" % ctype, raw, path])
    os.unlink(raw)


class Image:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.d = bytearray(f.read())

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.d)

    def get(self, name):
        off, fmt = FIELDS[name]
        return struct.unpack_from(fmt, self.d, off)[0]

    def set(self, name, value):
        off, fmt = FIELDS[name]
        struct.pack_into(fmt, self.d, off, value)

    def u64(self, off):
        return struct.unpack_from(">Q", self.d, off)[0]

    def put64(self, off, v):
        struct.pack_into(">Q", self.d, off, v)

    @property
    def cluster_size(self):
        return 1 << self.get("cluster_bits")

    # Header extensions ---------------------------------------------------------------------
    def ext_start(self):
        return self.get("header_length") if self.get("version") >= 3 else 72

    def read_exts(self):
        off, exts = self.ext_start(), []
        while True:
            t, n = struct.unpack_from(">II", self.d, off)
            if t == 0:
                return exts
            exts.append([t, bytes(self.d[off + 8:off + 8 + n])])
            off += 8 + ((n + 7) & ~7)

    def write_exts(self, exts, raw_prefix=b""):
        """Rewrite the extension area (the base images have no backing file name there)."""
        start, end = self.ext_start(), self.cluster_size
        out = bytearray(raw_prefix)
        for t, data in exts:
            out += struct.pack(">II", t, len(data)) + data + bytes(-len(data) % 8)
        out += bytes(8)                                   # end marker
        assert start + len(out) <= end, "extensions do not fit"
        self.d[start:end] = out + bytes(end - start - len(out))

    def add_feature_name(self, ftype, bit, name):
        exts = self.read_exts()
        entry = struct.pack(">BB", ftype, bit) + name.encode().ljust(46, b"\0")[:46]
        for e in exts:
            if e[0] == EXT_FEATURE_TABLE:
                e[1] = e[1] + entry
                break
        else:
            exts.append([EXT_FEATURE_TABLE, entry])
        self.write_exts(exts)

    def drop_feature_table(self):
        self.write_exts([e for e in self.read_exts() if e[0] != EXT_FEATURE_TABLE])

    def set_incompat_bit(self, bit):
        self.set("incompatible", self.get("incompatible") | (1 << bit))

    # Mapping --------------------------------------------------------------------------------
    def l1_entry_off(self, i):
        return self.get("l1_table_offset") + 8 * i

    def l2_entry_off(self, guest_off):
        cb = self.get("cluster_bits")
        l2_entries = 1 << (cb - 3)
        ci = guest_off >> cb
        l1e = self.u64(self.l1_entry_off(ci // l2_entries))
        l2 = l1e & OFFSET_MASK
        if not l2:
            die("no L2 table for guest offset %#x" % guest_off)
        return l2 + 8 * (ci % l2_entries)

    def compressed_desc(self, guest_off):
        """(entry offset, host offset, bytes to read) of a compressed cluster."""
        cb = self.get("cluster_bits")
        eo = self.l2_entry_off(guest_off)
        e = self.u64(eo)
        if not e & L2_COMPRESSED:
            die("guest cluster at %#x is not compressed in the base image" % guest_off)
        x = 62 - (cb - 8)
        host = e & ((1 << x) - 1)
        nsect = (e >> x) & ((1 << (cb - 8)) - 1)
        return eo, host, (nsect + 1) * 512 - (host & 511), x


# ---------------------------------------------------------------------------------------------
# Cases: each returns nothing; gets (tmpdir, out, good) and writes OUT (and GOOD if asked).

def num(s):
    """Integer, decimal or 0x hex, optional K/M/G suffix."""
    m = re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)([KMG]?)", s)
    if not m:
        die("bad number %r" % s)
    return int(m[1], 0) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2]]


def patched(base_fn, patch):
    def make(tmp, out, good):
        b = os.path.join(tmp, "base.qcow2")
        base_fn(b)
        if good:
            shutil.copyfile(b, good)
        img = Image(b)
        patch(img)
        img.save(out)
    return make


def std(path):
    base_std(path)


def std4k(path):
    base_std(path, 4096)


def std8k(path):
    base_std(path, 8192)


def zlib_base(path):
    base_compressed(path, "zlib")


def zstd_base(path):
    base_compressed(path, "zstd")


def truncate_to(n):
    def p(img):
        del img.d[n:]
    return p


def setf(name, value):
    return lambda img: img.set(name, value)


def p_l1_straddle(img):
    # Put a copy of the L1 table in a new zero cluster at the end of the file and claim it is
    # two clusters long: the second cluster is beyond EOF.
    cs = img.cluster_size
    img.d += bytes(-len(img.d) % cs)
    new = len(img.d)
    old, n = img.get("l1_table_offset"), img.get("l1_size")
    img.d += img.d[old:old + 8 * n] + bytes(cs - 8 * n)
    img.set("l1_table_offset", new)
    img.set("l1_size", 2 * cs // 8)


def p_incompat_named(name):
    def p(img):
        img.add_feature_name(0, NAMED_BIT, name)
        img.set_incompat_bit(NAMED_BIT)
    return p


def p_incompat_unnamed(bit, keep_table):
    def p(img):
        if not keep_table:
            img.drop_feature_table()
        img.set_incompat_bit(bit)
    return p


def p_l1_entry(fn):
    def p(img):
        eo = img.l1_entry_off(0)
        img.put64(eo, fn(img, img.u64(eo)))
    return p


def p_compressed_beyond_eof(img):
    eo, host, n, x = img.compressed_desc(65536)
    e = img.u64(eo)
    far = (len(img.d) + (1 << 30)) & ~511
    img.put64(eo, (e & ~((1 << x) - 1)) | far)


def p_compressed_garbage(img):
    eo, host, n, x = img.compressed_desc(65536)
    assert n > 4096, "compressed stream unexpectedly short"
    img.d[host:host + 64] = b"\xff" * 64


def p_compressed_short(img):
    # A valid raw deflate stream that inflates to only 100 bytes instead of a cluster.
    eo, host, n, x = img.compressed_desc(65536)
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    s = c.compress(b"x" * 100) + c.flush()
    assert len(s) < n
    img.d[host:host + len(s)] = s


def p_backing(offset, size, name_len):
    def p(img):
        if name_len:
            img.d[offset:offset + name_len] = b"b" * (name_len - 4) + b".raw"
        img.set("backing_file_offset", offset)
        img.set("backing_file_size", size)
    return p


def backing_long(img):
    # A 1100-byte name right after the (rewritten) extensions, well inside cluster 0.
    exts = img.read_exts()
    img.write_exts(exts)
    off = 4096
    p_backing(off, 1100, 1100)(img)


def backing_straddle(img):
    cs = img.cluster_size
    p_backing(cs - 8, 100, 0)(img)


def ext_overrun(length):
    def p(img):
        exts = img.read_exts()
        bogus = struct.pack(">II", UNKNOWN_EXT_TYPE, length) + b"\xaa" * 16
        img.write_exts(exts, raw_prefix=bogus)
    return p


def created(fn):
    def make(tmp, out, good):
        fn(out)
    return make


def make_luks(out):
    run(["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=qcx-secret",
         "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", out, "1M"])


def make_aes(out):
    run(["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=qcx-secret",
         "-o", "encrypt.format=aes,encrypt.key-secret=sec0", out, "1M"])


def make_data_file(out):
    d, b = os.path.split(os.path.abspath(out))
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=%s.data" % b, b, "1M"], cwd=d)


FIXED = {
    "short-0": (std, truncate_to(0)),
    "short-50": (std, truncate_to(50)),
    "short-100": (std, truncate_to(100)),
    "magic": (std, setf("magic", b"QFJ\xfb")),
    "magic-zero": (std, setf("magic", b"\0\0\0\0")),
    "incompat-named": (std, p_incompat_named(NAMED_NAME)),
    "incompat-named-full": (std, p_incompat_named(FULL_NAME)),
    "extl2-small-clusters": (std8k, lambda img: img.set_incompat_bit(4)),
    "l1-offset-unaligned": (std, lambda img: img.set("l1_table_offset",
                                                     img.get("l1_table_offset") + 512)),
    "l1-offset-beyond-eof": (std, setf("l1_table_offset", 1 << 40)),
    "l1-straddles-eof": (std, p_l1_straddle),
    "refcount-offset-unaligned": (std, lambda img: img.set(
        "refcount_table_offset", img.get("refcount_table_offset") + 512)),
    "refcount-offset-beyond-eof": (std, setf("refcount_table_offset", 1 << 40)),
    "refcount-clusters-huge": (std, setf("refcount_table_clusters", 0x7fffffff)),
    "l2-beyond-eof": (std4k, p_l1_entry(lambda img, e: (e & ~OFFSET_MASK) |
                                        ((len(img.d) + (1 << 30)) & OFFSET_MASK & ~4095))),
    "l2-unaligned": (std4k, p_l1_entry(lambda img, e: e + 512)),
    "compressed-beyond-eof": (zlib_base, p_compressed_beyond_eof),
    "compressed-beyond-eof-zstd": (zstd_base, p_compressed_beyond_eof),
    "compressed-corrupt": (zlib_base, p_compressed_garbage),
    "compressed-corrupt-zstd": (zstd_base, p_compressed_garbage),
    "compressed-short": (zlib_base, p_compressed_short),
    "corrupt-bit": (std, lambda img: img.set_incompat_bit(1)),
    "data-file-bit": (std, lambda img: img.set_incompat_bit(2)),
    "backing-long": (std, backing_long),
    "backing-beyond-cluster": (std, backing_straddle),
    "backing-beyond-eof": (std, p_backing(1 << 40, 10, 0)),
    "ext-overrun": (std, ext_overrun(65536)),
    "ext-len-huge": (std, ext_overrun(0xfffffff8)),
}
CREATED = {"crypt-luks": make_luks, "crypt-aes": make_aes, "data-file": make_data_file}
PATTERNS = [  # regex, base, patch factory from the match
    (r"version-(\w+)", std, lambda m: setf("version", num(m[1]))),
    (r"incompat-bit-(\d+)", std, lambda m: p_incompat_unnamed(int(m[1]), True)),
    (r"incompat-bit-(\d+)-notable", std, lambda m: p_incompat_unnamed(int(m[1]), False)),
    (r"cluster-bits-(\w+)", std, lambda m: setf("cluster_bits", num(m[1]))),
    (r"refcount-order-(\w+)", std, lambda m: setf("refcount_order", num(m[1]))),
    (r"header-length-(\w+)", std, lambda m: setf("header_length", num(m[1]))),
    (r"l1-size-(\w+)", std4k, lambda m: setf("l1_size", num(m[1]))),   # base needs l1_size 4
    (r"crypt-method-(\w+)", std, lambda m: setf("crypt_method", num(m[1]))),
]


def lookup(case):
    if case in FIXED:
        base, patch = FIXED[case]
        return patched(base, patch)
    if case in CREATED:
        return created(CREATED[case])
    for rx, base, fac in PATTERNS:
        m = re.fullmatch(rx, case)
        if m:
            return patched(base, fac(m))
    die("unknown case %r (try --list)" % case)


def cmd_make(argv):
    ap = argparse.ArgumentParser(prog="badimage.py CASE OUT")
    ap.add_argument("case")
    ap.add_argument("out")
    ap.add_argument("--good")
    a = ap.parse_args(argv)
    make = lookup(a.case)
    out = os.path.abspath(a.out)
    with tempfile.TemporaryDirectory(prefix="badimage.", dir=os.path.dirname(out)) as tmp:
        make(tmp, out, a.good)


# ---------------------------------------------------------------------------------------------
# Checks.

class Checker:
    def __init__(self, what):
        self.what, self.failed = what, 0

    def check(self, ok, msg):
        if not ok:
            self.failed += 1
            print("FAIL: %s: %s" % (self.what, msg))
        return ok

    def finish(self, log=None):
        if self.failed:
            if log is not None:
                print("---- nbdkit stderr (%s) ----\n%s----" % (self.what, log))
            sys.exit(1)
        print("ok: %s" % self.what)


def vmem_limit_mib(a, default=1024):
    """Address-space limit in MiB for nbdkit (0 = none).  $QCX_VMEM_MIB overrides everything;
    sanitizer builds (which reserve terabytes of address space) get none."""
    if os.environ.get("QCX_VMEM_MIB"):
        return int(os.environ["QCX_VMEM_MIB"])
    try:
        if re.search(r"lib[atl]san|libubsan", subprocess.run(
                ["ldd", a.plugin], stderr=subprocess.DEVNULL, stdout=subprocess.PIPE,
                universal_newlines=True).stdout):
            return 0
    except OSError:
        pass
    return a.vmem_mib if a.vmem_mib is not None else default


def limiter(mib):
    def f():
        if mib:
            resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))
    return f


def limit_env(mib):
    # glibc reserves 64 MiB of address space per malloc arena (one per thread): keep that from
    # eating the limit meant for the plugin's own allocations.
    env = dict(os.environ)
    if mib:
        env["MALLOC_ARENA_MAX"] = "2"
    return env


def common_args(ap):
    ap.add_argument("--plugin", default=os.environ.get("PLUGIN"))
    ap.add_argument("--vmem-mib", type=int)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--what")
    ap.add_argument("img")
    ap.add_argument("args", nargs="*")


def log_checks(c, log, a):
    c.check(not CRASH_RE.search(log), "crash report on stderr")
    for p in a.log_phrase or []:
        c.check(p.lower() in log.lower(), "stderr does not contain %r" % p)


def cmd_run_fail(argv):
    ap = argparse.ArgumentParser(prog="badimage.py run-fail")
    common_args(ap)
    ap.add_argument("--phrase", action="append", default=[])
    ap.add_argument("--max-seconds", type=float, default=10)
    ap.add_argument("--max-rss-mib", type=int, default=256)
    a = ap.parse_args(argv)
    if not a.plugin:
        die("no --plugin")
    c = Checker(a.what or os.path.basename(a.img))
    cmd = ["nbdkit", "-U", "-", "-r", a.plugin, "file=" + a.img] + a.args + \
          ["--run", 'nbdinfo --size "$uri"']
    vmem = vmem_limit_mib(a)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, errors="replace",
                         preexec_fn=limiter(vmem), env=limit_env(vmem), start_new_session=True)
    try:
        out, err = p.communicate(timeout=a.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        c.check(False, "HANG: nbdkit still running after %gs" % a.timeout)
    elapsed = time.monotonic() - t0
    rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rc = p.returncode
    c.check(rc != 0, "nbdkit served the image (exit 0, stdout %r)" % out.strip())
    c.check(rc >= 0 and rc < 124, "nbdkit died by a signal or timeout (status %d)" % rc)
    c.check(elapsed <= a.max_seconds, "took %.1fs (> %gs)" % (elapsed, a.max_seconds))
    c.check(rss_mib <= a.max_rss_mib, "max RSS %.0f MiB (> %d)" % (rss_mib, a.max_rss_mib))
    c.check(not CRASH_RE.search(err), "crash report on stderr")
    c.check("out of memory" not in err.lower() and "cannot allocate" not in err.lower(),
            "allocation failure (huge allocation?)")
    lines = [l for l in err.splitlines()
             if "error" in l.lower() and all(ph.lower() in l.lower() for ph in a.phrase)]
    c.check(lines, "no stderr line with 'error' and %s" % " + ".join(map(repr, a.phrase)))
    if not c.failed:
        print("ok: %s: status %d, %.1fs, %.0f MiB: %s" % (c.what, rc, elapsed, rss_mib, lines[0]))
        return
    print("reproduce: nbdkit -U - -r %s file=%s %s--run 'nbdinfo --size \"$uri\"'"
          % (a.plugin, a.img, "".join(x + " " for x in a.args)))
    c.finish(err)


def cmd_refuse(argv):
    if not argv:
        die("usage: badimage.py refuse CASE [run-fail options] [PLUGIN-ARG...]")
    case, rest = argv[0], argv[1:]
    d = tempfile.mkdtemp(prefix=case + ".")
    img = os.path.join(d, case + ".qcow2")
    cmd_make([case, img])
    print("made %s: %s" % (case, img))
    cmd_run_fail(["--what", case] + rest + ["--", img] if "--" not in rest else
                 ["--what", case] + rest[:rest.index("--")] + [img] + rest[rest.index("--") + 1:])


class Server:
    """nbdkit in the background on a Unix socket, stderr to a file."""

    def __init__(self, a, readonly=True):
        import nbd
        self.nbd = nbd
        self.dir = tempfile.mkdtemp(prefix="badimage-srv.")
        self.sock = os.path.join(self.dir, "sock")
        self.pidf = os.path.join(self.dir, "pid")
        self.logf = os.path.join(self.dir, "log")
        cmd = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock, "-P", self.pidf] + \
              (["-r"] if readonly else []) + [a.plugin, "file=" + a.img] + a.args
        # No address-space limit unless asked for: nbdkit's worker threads alone reserve
        # hundreds of MiB of address space (stacks, malloc arenas).
        vmem = vmem_limit_mib(a, 0)
        self.p = subprocess.Popen(cmd, stdout=open(self.logf, "w"), stderr=subprocess.STDOUT,
                                  preexec_fn=limiter(vmem), env=limit_env(vmem))
        t0 = time.monotonic()
        while not os.path.exists(self.pidf):
            if self.p.poll() is not None:
                raise RuntimeError("nbdkit exited with status %d at start-up" % self.p.returncode,
                                   self.cleanup())
            if time.monotonic() - t0 > 30:
                self.p.kill()
                self.p.wait()
                raise RuntimeError("nbdkit did not start within 30s", self.cleanup())
            time.sleep(0.05)
        self.h = nbd.NBD()
        self.h.connect_unix(self.sock)

    def log(self):
        with open(self.logf, errors="replace") as f:
            return f.read()

    def cleanup(self):
        log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)
        return log

    def stop(self, c):
        """Disconnect, check the server survived, stop it, return its stderr."""
        c.check(self.p.poll() is None, "nbdkit died during the test (status %s)" % self.p.returncode)
        try:
            self.h.shutdown()
        except self.nbd.Error as e:
            c.check(False, "NBD_CMD_DISC failed: %s" % e)
        if hasattr(self.h, "close"):
            self.h.close()
        del self.h
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=20)
            c.check(rc in (0, -signal.SIGTERM), "nbdkit exit status %d at shutdown" % rc)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            c.check(False, "HANG: nbdkit did not exit on SIGTERM")
        return self.cleanup()


def read_expect(c, h, expect, off, n, label):
    try:
        got = h.pread(n, off)
    except Exception as e:   # nbd.Error
        c.check(False, "%s: read %#x+%#x failed: %s" % (label, off, n, e))
        return
    if got != expect[off:off + n]:
        bad = next(i for i in range(n) if got[i] != expect[off + i])
        c.check(False, "%s: read %#x+%#x: wrong data from byte %#x" % (label, off, n, off + bad))


def good_spans(size, bad, chunk=1 << 20):
    """Chunks of [0,size) that do not touch any bad range."""
    cuts = sorted(bad)
    pos, spans = 0, []
    for (bo, bl) in cuts + [(size, 0)]:
        while pos < bo:
            n = min(chunk, bo - pos)
            spans.append((pos, n))
            pos += n
        pos = max(pos, bo + bl)
    return spans


def parse_range(s):
    o, n = s.split(":")
    return (num(o), num(n))


def cmd_run_ok(argv):
    ap = argparse.ArgumentParser(prog="badimage.py run-ok")
    common_args(ap)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--log-phrase", action="append")
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--expect-readonly", action="store_true")
    a = ap.parse_args(argv)
    c = Checker(a.what or os.path.basename(a.img))
    expect = open(a.expect, "rb").read()
    try:
        s = Server(a, readonly=not a.no_r)
    except RuntimeError as e:
        c.check(False, str(e.args[0]))
        c.finish(e.args[1])
    h = s.h
    c.check(h.get_size() == len(expect), "size %d, expected %d" % (h.get_size(), len(expect)))
    if a.expect_readonly:
        c.check(h.is_read_only(), "export is not read-only")
    for off, n in good_spans(len(expect), []):
        read_expect(c, h, expect, off, n, "read")
    log = s.stop(c)
    log_checks(c, log, a)
    c.finish(log)


def cmd_run_eio(argv):
    ap = argparse.ArgumentParser(prog="badimage.py run-eio")
    common_args(ap)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--bad", action="append", type=parse_range, required=True)
    ap.add_argument("--log-phrase", action="append")
    a = ap.parse_args(argv)
    c = Checker(a.what or os.path.basename(a.img))
    expect = open(a.expect, "rb").read()
    try:
        s = Server(a)
    except RuntimeError as e:
        c.check(False, str(e.args[0]))
        c.finish(e.args[1])
    h, nbd = s.h, s.nbd
    size = h.get_size()
    c.check(size == len(expect), "size %d, expected %d" % (size, len(expect)))

    def expect_eio(off, n, label):
        try:
            h.pread(n, off)
            c.check(False, "%s: read %#x+%#x succeeded, expected EIO" % (label, off, n))
        except nbd.Error as e:
            c.check(e.errnum == errno.EIO, "%s: read %#x+%#x failed with errno %s (%s), "
                    "expected EIO" % (label, off, n, e.errnum, e.string))

    spans = good_spans(size, a.bad)
    for off, n in spans:                                  # good regions first
        read_expect(c, h, expect, off, n, "before")
    for bo, bl in a.bad:
        expect_eio(bo, 512, "bad start")
        expect_eio(bo + bl - 512, 512, "bad end")
        expect_eio(bo, bl, "bad whole")
        if bo >= 4096:
            expect_eio(bo - 4096, 8192, "spanning start")
        if bo + bl + 4096 <= size:
            expect_eio(bo + bl - 4096, 8192, "spanning end")
        # Block status over the bad range may fail or not, but must not kill anything.
        try:
            h.block_status(bl, bo, lambda *args: 0)
        except nbd.Error:
            pass
    for off, n in spans:                                  # same connection, after the errors
        read_expect(c, h, expect, off, n, "after")
    for bo, bl in a.bad:                                  # still failing, not cached as zero
        expect_eio(bo, 4096, "bad again")
    log = s.stop(c)
    log_checks(c, log, a)
    c.finish(log)


def main():
    argv = sys.argv[1:]
    if not argv:
        die("usage: badimage.py CASE OUT | --list | run-fail|run-ok|run-eio ...")
    if argv[0] == "--list":
        for k in sorted(FIXED) + sorted(CREATED):
            print(k)
        for rx, _, _ in PATTERNS:
            print(rx.replace(r"(\w+)", "N").replace(r"(\d+)", "N"))
        return
    sub = {"refuse": cmd_refuse, "run-fail": cmd_run_fail, "run-ok": cmd_run_ok, "run-eio": cmd_run_eio}
    if argv[0] in sub:
        sub[argv[0]](argv[1:])
    else:
        cmd_make(argv)


if __name__ == "__main__":
    main()
