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
#       nbdkit must refuse IMG: exit non-zero, no signal, no hang (--timeout, a hang bound,
#       not a performance limit), no crash report, under an address-space limit (--vmem-mib, default 1024, 0 = none) and
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
# Hostile images (consistent-looking but inconsistent metadata; served WITHOUT -r):
#   badimage.py run-hostile --plugin SO --expect RAW [--bad OFF:LEN]... [--maybe-bad OFF:LEN]...
#                           [--write-at OFF]... [--log-phrase P]... [--filter SO] [--case CASE]
#                           IMG [PLUGIN-ARG...]
#       nbdkit must either refuse IMG with a clear error, or serve it READ-ONLY with a start-up
#       warning containing every --log-phrase (default "serving it read-only" and
#       "inconsistent"); then every byte outside --bad/--maybe-bad equals RAW, --bad ranges
#       fail with EIO, --maybe-bad ranges fail with EIO or equal RAW; write, write+FUA, zero
#       and trim at 0, the last 64 KiB and each --write-at fail with EPERM (both refused by
#       libnbd and, with strict mode off, by nbdkit); reads are unchanged afterwards; no crash;
#       the file's sha256 is unchanged.  Served writable: FAIL, after doing those writes and
#       printing `qemu-img check` of the result and a reproducer.
#   badimage.py run-write-safe (same options)
#       For images that MAY be served writable: if read-only, the run-hostile checks; if
#       writable, 64 KiB written at each --write-at must read back through the plugin and
#       through qemu-img convert, `qemu-img check` must report no error line it did not report
#       before, and the header cluster (but the autoclear field) and persistent bitmap tables
#       and bitmap data clusters must be byte-for-byte unchanged.
#   badimage.py last-compressed IMG
#       Print the guest offset of the compressed cluster stored last in the file.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockdir  # noqa: E402

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


def run(cmd, cwd=None, retry_on=None):
    """Run CMD; with RETRY_ON (a message), up to 5 attempts while a
    failure prints it."""
    for _ in range(5):
        r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode == 0 or not retry_on or retry_on not in r.stdout:
            break
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
    # QEMU times PBKDF2 with the thread's CPU clock to pick an iteration
    # count and gives up when a timing reads 0 ms ("Unable to get accurate
    # CPU usage": seen once on a busy 2-core machine): try again.
    run(["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=qcx-secret",
         "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", out, "1M"],
        retry_on="Unable to get accurate CPU usage")


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


# ---------------------------------------------------------------------------------------------
# Hostile images (issue 5): metadata that is inconsistent rather than malformed.  The plugin
# must not write to these (read-only with a warning, or a refusal): writing trusts the
# refcounts and the tables, and would write over metadata or over another guest cluster.

COPIED = 1 << 63                                  # QCOW_OFLAG_COPIED (L1 and L2 entries)
L2_ZERO = 1


def ext_l2(img):
    return bool(img.get("incompatible") & (1 << 4))


