#!/usr/bin/python3
"""Random NBD write workloads against a qcow2x export, checked against a raw
reference file that has the same operations applied.

usage:
  workload.py run URI --ref REF [options]
      Connect to URI (nbd://..., nbd+unix:///?socket=...; a plain path is
      taken as a unix socket) with --conns handles and apply --ops random
      operations (seed --seed) to the export and to REF, a raw file holding
      the export's expected contents (it must exist and have the export's
      size; create it with qemu-img convert -O raw of the starting image,
      or pass --ref-create for an all-zero start).  Every read is verified
      against the reference as it completes; at the end every region is
      read back and compared, and REF holds the expected final contents
      (zero and trim => zeros).
  workload.py prefill IMG [--seed S] [--budget BYTES] [--no-compress]
      With qemu-io, put IMG's clusters into a random mix of states: data
      (full and partial clusters/subclusters), zero with and without host
      offset, discarded, compressed, untouched.
  workload.py verify IMG REF [--allow-leaks]
      qemu-img check IMG must be clean (exit 0, no "leaked", no errors) and
      qemu-img compare -f raw -F qcow2 REF IMG must say identical.
  workload.py header IMG
      Print JSON facts about IMG's refcount structures (for tests that must
      prove the refcount table/blocks grew).
  workload.py ops URI --ref REF [--var NAME=VALUE]... [--seed N] OP...
      Apply an explicit list of operations to the export and to REF, then
      read the whole export back and compare.  Numbers may be expressions
      over the --var names and K/M (e.g. C+3*S+100).  OP is one argument:
        w,OFF,LEN[,fua]            write random bytes
        z,OFF,LEN[,nohole][,fast][,fua]
                                   write zeroes (nohole: without MAY_TRIM)
        zfail,OFF,LEN,ERRNO[,nohole][,fast]
                                   write zeroes that must fail with ERRNO
                                   (e.g. ENOTSUP) and leave the range as it
                                   was (checked by a read)
        t,OFF,LEN[,fua]            trim
        f                          flush
        r,OFF,LEN                  read, compare with REF
        cap,NAME                   the server must advertise NAME (zero,
                                   trim, fast_zero, fua, flush, multi_conn)
  workload.py map IMG                 qemu-img map --output=json, one entry
                                      per line
  workload.py hostoff IMG OFF         host offset of guest OFF ("none")
  workload.py expect-map IMG OFF LEN [data=B] [zero=B] [offset=none|any|N]
      Every qemu-img map entry overlapping [OFF, OFF+LEN) must match; with
      offset=N the range must map contiguously to host offset N.
  workload.py expect-hole IMG HOSTOFF LEN
      The host file has no data in [HOSTOFF, HOSTOFF+LEN) (a punched hole,
      or beyond the end of the file).  Exit 77 if the file system cannot
      punch holes.
  workload.py expect-sparse IMG SRC [--min-zero-units N] [--min-unit N]
      IMG (qcow2) holds SRC's contents sparsely: every aligned unit that is
      all zero in SRC (raw) is not allocated as data in qemu-img map of
      IMG.  The unit is the allocation unit (subcluster on extended-L2
      images, else cluster) but at least --min-unit (default 4096: nbdcopy
      and qemu-img convert detect zeros in 4 KiB blocks, so a 2 KiB zero
      subcluster next to data is legitimately written as data).
  workload.py setbit IMG BYTE_OFFSET BIT
      Set BIT of the big-endian 64-bit header field at BYTE_OFFSET
      (e.g. 72 1: incompatible bit 1, "corrupt").

run options:
  --seed N            random seed (default 1)
  --ops N             number of operations (default 1000)
  --conns N           number of NBD connections (default 1).  Ops go to a
                      random connection; an op that overlaps one in flight
                      (on any connection) waits for it to complete, so the
                      expected contents are well defined.
  --depth N           max in-flight ops per connection (default 8)
  --mix SPEC          weights, e.g. write=40,read=20,zero=10,zerotrim=8,
                      fastzero=5,trim=8,flush=3,fua=6,big=0
                      (zero = write zeroes with NO_HOLE, i.e. without
                      MAY_TRIM; zerotrim = write zeroes that may trim;
                      fastzero = write zeroes with FAST_ZERO (and randomly
                      NO_HOLE), ENOTSUP accepted and then nothing applied;
                      fua = write with FUA; big = a write of --big-len)
  --cluster-size N    cluster size used to bias offsets/lengths; with
  --extended-l2       subclusters are cluster/32.  --image IMG reads both
                      from IMG's header instead.
  --max-len N         longest ordinary op (default 3 clusters, <= 8M)
  --big-len N         length of "big" writes (default 64 clusters)
  --regions A:B,...   byte ranges the ops stay in (K/M/G suffixes; default
                      the whole export).  The final read-back covers them.
  --stripe N          each connection owns stripes of N bytes (stripe k
                      belongs to connection k % conns); its ops stay inside
                      one of its stripes, so connections never overlap but
                      do share clusters (allocation races).
  --flush-barrier     flush only with nothing in flight (default: flushes
                      are issued among other ops)
  --racy-reads        reads may run concurrently with overlapping zero and
                      trim requests; each byte read must then be its value
                      before or after them (never another cluster's data:
                      a released cluster must not be reused under a read)
  --verify-start      read all regions first and compare with REF
  --trace FILE        log every op (for reproducing a failure)
  --no-require-caps   do not insist the server advertises zero, trim,
                      fast zero, FUA, flush and (with --conns > 1) multi-conn
  environment QCX_WL_MIX=SPEC is applied after --mix (debugging only)

Exit status 0 on success, 1 on a mismatch or an unexpected error.
"""
import argparse
import errno
import json
import mmap
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------- helpers


def parse_size(s):
    s = str(s).strip()
    mult = 1
    suf = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if s and s[-1].lower() in suf:
        mult = suf[s[-1].lower()]
        s = s[:-1]
    return int(s, 0) * mult


def die(msg):
    sys.stderr.write("workload.py: FAIL: %s\n" % msg)
    sys.exit(1)