def l2_entry_at(img, guest_off):
    """Offset in the file of the (first 8 bytes of the) L2 entry of a guest offset, standard or
    extended L2 entries."""
    cb = img.get("cluster_bits")
    esize = 16 if ext_l2(img) else 8
    per_table = img.cluster_size // esize
    ci = guest_off >> cb
    l2 = img.u64(img.l1_entry_off(ci // per_table)) & OFFSET_MASK
    if not l2:
        die("no L2 table for guest offset %#x" % guest_off)
    return l2 + esize * (ci % per_table)


def host_of(img, guest_off):
    h = img.u64(l2_entry_at(img, guest_off)) & OFFSET_MASK
    if not h:
        die("guest offset %#x has no host cluster" % guest_off)
    return h


def refcount_loc(img, host_off):
    """(refcount block offset, entry index, entry bits) of a host cluster."""
    cs = img.cluster_size
    bits = 1 << (img.get("refcount_order") if img.get("version") >= 3 else 4)
    per_block = cs * 8 // bits
    ci = host_off // cs
    rb = img.u64(img.get("refcount_table_offset") + 8 * (ci // per_block)) & ~(cs - 1)
    if not rb:
        die("no refcount block for host offset %#x" % host_off)
    return rb, ci % per_block, bits


def get_refcount(img, host_off):
    rb, i, bits = refcount_loc(img, host_off)
    if bits >= 8:
        n = bits // 8
        return int.from_bytes(img.d[rb + i * n:rb + (i + 1) * n], "big")
    per_byte = 8 // bits
    return (img.d[rb + i // per_byte] >> ((i % per_byte) * bits)) & ((1 << bits) - 1)


def set_refcount(img, host_off, v):
    rb, i, bits = refcount_loc(img, host_off)
    if bits >= 8:
        n = bits // 8
        img.d[rb + i * n:rb + (i + 1) * n] = v.to_bytes(n, "big")
        return
    per_byte = 8 // bits                               # QEMU: least significant bits first
    sh, m = (i % per_byte) * bits, (1 << bits) - 1
    b = rb + i // per_byte
    img.d[b] = (img.d[b] & ~(m << sh) & 0xff) | ((v & m) << sh)


def compressed_entries(img):
    """[(guest offset, entry offset, host offset, x)] of every compressed cluster (1 L2 table)."""
    cs, cb = img.cluster_size, img.get("cluster_bits")
    out = []
    for g in range(0, img.get("size"), cs):
        e = img.u64(l2_entry_at(img, g))
        if e & L2_COMPRESSED:
            x = 62 - (cb - 8)
            out.append((g, l2_entry_at(img, g), e & ((1 << x) - 1), x))
    return out


def p_compressed_nsect_max(img, want_overlap):
    """The compressed cluster stored last in the file gets the largest sector count the field
    holds (2^(cluster_bits-8) sectors = 2 clusters, the most the encoding allows)."""
    cs, cb = img.cluster_size, img.get("cluster_bits")
    g, eo, host, x = max(compressed_entries(img), key=lambda t: t[2])
    e = img.u64(eo)
    maxn = (1 << (cb - 8)) - 1
    img.put64(eo, (e & ~(maxn << x)) | (maxn << x))
    end = (host & ~511) + (maxn + 1) * 512            # QEMU reads up to here
    if want_overlap:
        data = [host_of(img, g2) for g2 in range(0, img.get("size"), cs)
                if img.u64(l2_entry_at(img, g2)) & OFFSET_MASK and
                not img.u64(l2_entry_at(img, g2)) & L2_COMPRESSED]
        assert end <= len(img.d), "overlap case: range runs beyond EOF"
        assert any(host < d < end for d in data), "overlap case: no data cluster overlapped"
    else:
        assert end > len(img.d) + cs // 2, "beyond-eof case: range ends inside the file"


def compressed_then_data(path):
    """zlib_base, then two guest clusters rewritten as normal data clusters (allocated after
    the compressed data)."""
    zlib_base(path)
    qemu_io(path, "write -P 0x66 320k 64k", "write -P 0x77 0 64k", "write -P 0x78 64k 64k")


def base_extl2(path):
    """8 MiB, 64 KiB clusters with extended L2 entries (2 KiB subclusters)."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536,extended_l2=on",
         path, "8M"])
    qemu_io(path, "write -P 0x11 0 64k", "write -P 0x55 1M 8k", "write -P 0x22 4M 1M")


def p_extl2_pair11(img):
    eo = l2_entry_at(img, 1 << 20)
    bm = img.u64(eo + 8)
    assert bm & 0xf == 0xf, "guest 1M: subclusters 0-3 not allocated (bitmap %#x)" % bm
    img.put64(eo + 8, bm | (1 << (32 + 1)))            # subcluster 1: allocated AND zero


def base_bitmap(path):
    """std (64 KiB clusters) with a persistent dirty bitmap that has dirty bits (so it has a
    bitmap table and a bitmap data cluster)."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", path, "8M"])
    run(["qemu-img", "bitmap", "--add", path, "bm0"])
    qemu_io(path, "write -P 0x11 0 64k", "write -P 0x33 4M 1M")


BITMAPS_EXT = 0x23852875


def bitmap_clusters(img):
    """(bitmap table offsets, bitmap data cluster offsets) of every persistent bitmap."""
    tables, data = [], []
    for t, d in img.read_exts():
        if t != BITMAPS_EXT:
            continue
        nb, _, dsize, doff = struct.unpack(">IIQQ", d[:24])
        p = doff
        for _ in range(nb):
            toff, tsize, _flags, _type, _gran, nlen, elen = struct.unpack_from(
                ">QIIBBHI", img.d, p)
            tables.append(toff)
            for j in range(tsize):
                e = img.u64(toff + 8 * j) & OFFSET_MASK
                if e > 1:
                    data.append(e)
            p += (24 + elen + nlen + 7) & ~7
    return tables, data


def p_bitmap_refcount0(which):
    def p(img):
        tables, data = bitmap_clusters(img)
        lst = tables if which == "table" else data
        assert lst, "base image has no bitmap %s cluster" % which
        assert get_refcount(img, lst[0]) == 1
        set_refcount(img, lst[0], 0)
    return p


def p_l1(i, fn):
    def p(img):
        eo = img.l1_entry_off(i)
        img.put64(eo, fn(img, img.u64(eo)))
    return p


def p_l2e(guest, fn):
    def p(img):
        eo = l2_entry_at(img, guest)
        img.put64(eo, fn(img, img.u64(eo)))
    return p


def p_refcount0(which):
    def p(img):
        off = (img.u64(img.l1_entry_off(0)) & OFFSET_MASK if which == "l2"
               else host_of(img, 0))
        assert get_refcount(img, off) == 1, "refcount of %#x is not 1" % off
        set_refcount(img, off, 0)
    return p


def p_refcount0_noblock(img):
    """Guest 0's data moves to host 9 MiB (the file grows to hold it): with 4 KiB clusters and
    16-bit refcounts one refcount block covers 8 MiB, and there is no second block."""
    far, old = 9 << 20, host_of(img, 0)
    assert img.u64(img.get("refcount_table_offset") + 8) == 0
    img.d += bytes(far + img.cluster_size - len(img.d))
    img.d[far:far + img.cluster_size] = img.d[old:old + img.cluster_size]
    img.put64(l2_entry_at(img, 0), COPIED | far)


def beyond_eof(img):
    return (len(img.d) + (1 << 30)) & ~(img.cluster_size - 1)


HOSTILE = {
    # std4k: 4 L2 tables (one per 2 MiB); data at 0-64k, 2052k+64k, 4M+1M, 8128k+64k.
    # L1 entry 1 (guest 2-4 MiB) points at the refcount table's cluster (COPIED kept).
    "l2-in-refcount-table": (std4k, p_l1(1, lambda img, e: COPIED |
                                         img.get("refcount_table_offset"))),
    # L1 entry 1 = L1 entry 0: one L2 table for guest 0-2 MiB and 2-4 MiB.
    "l2-twice": (std4k, p_l1(1, lambda img, e: img.u64(img.l1_entry_off(0)))),
    # The L2 entry of guest 1 MiB (unallocated) = the one of guest 0 (data, COPIED).
    "data-twice": (std4k, p_l2e(1 << 20, lambda img, e: img.u64(l2_entry_at(img, 0)))),
    "refcount0-l2": (std4k, p_refcount0("l2")),
    "refcount0-data": (std4k, p_refcount0("data")),
    "refcount0-noblock": (std4k, p_refcount0_noblock),
    # The L2 entry of guest 0 points 1 GiB beyond the end of the file (flags kept).
    "data-beyond-eof": (std4k, p_l2e(0, lambda img, e: (e & ~OFFSET_MASK) | beyond_eof(img))),
    # Offset 0 with the COPIED flag: unallocated by the spec (offset 0), but QEMU's check reads
    # an L1 entry like this as an L2 table in the header cluster.  Guest 2-4 MiB / 1 MiB.
    "l1-copied-zero": (std4k, p_l1(1, lambda img, e: COPIED)),
    "l2e-copied-zero": (std4k, p_l2e(1 << 20, lambda img, e: COPIED)),
    # Compressed: the last stored cluster's sector count at its maximum (2 clusters): runs
    # beyond EOF; or (with normal data clusters after the compressed data) over a data cluster.
    "compressed-nsect-beyond-eof": (zlib_base, lambda img: p_compressed_nsect_max(img, False)),
    "compressed-nsect-overlap": (compressed_then_data,
                                 lambda img: p_compressed_nsect_max(img, True)),
    # Extended L2, guest 1 MiB: subcluster 1 both allocated and zero (bitmap pair 11).
    "extl2-pair11": (base_extl2, p_extl2_pair11),
    # A persistent bitmap whose bitmap table / data cluster has refcount 0.
    "bitmap-table-refcount0": (base_bitmap, p_bitmap_refcount0("table")),
    "bitmap-data-refcount0": (base_bitmap, p_bitmap_refcount0("data")),
    # The L2 entry of guest 0: host offset + 512 (not cluster aligned; COPIED kept).
    "data-unaligned": (std4k, p_l2e(0, lambda img, e: e + 512)),
    # Refcount table entry 0: refcount block offset + 512 (not cluster aligned).
    "refblock-unaligned": (std4k, lambda img: img.put64(
        img.get("refcount_table_offset"), img.u64(img.get("refcount_table_offset")) + 512)),
    # The L2 entry of guest 1 MiB (unallocated) points at the bitmap table (COPIED).
    "bitmap-table-shared": (base_bitmap, p_l2e(1 << 20, lambda img, e: COPIED |
                                               bitmap_clusters(img)[0][0])),
}
FIXED.update(HOSTILE)


def make_l2_twice_backed(out):
    """l2-twice on an overlay (4 KiB clusters) of OUT.base.qcow2 (named relative to OUT)."""
    d, b = os.path.split(os.path.abspath(out))
    base = b + ".base.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", base, "8M"], cwd=d)
    qemu_io(os.path.join(d, base), "write -P 0x61 0 8M")
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", base,
         "-F", "qcow2", b], cwd=d)
    qemu_io(out, "write -P 0x11 0 64k", "write -P 0x22 2052k 64k", "write -P 0x33 4M 1M",
            "write -z 6M 64k")
    img = Image(out)
    p_l1(1, lambda img, e: img.u64(img.l1_entry_off(0)))(img)
    img.save(out)