class Ranges:
    """Set of byte ranges: sorted disjoint [a, b) pairs."""

    def __init__(self, items=()):
        self.r = []
        for a, b in items:
            self.add(a, b)

    def add(self, a, b):
        if a >= b:
            return
        out = []
        for x, y in self.r:
            if y < a or x > b:
                out.append((x, y))
            else:
                a, b = min(a, x), max(b, y)
        out.append((a, b))
        out.sort()
        self.r = out

    def remove(self, a, b):
        if a >= b:
            return
        out = []
        for x, y in self.r:
            if y <= a or x >= b:
                out.append((x, y))
                continue
            if x < a:
                out.append((x, a))
            if y > b:
                out.append((b, y))
        self.r = out

    def overlaps(self, a, b):
        return any(x < b and a < y for x, y in self.r)

    def __iter__(self):
        return iter(list(self.r))

    def __len__(self):
        return len(self.r)

    def total(self):
        return sum(y - x for x, y in self.r)

    def copy(self):
        n = Ranges()
        n.r = list(self.r)
        return n


def read_header(path):
    """Minimal qcow2 header facts (no qemu needed, works while served)."""
    with open(path, "rb") as f:
        h = f.read(112)
    if len(h) < 72 or h[:4] != b"QFI\xfb":
        raise ValueError("%s: not a qcow2 image" % path)
    version, = struct.unpack_from(">I", h, 4)
    cluster_bits, = struct.unpack_from(">I", h, 20)
    size, = struct.unpack_from(">Q", h, 24)
    rt_off, rt_clusters = struct.unpack_from(">QI", h, 48)
    incompat = 0
    refcount_order = 4
    if version >= 3:
        incompat, = struct.unpack_from(">Q", h, 72)
        refcount_order, = struct.unpack_from(">I", h, 96)
    return dict(version=version, cluster_bits=cluster_bits,
                cluster_size=1 << cluster_bits, size=size,
                extended_l2=bool(incompat & 16), incompat=incompat,
                refcount_order=refcount_order,
                refcount_table_offset=rt_off,
                refcount_table_clusters=rt_clusters)


def run_cmd(cmd, ok=(0,)):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    if r.returncode not in ok:
        sys.stderr.write(out)
        die("command failed (exit %d): %s" % (r.returncode, " ".join(cmd)))
    return r.returncode, out


# ---------------------------------------------------------------- data