CREATED["l2-twice-backed"] = make_l2_twice_backed


def cmd_last_compressed(argv):
    """Print the guest offset of the compressed cluster stored last in IMG."""
    img = Image(argv[0])
    print(max(compressed_entries(img), key=lambda t: t[2])[0])


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
        self.dir = sockdir.short_dir("badimage-srv.")
        self.sock = os.path.join(self.dir, "sock")
        self.pidf = os.path.join(self.dir, "pid")
        self.logf = os.path.join(self.dir, "log")
        filt = ["--filter=" + a.filter] if getattr(a, "filter", None) else []
        cmd = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock, "-P", self.pidf] + \
              (["-r"] if readonly else []) + filt + [a.plugin, "file=" + a.img] + a.args
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


# ---------------------------------------------------------------------------------------------
# Checks for hostile images (served without -r).

def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def qemu_img_check(img):
    """(corruptions + check errors, error lines, full output) of qemu-img check."""
    import json
    r = subprocess.run(["qemu-img", "check", "--output=json", img], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    try:
        j = json.loads(r.stdout)
        bad = j.get("corruptions", 0) + j.get("check-errors", 0)
    except ValueError:
        bad = 1
    errs = sorted(set(l for l in r.stderr.splitlines() if l.startswith("ERROR")))
    return bad, errs, r.stdout + r.stderr


def start_server(c, a, readonly, before):
    """Server, or None after checking that a refusal is a clear one (and the file unchanged)."""
    try:
        return Server(a, readonly=readonly)
    except RuntimeError as e:
        log = e.args[1]
        c.check(sha256(a.img) == before, "the file changed (sha256)")
        c.check(not CRASH_RE.search(log), "crash report on stderr")
        c.check("signal" not in str(e.args[0]) and "status -" not in str(e.args[0]),
                "nbdkit died by a signal at start-up")
        c.check(any("error" in l.lower() for l in log.splitlines()),
                "refused at start-up without an error line (%s)" % e.args[0])
        if not c.failed:
            print("note: %s: refused at start-up: %s" % (c.what, log.strip().splitlines()[-1]))
        c.finish(log)
        return None


def write_attempts(c, h, nbd, size, offsets):
    """Every write-side request must fail with EPERM, refused by libnbd (strict mode) and, with
    the strict checks off so the requests reach nbdkit, by the server."""
    offsets = [o for o in offsets if 0 <= o < size]
    for strict in (True, False):
        if not strict:
            h.set_strict_mode(0)
        who = "client-side" if strict else "server-side"
        for off in offsets:
            n = min(65536, size - off)
            for name, op in (("pwrite", lambda: h.pwrite(b"\x5a" * n, off)),
                             ("pwrite+fua", lambda: h.pwrite(b"\x5b" * n, off, nbd.CMD_FLAG_FUA)),
                             ("zero", lambda: h.zero(n, off)),
                             ("zero+may-trim", lambda: h.zero(n, off, 0)),
                             ("trim", lambda: h.trim(n, off))):
                try:
                    op()
                    c.check(False, "%s %s %#x+%#x succeeded on a read-only export"
                            % (who, name, off, n))
                except nbd.Error as e:
                    # libnbd refuses zero/trim that a read-only export does not advertise
                    # with EINVAL ("server does not support ..."); nbdkit says EPERM.
                    ok = (errno.EPERM,) if not strict or name.startswith("pwrite") else \
                         (errno.EPERM, errno.EINVAL)
                    c.check(e.errnum in ok, "%s %s %#x+%#x failed with errno %s (%s), "
                            "expected EPERM" % (who, name, off, n, e.errnum, e.string))
        try:
            h.flush()
        except nbd.Error:
            pass
    h.set_strict_mode(nbd.STRICT_COMMANDS | nbd.STRICT_FLAGS | nbd.STRICT_BOUNDS |
                      nbd.STRICT_ZERO_SIZE | nbd.STRICT_ALIGN)


def check_reads(c, h, nbd, expect, bad, maybe, label):
    size = len(expect)

    def eio(off, n, what):
        try:
            h.pread(n, off)
            c.check(False, "%s: read %#x+%#x succeeded, expected EIO" % (what, off, n))
        except nbd.Error as e:
            c.check(e.errnum == errno.EIO, "%s: read %#x+%#x: errno %s (%s), expected EIO"
                    % (what, off, n, e.errnum, e.string))

    for off, n in good_spans(size, bad + maybe):
        read_expect(c, h, expect, off, n, label)
    for off in range(0, size, 1 << 20):   # block status may fail on bad metadata, not crash
        try:
            h.block_status(min(1 << 20, size - off), off, lambda *args: 0)
        except nbd.Error:
            pass
    for bo, bl in bad:
        eio(bo, bl, label + " bad")
    outcome = []
    for bo, bl in maybe:                  # EIO, or the expected bytes
        try:
            got = h.pread(bl, bo)
            c.check(got == expect[bo:bo + bl], "%s: read %#x+%#x: neither EIO nor the "
                    "expected bytes" % (label, bo, bl))
            outcome.append("%#x+%#x reads" % (bo, bl))
        except nbd.Error as e:
            c.check(e.errnum == errno.EIO, "%s: read %#x+%#x: errno %s (%s), expected EIO or "
                    "data" % (label, bo, bl, e.errnum, e.string))
            outcome.append("%#x+%#x EIO" % (bo, bl))
    return outcome


def demonstrate_writes(s, a, size, offsets):
    """The image was served writable: do what a client would, so the report shows the damage."""
    h = s.h
    for i, off in enumerate(offsets):
        n = min(65536, size - off)
        try:
            h.pwrite(bytes([0xc0 + i]) * n, off)
        except Exception as e:
            print("  (write %#x+%#x failed: %s)" % (off, n, e))
    for off in (size // 2 + 12288, size - 3 * 65536):  # allocating writes in fresh places
        try:
            h.pwrite(b"\xee" * 65536, off)
        except Exception as e:
            print("  (write %#x failed: %s)" % (off, e))
    try:
        h.flush()
    except Exception as e:
        print("  (flush failed: %s)" % e)


def hostile_args(ap):
    common_args(ap)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--bad", action="append", type=parse_range, default=[])
    ap.add_argument("--maybe-bad", action="append", type=parse_range, default=[])
    ap.add_argument("--log-phrase", action="append")
    ap.add_argument("--write-at", action="append", type=num, default=[])
    ap.add_argument("--filter")
    ap.add_argument("--case")


def cmd_run_hostile(argv):
    ap = argparse.ArgumentParser(prog="badimage.py run-hostile")
    hostile_args(ap)
    a = ap.parse_args(argv)
    if a.log_phrase is None:
        a.log_phrase = ["serving it read-only", "inconsistent"]
    c = Checker(a.what or os.path.basename(a.img))
    expect = open(a.expect, "rb").read()
    _, errs_before, _ = qemu_img_check(a.img)
    before = sha256(a.img)
    s = start_server(c, a, readonly=False, before=before)
    if s is None:
        return
    h, nbd = s.h, s.nbd
    size = h.get_size()
    c.check(size == len(expect), "size %d, expected %d" % (size, len(expect)))
    offsets = sorted(set(o for o in [0, max(0, size - 65536)] + a.write_at if o < size))
    if not h.is_read_only():
        c.check(False, "served WRITABLE (expected read-only with a warning)")
        demonstrate_writes(s, a, size, offsets)
        log = s.stop(c)
        bad_after, errs, out = qemu_img_check(a.img)
        new = [e for e in errs if e not in errs_before]
        print("---- qemu-img check after writes through the plugin (%d corruptions; %d error "
              "lines before, %d new) ----\n%s----" % (bad_after, len(errs_before), len(new), out))
        print("reproduce: %s %s %s X.qcow2 && nbdkit -U - %s%s X.qcow2 %s--run 'nbdsh -u "
              "\"$uri\" %s-c \"h.flush()\"' && qemu-img check X.qcow2"
              % (PYTHON, os.path.abspath(__file__), a.case or "CASE",
                 "--filter=%s " % a.filter if a.filter else "", a.plugin,
                 "".join(x + " " for x in a.args),
                 "".join("-c \"h.pwrite(b\\\"Z\\\"*65536, %d)\" " % o for o in offsets)))
        c.finish(log)
    outcome = check_reads(c, h, nbd, expect, a.bad, a.maybe_bad, "before writes")
    write_attempts(c, h, nbd, size, offsets)
    check_reads(c, h, nbd, expect, a.bad, a.maybe_bad, "after writes")
    log = s.stop(c)
    log_checks(c, log, a)
    c.check(sha256(a.img) == before, "the file changed (sha256) although every write failed")
    warn = [l for l in log.splitlines() if "warning" in l and "read-only" in l]
    if not c.failed:
        print("note: %s: read-only; %s%s" % (c.what, warn[0] if warn else "",
                                           "; " + ", ".join(outcome) if outcome else ""))
    c.finish(log)


PYTHON = "/usr/bin/python3"


def protected_ranges(path):
    """Bytes the plugin never has a reason to write: the header cluster except the autoclear
    field, persistent bitmap tables and bitmap data clusters."""
    img = Image(path)
    cs = img.cluster_size
    r = [(0, 88), (96, cs - 96)]
    tables, data = bitmap_clusters(img)
    return r + [(t, cs) for t in tables] + [(d, cs) for d in data]


def cmd_run_write_safe(argv):
    """The image may be served writable: then writes at --write-at must read back, through the
    plugin and through QEMU, qemu-img check must find no error that was not there before, and
    the header cluster and bitmap clusters must not change.  Served read-only instead: the
    checks of run-hostile."""
    ap = argparse.ArgumentParser(prog="badimage.py run-write-safe")
    hostile_args(ap)
    a = ap.parse_args(argv)
    c = Checker(a.what or os.path.basename(a.img))
    expect = bytearray(open(a.expect, "rb").read())
    before = sha256(a.img)
    _, errs_before, _ = qemu_img_check(a.img)
    prot = protected_ranges(a.img)
    with open(a.img, "rb") as f:
        orig = f.read()
    s = start_server(c, a, readonly=False, before=before)
    if s is None:
        return
    h, nbd = s.h, s.nbd
    size = h.get_size()
    c.check(size == len(expect), "size %d, expected %d" % (size, len(expect)))
    if h.is_read_only():
        check_reads(c, h, nbd, bytes(expect), a.bad, a.maybe_bad, "read-only")
        write_attempts(c, h, nbd, size, sorted(set([0] + a.write_at)))
        log = s.stop(c)
        log_checks(c, log, a)
        c.check(sha256(a.img) == before, "the file changed (sha256) although writes failed")
        if not c.failed:
            print("note: %s: served read-only" % c.what)
        c.finish(log)
        return
    check_reads(c, h, nbd, bytes(expect), a.bad, a.maybe_bad, "before writes")
    for i, off in enumerate(a.write_at):
        n = min(65536, size - off)
        data = bytes([0xc0 + i]) * n
        h.pwrite(data, off)
        expect[off:off + n] = data
    h.flush()
    check_reads(c, h, nbd, bytes(expect), [], [], "after writes")
    log = s.stop(c)
    log_checks(c, log, a)
    bad_after, errs_after, out = qemu_img_check(a.img)
    new = [e for e in errs_after if e not in errs_before]
    c.check(not new, "qemu-img check finds new errors after the writes:\n  " +
            "\n  ".join(new) + "\n" + out)
    with open(a.img, "rb") as f:
        now = f.read()
    for off, n in prot:
        c.check(now[off:off + n] == orig[off:off + n],
                "bytes %#x+%#x (header / bitmap metadata) were overwritten" % (off, n))
    raw = a.img + ".after.raw"
    r = subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", a.img, raw],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if c.check(r.returncode == 0, "qemu-img convert after the writes failed: " + r.stdout):
        with open(raw, "rb") as f:
            got = f.read()
        diff = next((i for i in range(min(len(got), len(expect)))
                     if got[i] != expect[i]), None) if got != expect else None
        c.check(got == expect, "QEMU reads different bytes after the writes (first at %s)"
                % (hex(diff) if diff is not None else "size"))
    if os.path.exists(raw):
        os.unlink(raw)
    if c.failed:
        print("reproduce: %s %s %s X.qcow2 && nbdkit -U - %s%s X.qcow2 --run 'nbdsh -u \"$uri\" "
              "%s-c \"h.flush()\"' && qemu-img check X.qcow2"
              % (PYTHON, os.path.abspath(__file__), a.case or "CASE",
                 "--filter=%s " % a.filter if a.filter else "", a.plugin,
                 "".join("-c \"h.pwrite(b\\\"Z\\\"*65536, %d)\" " % o for o in a.write_at)))
    else:
        print("note: %s: served writable; writes safe (qemu-img check: %d old error lines, "
              "no new ones)" % (c.what, len(errs_before)))
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
    sub = {"refuse": cmd_refuse, "run-fail": cmd_run_fail, "run-ok": cmd_run_ok,
           "run-eio": cmd_run_eio, "run-hostile": cmd_run_hostile,
           "run-write-safe": cmd_run_write_safe, "last-compressed": cmd_last_compressed}
    if argv[0] in sub:
        sub[argv[0]](argv[1:])
    else:
        cmd_make(argv)


if __name__ == "__main__":
    main()