def make_data(rng, n):
    r = rng.random()
    if r < 0.80 or n < 16:
        return rng.randbytes(n)
    if r < 0.88:
        pat = rng.randbytes(rng.randint(1, 32))
        return (pat * (n // len(pat) + 1))[:n]
    if r < 0.93:
        return bytes(n)           # literal zeros written as data
    h = rng.randint(1, n - 1)
    return rng.randbytes(h) + bytes(n - h) if rng.random() < 0.5 \
        else bytes(h) + rng.randbytes(n - h)


# ---------------------------------------------------------------- op generator

class Gen:
    def __init__(self, rng, size, cluster, sub, ext, regions, max_len,
                 big_len, stripe, conns):
        self.rng = rng
        self.size = size
        self.cluster = cluster
        self.sub = sub
        self.l2span = cluster * (cluster // (16 if ext else 8))
        self.regions = regions
        self.weights = [b - a for a, b in regions]
        self.max_len = max_len
        self.big_len = big_len
        self.stripe = stripe
        self.conns = conns

    def length(self):
        rng, sub, cl = self.rng, self.sub, self.cluster
        r = rng.random()
        if r < 0.20:
            n = rng.randint(1, min(64, self.max_len))
        elif r < 0.40 and sub > 1:
            n = rng.randint(1, sub - 1)
        elif r < 0.55:
            n = rng.choice([sub, sub, cl, cl, 2 * cl, 2 * sub])
        elif r < 0.70:
            u = rng.choice([sub, cl, 2 * cl])
            d = rng.randint(1, max(1, min(511, sub - 1)))
            n = u + d if rng.random() < 0.5 else max(1, u - d)
        else:
            n = rng.randint(1, self.max_len)
        return max(1, min(n, self.max_len))

    def offset(self, n, a, b):
        """Offset for an n-byte op inside [a, b); n <= b - a."""
        rng = self.rng
        r = rng.random()
        unit = rng.choice([self.sub, self.cluster, self.cluster])
        if r < 0.35:
            off = rng.randrange(a, b) // unit * unit
            d = rng.random()
            if d < 0.5:
                pass
            elif d < 0.75:
                off += rng.randint(1, min(unit, 512))
            else:
                off -= rng.randint(1, min(unit, 512))
        elif r < 0.50:
            # end exactly on a boundary
            end = rng.randrange(a, b) // unit * unit + unit
            off = end - n
        elif r < 0.60 and self.l2span < self.size:
            k = rng.randint(1, max(1, self.size // self.l2span))
            off = k * self.l2span + rng.randint(-n - unit, unit)
        elif r < 0.65:
            off = b - n - rng.choice([0, 0, 1, 7, self.sub])
        else:
            off = rng.randrange(a, b)
        off = max(a, min(off, b - n))
        return off

    def range(self, conn):
        if self.stripe:
            S = self.stripe
            nstripes = self.size // S
            k = self.rng.randrange(conn, nstripes, self.conns)
            a, b = k * S, (k + 1) * S
            r = self.rng.random()
            if r < 0.4:
                return a, S
            n = self.length() if r < 0.7 else self.rng.randint(1, S)
            n = min(n, S)
            return self.offset(n, a, b), n
        a, b = self.rng.choices(self.regions, self.weights)[0]
        n = min(self.length(), b - a)
        return self.offset(n, a, b), n

    def big(self):
        a, b = self.rng.choices(self.regions, self.weights)[0]
        n = min(self.big_len, b - a)
        off = self.rng.randrange(a, b - n + 1) // self.cluster * self.cluster
        off = max(a, min(off, b - n))
        if self.rng.random() < 0.3:
            off = max(a, off - self.rng.randint(1, self.sub))
        return off, n


# ---------------------------------------------------------------- runner

class Op:
    __slots__ = ("n", "kind", "off", "len", "flags", "data", "buf", "slot", "conn",
                 "before", "zranges",
                 "cookie", "fua", "t")

    def __init__(self, n, kind, off=0, length=0, flags=0, data=None):
        self.n, self.kind, self.off, self.len = n, kind, off, length
        self.flags, self.data = flags, data
        self.buf = self.slot = None
        self.before = None
        self.zranges = None
        self.conn = None
        self.cookie = None
        self.fua = False
        self.t = 0.0

    def end(self):
        return self.off + self.len

    def desc(self):
        import nbd
        fl = []
        if self.flags & nbd.CMD_FLAG_FUA:
            fl.append("FUA")
        if self.flags & nbd.CMD_FLAG_NO_HOLE:
            fl.append("NO_HOLE")
        if self.flags & nbd.CMD_FLAG_FAST_ZERO:
            fl.append("FAST_ZERO")
        if self.kind == "flush":
            return "#%d conn%d flush" % (self.n, self.conn)
        return "#%d conn%d %s off=%d len=%d (0x%x..0x%x)%s" % (
            self.n, self.conn, self.kind, self.off, self.len, self.off,
            self.off + self.len, " " + "|".join(fl) if fl else "")


class Conn:
    def __init__(self, idx, h):
        self.idx = idx
        self.h = h
        self.inflight = {}

    def fileno(self):
        return self.h.aio_get_fd()


class ServerGone(Exception):
    pass


class Runner:
    """Issues async NBD ops over several connections, keeps the model.

    The model (an mmap of the reference file) is updated when an op
    completes; overlapping ops never run concurrently, so completion order
    equals issue order for every byte.  Hooks for the crash test:
      on_issue(op)     called just before an op is sent
      on_complete(op)  called after the model was updated
    """

    def __init__(self, uri, nconns, ref, depth=8, trace=None,
                 flush_barrier=False, stall_timeout=120, quiet=False):
        import nbd
        self.nbd = nbd
        self.conns = []
        for i in range(nconns):
            h = nbd.NBD()
            h.set_handle_name("workload%d" % i)
            if uri.startswith("nbd"):
                h.connect_uri(uri)
            else:
                h.connect_unix(uri)
            self.conns.append(Conn(i, h))
        h0 = self.conns[0].h
        self.size = h0.get_size()
        self.reff = open(ref, "r+b")
        st = os.fstat(self.reff.fileno())
        if st.st_size != self.size:
            die("reference %s has %d bytes, export has %d" %
                (ref, st.st_size, self.size))
        self.model = mmap.mmap(self.reff.fileno(), self.size)
        self.free_slots = {}            # read_slot()
        self.depth = depth
        self.trace = trace
        self.flush_barrier = flush_barrier
        self.stall_timeout = stall_timeout
        self.quiet = quiet
        self.history = []
        self.stats = {}
        self.failed_fast_zero = 0
        self.on_issue = None
        self.on_complete = None
        self.flush_inflight = False
        self.flush_sync = False     # wait for each flush to complete
        self.racy_reads = False     # reads may overlap zero/trim in flight
        self.on_error = None        # crash test: called instead of failing
        self.checks = []

    # -- capabilities
    def caps(self):
        h = self.conns[0].h
        return dict(read_only=h.is_read_only(), zero=h.can_zero(),
                    trim=h.can_trim(), fast_zero=h.can_fast_zero(),
                    fua=h.can_fua(), flush=h.can_flush(),
                    multi_conn=h.can_multi_conn(),
                    block_min=h.get_block_size(self.nbd.SIZE_MINIMUM),
                    block_pref=h.get_block_size(self.nbd.SIZE_PREFERRED),
                    block_max=h.get_block_size(self.nbd.SIZE_MAXIMUM))

    def inflight(self):
        for c in self.conns:
            yield from c.inflight.values()

    def n_inflight(self):
        return sum(len(c.inflight) for c in self.conns)

    def log(self, s):
        if self.trace:
            self.trace.write(s + "\n")

    # -- event loop
    def pump(self, timeout=1.0):
        nbd = self.nbd
        rl, wl = [], []
        for c in self.conns:
            if not c.inflight:
                continue
            if c.h.aio_is_dead() or c.h.aio_is_closed():
                raise ServerGone("connection %d is dead" % c.idx)
            d = c.h.aio_get_direction()
            if d & nbd.AIO_DIRECTION_READ:
                rl.append(c)
            if d & nbd.AIO_DIRECTION_WRITE:
                wl.append(c)
        if rl or wl:
            r, w, _ = select.select(rl, wl, [], timeout)
            for c, f in [(c, c.h.aio_notify_read) for c in r] + \
                        [(c, c.h.aio_notify_write) for c in w]:
                try:
                    f()
                except nbd.Error as e:
                    if c.h.aio_is_dead() or c.h.aio_is_closed():
                        raise ServerGone("connection %d: %s" % (c.idx, e))
                    raise
        self.reap()

    def reap(self):
        nbd = self.nbd
        for c in self.conns:
            for cookie, op in list(c.inflight.items()):
                err = None
                try:
                    done = c.h.aio_command_completed(cookie)
                except nbd.Error as e:
                    done, err = True, e
                if not done:
                    continue
                del c.inflight[cookie]
                self.complete(op, err)

    def wait_until(self, cond, what):
        t0 = time.monotonic()
        while not cond():
            self.pump()
            if time.monotonic() - t0 > self.stall_timeout:
                self.dump_inflight()
                die("no progress for %ds while waiting for %s (server hung?)"
                    % (self.stall_timeout, what))

    def dump_inflight(self):
        sys.stderr.write("in flight:\n")
        for op in self.inflight():
            sys.stderr.write("  %s\n" % op.desc())

    def drain(self):
        self.wait_until(lambda: self.n_inflight() == 0, "all ops")

    # -- issuing
    def submit(self, op, conn):
        nbd = self.nbd
        op.conn = conn
        c = self.conns[conn]
        if op.kind == "flush":
            if self.flush_barrier:
                self.drain()
            else:
                self.wait_until(lambda: not self.flush_inflight,
                                "previous flush")
        else:
            a, b = op.off, op.end()
            self.wait_until(
                lambda: not any(o.off < b and a < o.end() and
                                self.conflict(op, o)
                                for o in self.inflight()),
                "ops overlapping %s" % op.desc())
        self.wait_until(lambda: len(c.inflight) < self.depth,
                        "a free slot on conn %d" % conn)
        self.log(op.desc())
        self.history.append(op.desc())
        if len(self.history) > 40:
            del self.history[:10]
        self.stats[op.kind] = self.stats.get(op.kind, 0) + 1
        if self.racy_reads and op.kind in self.ZEROING:
            for o in self.inflight():
                if o.kind == "read" and o.off < op.end() and op.off < o.end():
                    o.zranges.append((op.off, op.end()))
        if self.on_issue:
            self.on_issue(op)
        op.t = time.monotonic()
        h = c.h
        try:
            # libnbd 1.14's Python binding never drops its reference to
            # an nbd.Buffer given to aio_pwrite/aio_pread: a new buffer
            # per op leaked every byte written or read (a crash test grew
            # by 250 MiB per iteration).  Writes pass bytes (not leaked);
            # reads use memory from a reused pool (read_slot).
            if op.kind in ("write", "big"):
                op.cookie = h.aio_pwrite(bytes(op.data), op.off, flags=op.flags)
            elif op.kind == "read":
                op.slot = self.read_slot(op.len)
                op.buf = nbd.Buffer.from_buffer(memoryview(op.slot)[:op.len])
                if self.racy_reads:
                    op.before = bytes(self.model[op.off:op.end()])
                    op.zranges = [(o.off, o.end()) for o in self.inflight()
                                  if o.kind in self.ZEROING and
                                  o.off < op.end() and op.off < o.end()]
                op.cookie = h.aio_pread(op.buf, op.off, flags=op.flags)
            elif op.kind in ("zero", "zerotrim", "fastzero"):
                op.cookie = h.aio_zero(op.len, op.off, flags=op.flags)
            elif op.kind == "trim":
                op.cookie = h.aio_trim(op.len, op.off, flags=op.flags)
            elif op.kind == "flush":
                op.cookie = h.aio_flush()
                self.flush_inflight = True
            else:
                raise AssertionError(op.kind)
        except nbd.Error as e:
            if h.aio_is_dead() or h.aio_is_closed():
                raise ServerGone(str(e))
            self.fail_op(op, e)
        c.inflight[op.cookie] = op
        if op.kind == "flush" and self.flush_sync:
            self.wait_until(lambda: not self.flush_inflight, "the flush")

    def read_slot(self, n):
        return take_slot(self.free_slots, n)

    def issue_checks(self):
        """Reads of ranges whose FAST_ZERO failed: they must be unchanged."""
        while self.checks:
            fz = self.checks.pop(0)
            op = Op(fz.n, "read", fz.off, fz.len)
            op.data = "check after %s failed with ENOTSUP: the server must " \
                "not modify the range when it fails a FAST_ZERO" % fz.desc()
            self.submit(op, fz.conn)

    ZEROING = ("zero", "zerotrim", "fastzero", "trim")

    def conflict(self, x, y):
        """May overlapping ops x and y not run at the same time?"""
        if x.kind == "flush" or y.kind == "flush":
            return False
        if x.kind == "read" and y.kind == "read":
            return False
        if self.racy_reads and {x.kind, y.kind} & {"read"} and \
                {x.kind, y.kind} & set(self.ZEROING):
            return False
        return True

    def fail_op(self, op, e):
        if self.on_error:
            self.on_error(op, e)
        sys.stderr.write("recent ops:\n  " + "\n  ".join(self.history[-20:]) +
                         "\n")
        die("%s failed: %s (errno %s)" % (op.desc(), e,
                                          getattr(e, "errnum", "?")))

    def complete(self, op, err):
        if op.kind == "flush":
            self.flush_inflight = False
        if err is not None:
            c = self.conns[op.conn].h
            if c.aio_is_dead() or c.aio_is_closed():
                raise ServerGone(str(err))
            if op.kind == "fastzero" and err.errnum == errno.ENOTSUP:
                self.failed_fast_zero += 1
                self.log("  -> ENOTSUP (nothing applied)")
                # The range must be unchanged: read it back soon.
                self.checks.append(op)
                if self.on_complete:
                    self.on_complete(op, False)
                return
            self.fail_op(op, err)
        a, b = op.off, op.end()
        if op.kind in ("write", "big"):
            self.model[a:b] = op.data
        elif op.kind in ("zero", "zerotrim", "fastzero", "trim"):
            self.model[a:b] = bytes(op.len)
        elif op.kind == "read":
            got = bytearray(op.slot[:op.len])
            self.free_slots.setdefault(len(op.slot), []).append(op.slot)
            op.slot = op.buf = None
            exp = self.model[a:b]
            if op.zranges:
                self.stats["read~zero"] = self.stats.get("read~zero", 0) + 1
            if got != exp and op.before is not None:
                # racing zero/trim requests: each byte is its value when the
                # read was sent, its value now, or zero if a zeroing request
                # covering it was in flight during the read
                z = bytearray(len(got))
                for x, y in op.zranges:
                    x, y = max(x, a) - a, min(y, b) - a
                    if x < y:
                        z[x:y] = b"\x01" * (y - x)
                if all(g == p or g == q or (g == 0 and zz)
                       for g, p, q, zz in zip(got, op.before, exp, z)):
                    got = exp
            if got != exp:
                self.report_mismatch(op, a, got, exp,
                                     op.desc() + (" (%s)" % op.data
                                                  if op.data else ""))
        if self.on_complete:
            self.on_complete(op, True)

    def report_mismatch(self, op, a, got, exp, what=None):
        i = next(i for i in range(len(got)) if got[i] != exp[i])
        j = i
        while j < len(got) and got[j] != exp[j]:
            j += 1
        sys.stderr.write("recent ops:\n  " + "\n  ".join(self.history[-25:]) +
                         "\n")
        nd = sum(1 for x, y in zip(got, exp) if x != y)
        die("%s: data mismatch at offset %d (0x%x): first differing run "
            "%d bytes, %d differing bytes in all; got %s expected %s" %
            (what or op.desc(), a + i, a + i, j - i, nd,
             bytes(got[i:i + 16]).hex(), bytes(exp[i:i + 16]).hex()))

    # -- whole-range verification (synchronous)
    def verify_ranges(self, ranges, what, chunk=4 << 20):
        self.drain()
        h = self.conns[0].h
        for a, b in ranges:
            off = a
            while off < b:
                n = min(chunk, b - off)
                got = h.pread(n, off)
                exp = self.model[off:off + n]
                if got != exp:
                    self.report_mismatch(None, off, got, exp,
                                         "%s: read-back of [%d, %d)"
                                         % (what, off, off + n))
                off += n

    def close(self):
        for c in self.conns:
            try:
                c.h.shutdown()
            except Exception:
                pass
        self.model.flush()
        self.model.close()
        self.reff.close()


def take_slot(pool, n):
    """Read memory for aio_pread: a bytearray of at least N bytes
    (power-of-two sizes) from POOL (size -> free list).  The caller puts
    it back (pool[len(slot)].append) once the read has completed.  libnbd
    1.14's Python binding never drops its reference to an aio Buffer, so
    reads reuse memory instead of leaking a new buffer each."""
    size = 1 << max(0, (n - 1).bit_length())
    free = pool.setdefault(size, [])
    return free.pop() if free else bytearray(size)


def start_memory_watchdog(limit_mib=2048):
    """A test harness that grows past LIMIT_MIB of resident memory has a
    bug (once, a crash test grew to 24 GiB and was OOM-killed, taking the
    machine's memory with it): print every thread's stack and exit 3.
    """
    import faulthandler
    import threading

    page = os.sysconf("SC_PAGE_SIZE")

    def watch():
        while True:
            time.sleep(0.5)
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            if rss > limit_mib << 20:
                sys.stderr.write("%s: resident memory %d MiB > %d MiB: test "
                                 "harness bug; stacks:\n"
                                 % (os.path.basename(sys.argv[0]), rss >> 20,
                                    limit_mib))
                faulthandler.dump_traceback(all_threads=True)
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def parse_mix(spec):
    mix = dict(write=40, read=20, zero=10, zerotrim=8, fastzero=5, trim=8,
               flush=3, fua=6, big=0)
    # QCX_WL_MIX (debugging: e.g. validating the tests against qemu-nbd,
    # whose partial trims are advisory) overrides weights after --mix.
    spec = ",".join(x for x in (spec, os.environ.get("QCX_WL_MIX")) if x)
    if spec:
        for item in spec.split(","):
            k, v = item.split("=")
            if k not in mix:
                die("unknown op kind in --mix: " + k)
            mix[k] = float(v)
    return mix


def parse_regions(spec, size):
    if not spec:
        return [(0, size)]
    out = []
    for item in spec.split(","):
        a, b = item.split(":")
        a = parse_size(a) if a else 0
        b = parse_size(b) if b else size
        a, b = max(0, a), min(size, b)
        if a < b:
            out.append((a, b))
    if not out:
        die("--regions selects nothing")
    return out


def make_op(n, kind, gen, rng, conn, caps):
    import nbd
    if kind == "flush":
        return Op(n, "flush")
    if kind == "big":
        off, ln = gen.big()
        return Op(n, "big", off, ln, 0, make_data(rng, ln))
    off, ln = gen.range(conn)
    if kind == "read":
        return Op(n, "read", off, ln)
    if kind in ("write", "fua"):
        fl = nbd.CMD_FLAG_FUA if kind == "fua" else 0
        return Op(n, "write", off, ln, fl, make_data(rng, ln))
    fl = 0
    if caps["fua"] and rng.random() < 0.1:
        fl |= nbd.CMD_FLAG_FUA
    if kind == "zero":
        fl |= nbd.CMD_FLAG_NO_HOLE
    elif kind == "fastzero":
        fl |= nbd.CMD_FLAG_FAST_ZERO
        if rng.random() < 0.5:
            fl |= nbd.CMD_FLAG_NO_HOLE
    return Op(n, kind, off, ln, fl)


def cmd_run(args):
    """Run a workload (workload.py run)."""
    rng = random.Random(args.seed)
    trace = open(args.trace, "w") if args.trace else None
    if not os.path.exists(args.ref):
        if not args.ref_create:
            die("reference %s does not exist" % args.ref)
        import nbd
        h = nbd.NBD()
        if args.uri.startswith("nbd"):
            h.connect_uri(args.uri)
        else:
            h.connect_unix(args.uri)
        sz = h.get_size()
        h.shutdown()
        with open(args.ref, "wb") as f:
            f.truncate(sz)
    r = Runner(args.uri, args.conns, args.ref, depth=args.depth, trace=trace,
               flush_barrier=args.flush_barrier)
    r.racy_reads = args.racy_reads
    caps = r.caps()
    if not args.quiet:
        print("workload: export size %d, caps %s" % (r.size, caps))
    mix = parse_mix(args.mix)
    if caps["read_only"]:
        die("export is read-only")
    if args.require_caps:
        need = ["zero", "trim", "flush", "fua"]
        if mix["fastzero"] > 0:
            need.append("fast_zero")
        if args.conns > 1:
            need.append("multi_conn")
        miss = [k for k in need if not caps[k]]
        if miss:
            die("server does not advertise: %s" % ", ".join(miss))
    if not caps["fast_zero"]:
        mix["fastzero"] = 0
    if not caps["trim"]:
        mix["trim"] = 0
    if not caps["fua"]:
        mix["fua"] = 0
    if not caps["flush"]:
        mix["flush"] = 0

    cluster, ext = args.cluster_size, args.extended_l2
    if args.image:
        hd = read_header(args.image)
        cluster, ext = hd["cluster_size"], hd["extended_l2"]
    if not cluster:
        cluster = max(512, caps["block_pref"])
    sub = cluster // 32 if ext else cluster
    max_len = args.max_len or min(3 * cluster, 8 << 20)
    big_len = args.big_len or 64 * cluster
    regions = parse_regions(args.regions, r.size)
    gen = Gen(rng, r.size, cluster, sub, ext, regions, max_len, big_len,
              args.stripe, args.conns)
    kinds = [k for k in mix if mix[k] > 0]
    weights = [mix[k] for k in kinds]
    t0 = time.monotonic()
    if args.verify_start:
        r.verify_ranges(regions, "start")
    try:
        for i in range(args.ops):
            kind = rng.choices(kinds, weights)[0]
            conn = rng.randrange(args.conns)
            op = make_op(i, kind, gen, rng, conn, caps)
            r.submit(op, conn)
            r.issue_checks()
        r.drain()
        if caps["flush"]:
            r.conns[0].h.flush()
        r.verify_ranges(regions, "final")
    finally:
        if trace:
            trace.close()
    dt = time.monotonic() - t0
    if not args.quiet:
        print("workload: %d ops in %.1fs on %d conn(s): %s; fast-zero ENOTSUP "
              "%d; final read-back of %d bytes OK" %
              (args.ops, dt, args.conns,
               ", ".join("%s=%d" % kv for kv in sorted(r.stats.items())),
               r.failed_fast_zero, sum(b - a for a, b in regions)))
    r.close()
    return r


# ---------------------------------------------------------------- prefill

def cmd_prefill(args):
    img = args.image
    run_cmd(["qemu-img", "info", img])
    hd = read_header(img)
    cs, ext, size = hd["cluster_size"], hd["extended_l2"], hd["size"]
    sub = cs // 32 if ext else cs
    rng = random.Random(args.seed)
    budget = parse_size(args.budget) if args.budget else size
    tmp = tempfile.mkdtemp(prefix="prefill.", dir=args.tmpdir)
    cmds = []
    # Compressed writes go first, in their own qemu-io run: qemu 7.2 can
    # corrupt an image (a normal cluster and compressed data sharing a host
    # cluster, refcount 2 with COPIED) when compressed writes are
    # interleaved with partial writes in one session.
    ccmds = []
    used = 0
    nfile = 0
    counts = {}
    nclusters = size // cs
    maxops = args.max_ops
    while used < budget and len(cmds) + len(ccmds) // 2 < maxops:
        r = rng.random()
        c = rng.randrange(max(1, nclusters))
        if r < 0.45:
            kind = "data"
            s = rng.random()
            if s < 0.4:
                off, n = c * cs, cs * rng.randint(1, 3)
            elif s < 0.7:
                off = c * cs + rng.randrange(32 if ext else 1) * sub
                n = sub * rng.randint(1, 4)
            else:
                off = c * cs + rng.randrange(cs)
                n = rng.randint(1, 2 * sub)
            n = min(n, size - off)
            if n <= 0:
                continue
            nfile += 1
            f = os.path.join(tmp, "d%d" % nfile)
            with open(f, "wb") as fh:
                fh.write(rng.randbytes(n))
            cmds.append("write -q -s %s %d %d" % (f, off, n))
            used += n
        elif r < 0.60 and not args.no_compress and (c + 1) * cs <= size:
            kind = "compressed"
            nfile += 1
            f = os.path.join(tmp, "c%d" % nfile)
            alpha = bytes(rng.sample(range(1, 256), 5))
            table = bytes(alpha[i % len(alpha)] for i in range(256))
            with open(f, "wb") as fh:
                fh.write(rng.randbytes(cs).translate(table))
            # qemu writes compressed data only to clusters without a host
            # cluster: discard first
            ccmds.append("discard -q %d %d" % (c * cs, cs))
            ccmds.append("write -q -c -s %s %d %d" % (f, c * cs, cs))
            used += cs
        else:
            kind = rng.choice(["zero", "zero-unmap", "discard"])
            s = rng.random()
            if s < 0.5:
                off, n = c * cs, cs * rng.randint(1, 2)
            else:
                off = c * cs + rng.randrange(32 if ext else 1) * sub
                n = sub * rng.randint(1, 3)
            n = min(n, size - off)
            if n <= 0:
                continue
            if kind == "zero":
                cmds.append("write -q -z %d %d" % (off, n))
            elif kind == "zero-unmap":
                cmds.append("write -q -z -u %d %d" % (off, n))
            else:
                cmds.append("discard -q %d %d" % (off, n))
        counts[kind] = counts.get(kind, 0) + 1
    # qemu-io in batches (argv length)
    for batch in (ccmds, cmds):
        for i in range(0, len(batch), 200):
            argv = ["qemu-io", "-f", "qcow2", img]
            for c in batch[i:i + 200]:
                argv += ["-c", c]
            run_cmd(argv)
    rc, out = run_cmd(["qemu-img", "check", img], ok=(0, 1, 2, 3))
    if rc != 0:
        sys.stderr.write(out)
        die("prefill: qemu-io left %s inconsistent (qemu-img check exit %d):"
            " a QEMU bug, not the plugin's; try another seed" % (img, rc))
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    print("prefill %s: %s" % (os.path.basename(img),
                              ", ".join("%s=%d" % kv for kv in
                                        sorted(counts.items()))))


# ---------------------------------------------------------------- verify

def check_image(img, allow_leaks=False, quiet=False):
    """qemu-img check.  Returns (rc, output); dies on errors (or leaks
    unless allowed)."""
    r = subprocess.run(["qemu-img", "check", img], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    bad = r.returncode not in ((0, 3) if allow_leaks else (0,))
    if not allow_leaks and "leaked" in out.lower():
        bad = True
    if "error" in out.lower() and "no errors were found" not in out.lower():
        bad = True
    if r.returncode in (0, 3) and not allow_leaks and \
            "no errors were found" not in out.lower():
        bad = True
    if bad:
        sys.stderr.write(out)
        die("qemu-img check %s: exit %d, %s" %
            (img, r.returncode,
             "corruption" if r.returncode == 2 else
             "leaks" if r.returncode == 3 else "not clean"))
    if not quiet:
        print("qemu-img check %s: exit %d%s" %
              (os.path.basename(img), r.returncode,
               " (leaks only)" if r.returncode == 3 else ", clean"))
    return r.returncode, out


def info_corrupt(img):
    r = subprocess.run(["qemu-img", "info", "--output=json", img],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        die("qemu-img info %s failed: %s" % (img, r.stdout.decode()))
    j = json.loads(r.stdout)
    return j.get("format-specific", {}).get("data", {}).get("corrupt", False)


def compare_image(ref, img):
    r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                        ref, img], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0 or "identical" not in out:
        sys.stderr.write(out)
        die("qemu-img compare %s %s: exit %d (not identical)" %
            (ref, img, r.returncode))
    print("qemu-img compare: %s identical to %s" %
          (os.path.basename(img), os.path.basename(ref)))


def cmd_verify(args):
    if info_corrupt(args.image):
        die("%s has the corrupt bit set" % args.image)
    check_image(args.image, args.allow_leaks)
    compare_image(args.ref, args.image)


def refcount_facts(img):
    hd = read_header(img)
    cs = hd["cluster_size"]
    with open(img, "rb") as f:
        f.seek(hd["refcount_table_offset"])
        t = f.read(hd["refcount_table_clusters"] * cs)
        f.seek(0, 2)
        fsize = f.tell()
    entries = struct.unpack(">%dQ" % (len(t) // 8), t)
    blocks = sum(1 for e in entries if e)
    return dict(refcount_table_offset=hd["refcount_table_offset"],
                refcount_table_clusters=hd["refcount_table_clusters"],
                refcount_blocks=blocks, refcount_order=hd["refcount_order"],
                cluster_size=cs, file_size=fsize)


def cmd_header(args):
    print(json.dumps(refcount_facts(args.image)))


def cmd_setbit64(args):
    with open(args.image, "r+b") as f:
        f.seek(args.byte)
        v, = struct.unpack(">Q", f.read(8))
        f.seek(args.byte)
        f.write(struct.pack(">Q", v | (1 << args.bit)))



# ---------------------------------------------------------------- explicit ops

def num(expr, env):
    e = dict(env)
    e.update(K=1 << 10, M=1 << 20, G=1 << 30)
    v = eval(expr, {"__builtins__": {}}, e)
    return int(v)


def cmd_ops(args):
    import nbd
    env = {}
    for v in args.var or []:
        k, x = v.split("=", 1)
        env[k] = num(x, env)
    rng = random.Random(args.seed)
    h = nbd.NBD()
    if args.uri.startswith("nbd"):
        h.connect_uri(args.uri)
    else:
        h.connect_unix(args.uri)
    size = h.get_size()
    with open(args.ref, "r+b") as f:
        if os.fstat(f.fileno()).st_size != size:
            die("reference %s size differs from the export's %d" %
                (args.ref, size))
        model = mmap.mmap(f.fileno(), size)
        for opstr in args.op:
            p = opstr.split(",")
            k = p[0]
            fl = set(p[3:])
            if k == "cap":
                c = p[1]
                ok = getattr(h, "can_" + c)() if c != "read_only" \
                    else h.is_read_only()
                if not ok:
                    die("server does not advertise %s" % c)
                print("cap %s: yes" % c)
                continue
            if k == "f":
                h.flush()
                print("flush OK")
                continue
            off, n = num(p[1], env), num(p[2], env)
            what = "%s off=%d (0x%x) len=%d%s" % (
                k, off, off, n, "," + ",".join(p[3:]) if p[3:] else "")
            flags = 0
            if "fua" in fl:
                flags |= nbd.CMD_FLAG_FUA
            if "nohole" in fl:
                flags |= nbd.CMD_FLAG_NO_HOLE
            if "fast" in fl:
                flags |= nbd.CMD_FLAG_FAST_ZERO
            try:
                if k == "w":
                    d = rng.randbytes(n)
                    h.pwrite(d, off, flags)
                    model[off:off + n] = d
                elif k == "z":
                    h.zero(n, off, flags)
                    model[off:off + n] = bytes(n)
                elif k == "t":
                    h.trim(n, off, flags)
                    model[off:off + n] = bytes(n)
                elif k == "r":
                    pass
                elif k == "zfail":
                    want = getattr(errno, p[3])
                    fl = set(p[4:])
                    flags = (nbd.CMD_FLAG_NO_HOLE if "nohole" in fl else 0) | \
                        (nbd.CMD_FLAG_FAST_ZERO if "fast" in fl else 0)
                    try:
                        h.zero(n, off, flags)
                    except nbd.Error as e:
                        if e.errnum != want:
                            die("%s: failed with %s (errno %s), expected %s" %
                                (what, e, e.errnum, p[3]))
                        print("%s: failed with %s as expected" % (what, p[3]))
                    else:
                        die("%s: succeeded, expected failure with %s" %
                            (what, p[3]))
                else:
                    die("unknown op " + opstr)
            except nbd.Error as e:
                die("%s: failed: %s (errno %s)" % (what, e, e.errnum))
            got = h.pread(n, off)
            if got != model[off:off + n]:
                exp = model[off:off + n]
                i = next(i for i in range(n) if got[i] != exp[i])
                die("%s: read back differs at offset %d (0x%x): got %s "
                    "expected %s" % (what, off + i, off + i,
                                     got[i:i + 16].hex(), exp[i:i + 16].hex()))
            if k != "r":
                print("%s: OK" % what)
        # whole export
        chunk = 4 << 20
        for a in range(0, size, chunk):
            n = min(chunk, size - a)
            got = h.pread(n, a)
            if got != model[a:a + n]:
                exp = model[a:a + n]
                i = next(i for i in range(n) if got[i] != exp[i])
                die("final read-back differs at offset %d (0x%x): got %s "
                    "expected %s" % (a + i, a + i, got[i:i + 16].hex(),
                                     exp[i:i + 16].hex()))
        print("final read-back of %d bytes OK" % size)
        model.flush()
        model.close()
    h.shutdown()


def qemu_map(img):
    _, out = run_cmd(["qemu-img", "map", "--output=json", img])
    return json.loads(out)


def cmd_map(args):
    for e in qemu_map(args.image):
        print(json.dumps(e))


def cmd_hostoff(args):
    for e in qemu_map(args.image):
        if e["start"] <= args.off < e["start"] + e["length"]:
            if "offset" in e:
                print(e["offset"] + args.off - e["start"])
            else:
                print("none")
            return
    die("offset %d not mapped" % args.off)


def cmd_expect_map(args):
    want = {}
    for c in args.conds:
        k, v = c.split("=", 1)
        if k not in ("data", "zero", "offset"):
            die("unknown condition " + c)
        want[k] = v
    a, b = args.off, args.off + args.len
    seen = 0
    bad = []
    entries = qemu_map(args.image)
    for e in entries:
        s, t = e["start"], e["start"] + e["length"]
        if t <= a or s >= b:
            continue
        seen += min(t, b) - max(s, a)
        for k in ("data", "zero"):
            if k in want and str(e[k]).lower() != want[k].lower():
                bad.append("%s=%s" % (k, e[k]))
        if "offset" in want:
            w = want["offset"]
            if w == "none" and "offset" in e:
                bad.append("has host offset %d" % e["offset"])
            elif w == "any" and "offset" not in e:
                bad.append("has no host offset")
            elif w not in ("none", "any"):
                x = max(s, a)
                exp = int(w) + x - a
                got = e.get("offset")
                if got is not None:
                    got += x - s
                if got != exp:
                    bad.append("host offset %s, expected %d" % (got, exp))
        if bad:
            sys.stderr.write("qemu-img map entries:\n")
            for e2 in entries:
                if e2["start"] < b and a < e2["start"] + e2["length"]:
                    sys.stderr.write("  %s\n" % json.dumps(e2))
            die("map of [%d, %d) (0x%x..0x%x): %s (expected %s)" %
                (a, b, a, b, "; ".join(bad), " ".join(args.conds)))
    if seen != b - a:
        die("map does not cover [%d, %d)" % (a, b))
    print("map [0x%x, 0x%x): %s OK" % (a, b, " ".join(args.conds)))


def cmd_expect_hole(args):
    # can this file system punch holes at all?
    d = os.path.dirname(os.path.abspath(args.image))
    with tempfile.NamedTemporaryFile(dir=d) as t:
        t.write(b"x" * (1 << 20))
        t.flush()
        r = subprocess.run(["fallocate", "-p", "-o", "65536", "-l", "65536",
                            t.name], stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            print("file system cannot punch holes: not checked")
            sys.exit(77)
    fd = os.open(args.image, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        a, b = args.hostoff, args.hostoff + args.len
        if a >= size:
            print("host [%d, %d) is beyond the end of the file" % (a, b))
            return
        try:
            nd = os.lseek(fd, a, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:   # no data after a
                nd = size
            else:
                raise
        if nd < min(b, size):
            die("host range [%d, %d) of %s still holds data at %d (freed "
                "clusters must be punched out of the file)" %
                (a, b, args.image, nd))
        print("host [%d, %d) is a hole" % (a, b))
    finally:
        os.close(fd)


def cmd_expect_sparse(args):
    hd = read_header(args.image)
    unit = hd["cluster_size"] // 32 if hd["extended_l2"] else \
        hd["cluster_size"]
    unit = max(unit, args.min_unit)
    entries = qemu_map(args.image)
    data = Ranges()
    for e in entries:
        if e["data"]:
            data.add(e["start"], e["start"] + e["length"])
    zero_units = 0
    bad = []
    zero = bytes(unit)
    with open(args.src, "rb") as f:
        off = 0
        while True:
            b = f.read(unit)
            if not b:
                break
            if b == zero[:len(b)]:
                zero_units += 1
                if data.overlaps(off, off + len(b)):
                    bad.append(off)
            off += len(b)
    if bad:
        die("%d allocation units (%d bytes) that are all zero in %s are "
            "allocated as data in %s, first at %s" %
            (len(bad), unit, args.src, args.image,
             ", ".join("0x%x" % x for x in bad[:8])))
    if zero_units < args.min_zero_units:
        die("%s has only %d all-zero units of %d bytes: the sparseness "
            "check is vacuous" % (args.src, zero_units, unit))
    print("sparse OK: %d all-zero units of %d bytes in %s, none allocated "
          "as data; %d bytes allocated as data" %
          (zero_units, unit, os.path.basename(args.src), data.total()))

# ---------------------------------------------------------------- main

def add_run_args(p):
    p.add_argument("uri")
    p.add_argument("--ref", required=True)
    p.add_argument("--ref-create", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--mix")
    p.add_argument("--image")
    p.add_argument("--cluster-size", type=parse_size, default=0)
    p.add_argument("--extended-l2", action="store_true")
    p.add_argument("--max-len", type=parse_size, default=0)
    p.add_argument("--big-len", type=parse_size, default=0)
    p.add_argument("--regions")
    p.add_argument("--stripe", type=parse_size, default=0)
    p.add_argument("--flush-barrier", action="store_true")
    p.add_argument("--racy-reads", action="store_true")
    p.add_argument("--verify-start", action="store_true")
    p.add_argument("--trace")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-require-caps", dest="require_caps",
                   action="store_false")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    add_run_args(sp.add_parser("run"))
    p = sp.add_parser("prefill")
    p.add_argument("image")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--budget")
    p.add_argument("--max-ops", type=int, default=300)
    p.add_argument("--no-compress", action="store_true")
    p.add_argument("--tmpdir")
    p = sp.add_parser("verify")
    p.add_argument("image")
    p.add_argument("ref")
    p.add_argument("--allow-leaks", action="store_true")
    p = sp.add_parser("header")
    p.add_argument("image")
    p = sp.add_parser("ops")
    p.add_argument("uri")
    p.add_argument("--ref", required=True)
    p.add_argument("--var", action="append")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("op", nargs="+")
    p = sp.add_parser("map")
    p.add_argument("image")
    p = sp.add_parser("hostoff")
    p.add_argument("image")
    p.add_argument("off", type=parse_size)
    p = sp.add_parser("expect-map")
    p.add_argument("image")
    p.add_argument("off", type=parse_size)
    p.add_argument("len", type=parse_size)
    p.add_argument("conds", nargs="*")
    p = sp.add_parser("expect-hole")
    p.add_argument("image")
    p.add_argument("hostoff", type=int)
    p.add_argument("len", type=parse_size)
    p = sp.add_parser("expect-sparse")
    p.add_argument("image")
    p.add_argument("src")
    p.add_argument("--min-zero-units", type=int, default=1)
    p.add_argument("--min-unit", type=parse_size, default=4096)
    p = sp.add_parser("setbit")
    p.add_argument("image")
    p.add_argument("byte", type=int)
    p.add_argument("bit", type=int)
    args = ap.parse_args()
    start_memory_watchdog()
    if args.cmd == "run":
        if args.stripe and args.regions:
            die("--stripe and --regions are exclusive")
        cmd_run(args)
    elif args.cmd == "prefill":
        cmd_prefill(args)
    elif args.cmd == "verify":
        cmd_verify(args)
    elif args.cmd == "header":
        cmd_header(args)
    elif args.cmd == "ops":
        cmd_ops(args)
    elif args.cmd == "map":
        cmd_map(args)
    elif args.cmd == "hostoff":
        cmd_hostoff(args)
    elif args.cmd == "expect-map":
        cmd_expect_map(args)
    elif args.cmd == "expect-hole":
        cmd_expect_hole(args)
    elif args.cmd == "expect-sparse":
        cmd_expect_sparse(args)
    elif args.cmd == "setbit":
        cmd_setbit64(args)


if __name__ == "__main__":
    main()
