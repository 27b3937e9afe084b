#!/usr/bin/python3
"""Concurrency stress: many connections x many in-flight requests of
OVERLAPPING writes/reads/zeros/trims, every read checked against a model
of what NBD's ordering rules allow.

usage: stress.py URI --ref REF --out OUT --image IMG [options]

  URI     nbd+unix:///?socket=... (nbdkit --run's $uri)
  REF     raw file: the export's contents before the run (qemu-img convert)
  OUT     written at the end: the exact final contents (a raw file, for
          qemu-img compare)
  IMG     the served qcow2 image (only its header is read: cluster size,
          extended L2), to aim the offsets at clusters/subclusters

Storm phase (--ops requests, seed --seed): --conns connections (default
8), each kept at --depth requests in flight (default 16), libnbd aio
(aio_pread/aio_pwrite/aio_zero/aio_trim/aio_flush/aio_block_status) with
a poll loop that fails after --stall seconds without progress.  Offsets
and lengths are biased to cluster/subcluster boundaries (workload.Gen)
and, half of the time, to a moving 2-cluster hot spot, so requests
collide on the same clusters, subclusters and bytes.

The model, per byte, is a SET of values that a read may legally return:
  - "settled" candidates: the modifying requests (write, zero, trim)
    that completed before the read was issued and are not superseded,
    where W supersedes C on a byte if W was issued after C completed and
    W has completed (so W was applied after C).  Two writes that
    overlapped in time both stay candidates until a later one covers
    them.  Initially the single candidate is REF.
  - plus every modifying request overlapping the byte that was in flight
    at any moment of the read's lifetime (issued before the read
    completed and not completed before the read was issued): a concurrent
    request may or may not be visible, byte by byte.
  Times are taken conservatively on the client (issue = before the aio
  call, completion = when the completion callback runs).  Zero and trim
  are modelled as writing zeros (the plugin's and filter's contract: a
  trimmed range reads as zeros).  A FAST_ZERO request may fail with
  ENOTSUP and then changes nothing.  Any other request failing is a
  test failure.  A read byte outside its set is a failure (reported with
  the candidates and the recent requests).

Quiet phase, after everything completed:
  1. every connection reads the whole export: each byte must be in its
     settled set, and all connections must return identical bytes (that
     is then the exact state);
  2. two rounds of non-overlapping writes/zeros/trims covering the whole
     export in random pieces (all connections at once), then a flush, and
     every connection must read back exactly the model;
  3. block status over the whole export: extents flagged ZERO must read
     as zeros, extents must tile the range;
  4. OUT := the exact contents (then qemu-img check + qemu-img compare
     by the caller).

Exit 0 on success, 1 on a failure.  STRESS_OPS in the environment
overrides --ops; STRESS_SEED overrides --seed.
"""
import argparse
import bisect
import errno
import os
import random
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload  # noqa: E402  (Gen, make_data, read_header, parse_size)

import nbd  # noqa: E402

MODIFY = ("write", "zero", "zerotrim", "fastzero", "trim")
ZEROISH = ("zero", "zerotrim", "fastzero", "trim")


def die(msg):
    sys.stderr.write("stress.py: FAIL: %s\n" % msg)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class Op:
    __slots__ = ("n", "kind", "off", "len", "end", "flags", "data", "conn",
                 "t_issue", "t_done", "err", "buf", "slot", "snap", "conc",
                 "extents")

    def __init__(self, n, kind, off=0, length=0, flags=0, data=None):
        self.n, self.kind, self.off, self.len = n, kind, off, length
        self.end = off + length
        self.flags, self.data = flags, data
        self.conn = -1
        self.t_issue = self.t_done = None
        self.err = None
        self.buf = self.slot = None
        self.snap = None
        self.conc = None
        self.extents = None

    def value(self, a, b):
        """The bytes this op leaves in [a, b) (inside its range)."""
        if self.kind in ZEROISH:
            return bytes(b - a)
        return self.data[a - self.off:b - self.off]

    def desc(self):
        fl = []
        if self.flags & nbd.CMD_FLAG_FUA:
            fl.append("FUA")
        if self.flags & nbd.CMD_FLAG_NO_HOLE:
            fl.append("NO_HOLE")
        if self.flags & nbd.CMD_FLAG_FAST_ZERO:
            fl.append("FAST_ZERO")
        t = " t=%s..%s" % (self.t_issue, self.t_done)
        if self.kind == "init":
            return "initial contents"
        if self.kind == "flush":
            return "#%d conn%d flush%s" % (self.n, self.conn, t)
        return "#%d conn%d %s [0x%x, 0x%x) len %d%s%s%s" % (
            self.n, self.conn, self.kind, self.off, self.end, self.len,
            " " + "|".join(fl) if fl else "", t,
            " err=%s" % self.err if self.err else "")


class Model:
    """Byte range -> frozenset of candidate ops (settled state)."""

    def __init__(self, size, init):
        self.size = size
        self.starts = [0]
        self.sets = [frozenset([init])]

    def _split(self, x):
        if x >= self.size:
            return len(self.starts)
        i = bisect.bisect_right(self.starts, x) - 1
        if self.starts[i] == x:
            return i
        self.starts.insert(i + 1, x)
        self.sets.insert(i + 1, self.sets[i])
        return i + 1

    def segments(self, a, b):
        st = self.starts
        i = bisect.bisect_right(st, a) - 1
        out = []
        n = len(st)
        while i < n and st[i] < b:
            e = st[i + 1] if i + 1 < n else self.size
            out.append((max(st[i], a), min(e, b), self.sets[i]))
            i += 1
        return out

    def settle(self, w):
        i = self._split(w.off)
        j = self._split(w.end)
        t = w.t_issue
        for k in range(i, j):
            keep = [c for c in self.sets[k] if c.t_done > t]
            keep.append(w)
            self.sets[k] = frozenset(keep)
        # merge equal neighbours around [i, j]
        lo = max(i, 1)
        hi = min(j, len(self.starts) - 1)
        for k in range(hi, lo - 1, -1):
            if self.sets[k] == self.sets[k - 1]:
                del self.starts[k]
                del self.sets[k]

    def nsegs(self):
        return len(self.starts)


def match_len(got, val, p, end):
    """Length of the common prefix of got[p:end] and val[p:end]."""
    if got[p:end] == val[p:end]:
        return end - p
    lo, hi = 0, end - p     # got[p:p+lo] equal, got[p:p+hi] not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if got[p:p + mid] == val[p:p + mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Stress:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.clock = 0
        self.free_slots = {}            # workload.take_slot
        self.conns = []
        for i in range(args.conns):
            h = nbd.NBD()
            h.set_handle_name("stress%d" % i)
            h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
            h.connect_uri(args.uri)
            self.conns.append(h)
        h0 = self.conns[0]
        self.size = h0.get_size()
        if h0.is_read_only():
            die("export is read-only")
        for cap in ("can_zero", "can_trim", "can_flush", "can_fua",
                    "can_multi_conn", "can_fast_zero"):
            if not getattr(h0, cap)():
                die("server does not advertise %s (needed: the model "
                    "assumes one coherent image behind all connections)"
                    % cap[4:])
        if not h0.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION):
            die("server does not offer base:allocation")
        with open(args.ref, "rb") as f:
            ref = f.read()
        if len(ref) != self.size:
            die("reference has %d bytes, export %d" % (len(ref), self.size))
        self.init = Op(-1, "init", 0, self.size, 0, ref)
        self.init.t_issue = self.init.t_done = self.tick()
        self.model = Model(self.size, self.init)
        self.inflight = [dict() for _ in self.conns]   # per conn: n -> op
        self.inflight_mod = {}                          # n -> op
        self.inflight_reads = {}                        # n -> op
        self.done = []
        self.recent = []
        self.stats = {}
        self.checked_bytes = 0
        self.torn_reads = 0
        self.multi_cand_bytes = 0
        self.fastzero_enotsup = 0
        self.max_segs = 1
        self.trace = open(args.trace, "w") if args.trace else None
        self.history = [] if args.debug_history else None

        hd = workload.read_header(args.image)
        self.cluster = hd["cluster_size"]
        self.ext = hd["extended_l2"]
        self.sub = self.cluster // 32 if self.ext else self.cluster
        max_len = args.max_len or min(2 * self.cluster, 1 << 20)
        self.gen = workload.Gen(self.rng, self.size, self.cluster, self.sub,
                                self.ext, [(0, self.size)], max_len,
                                max_len, 0, args.conns)
        self.hot_gen = None
        self.mix = workload.parse_mix("")
        for k in self.mix:
            self.mix[k] = 0
        self.mix.update(dict(write=40, read=25, zero=7, zerotrim=6,
                             fastzero=3, trim=7, flush=2, fua=5))
        self.mix["extents"] = 3
        if args.mix:
            for item in args.mix.split(","):
                k, v = item.split("=")
                if k not in self.mix:
                    die("unknown kind in --mix: %s" % k)
                self.mix[k] = float(v)
        self.kinds = [k for k in self.mix if self.mix[k] > 0]
        self.weights = [self.mix[k] for k in self.kinds]

    def tick(self):
        self.clock += 1
        return self.clock

    def log(self, s):
        self.recent.append(s)
        if len(self.recent) > 400:
            del self.recent[:100]
        if self.trace:
            self.trace.write(s + "\n")

    # ------------------------------------------------------------ ops
    def new_op(self, n, conn):
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "flush":
            return Op(n, "flush")
        if n % 500 == 0 or self.hot_gen is None:
            span = 2 * self.cluster
            a = rng.randrange(0, max(1, self.size - span + 1))
            a = a // self.sub * self.sub
            self.hot_gen = workload.Gen(rng, self.size, self.cluster,
                                        self.sub, self.ext,
                                        [(a, min(self.size, a + span))],
                                        self.gen.max_len, self.gen.max_len,
                                        0, self.args.conns)
        g = self.hot_gen if rng.random() < 0.5 else self.gen
        off, ln = g.range(conn)
        if kind == "read":
            return Op(n, "read", off, ln)
        if kind == "extents":
            return Op(n, "extents", off, ln)
        if kind in ("write", "fua"):
            fl = nbd.CMD_FLAG_FUA if kind == "fua" else 0
            return Op(n, "write", off, ln, fl, workload.make_data(rng, ln))
        fl = nbd.CMD_FLAG_FUA if rng.random() < 0.1 else 0
        if kind == "zero":
            fl |= nbd.CMD_FLAG_NO_HOLE
        elif kind == "fastzero":
            fl |= nbd.CMD_FLAG_FAST_ZERO
            if rng.random() < 0.5:
                fl |= nbd.CMD_FLAG_NO_HOLE
        return Op(n, kind, off, ln, fl)

    def submit(self, op, conn):
        h = self.conns[conn]
        op.conn = conn
        op.t_issue = self.tick()
        self.stats[op.kind] = self.stats.get(op.kind, 0) + 1
        if op.kind in MODIFY:
            if self.history is not None:
                self.history.append(op)
            for r in self.inflight_reads.values():
                if r.off < op.end and op.off < r.end:
                    r.conc.append(op)
            self.inflight_mod[op.n] = op
        elif op.kind == "read":
            op.snap = self.model.segments(op.off, op.end)
            op.conc = [w for w in self.inflight_mod.values()
                       if w.off < op.end and op.off < w.end]
            self.inflight_reads[op.n] = op
        self.inflight[conn][op.n] = op

        def cb(err, op=op):
            op.t_done = self.tick()
            op.err = err.value
            self.done.append(op)
            return 1

        self.log("issue " + op.desc())
        try:
            # No nbd.Buffer per op: libnbd 1.14's binding keeps them all
            # alive (see workload.Runner.read_slot).
            if op.kind == "write":
                h.aio_pwrite(bytes(op.data), op.off, completion=cb, flags=op.flags)
            elif op.kind == "read":
                op.slot = workload.take_slot(self.free_slots, op.len)
                op.buf = nbd.Buffer.from_buffer(memoryview(op.slot)[:op.len])
                h.aio_pread(op.buf, op.off, completion=cb)
            elif op.kind in ("zero", "zerotrim", "fastzero"):
                h.aio_zero(op.len, op.off, completion=cb, flags=op.flags)
            elif op.kind == "trim":
                h.aio_trim(op.len, op.off, completion=cb, flags=op.flags)
            elif op.kind == "flush":
                h.aio_flush(completion=cb)
            elif op.kind == "extents":
                op.extents = []

                def ecb(meta, offset, entries, err, op=op):
                    if meta == nbd.CONTEXT_BASE_ALLOCATION:
                        op.extents.append((offset, list(entries)))
                    return 0
                h.aio_block_status(op.len, op.off, ecb, completion=cb)
            else:
                raise AssertionError(op.kind)
        except nbd.Error as e:
            self.fail_recent("%s: could not be issued: %s" % (op.desc(), e))

    # ------------------------------------------------------------ loop
    def pump(self, timeout):
        rl, wl = [], []
        for i, h in enumerate(self.conns):
            if not self.inflight[i]:
                continue
            if h.aio_is_dead() or h.aio_is_closed():
                self.fail_recent("connection %d is dead (server crashed?)"
                                 % i)
            d = h.aio_get_direction()
            if d & nbd.AIO_DIRECTION_READ:
                rl.append(i)
            if d & nbd.AIO_DIRECTION_WRITE:
                wl.append(i)
        if not rl and not wl:
            return
        fds = {}
        for i in set(rl) | set(wl):
            fds[self.conns[i].aio_get_fd()] = i
        r, w, _ = select.select([self.conns[i].aio_get_fd() for i in rl],
                                [self.conns[i].aio_get_fd() for i in wl],
                                [], timeout)
        try:
            for fd in r:
                self.conns[fds[fd]].aio_notify_read()
            for fd in w:
                self.conns[fds[fd]].aio_notify_write()
        except nbd.Error as e:
            self.fail_recent("libnbd: %s (server crashed?)" % e)

    def process_done(self):
        done, self.done = self.done, []
        done.sort(key=lambda o: o.t_done)
        for op in done:
            del self.inflight[op.conn][op.n]
            self.log("done  " + op.desc())
            if op.kind in MODIFY:
                del self.inflight_mod[op.n]
            elif op.kind == "read":
                del self.inflight_reads[op.n]
            if op.err:
                if op.kind == "fastzero" and op.err == errno.ENOTSUP:
                    self.fastzero_enotsup += 1
                    continue
                self.fail_recent("%s failed: %s" %
                                 (op.desc(), os.strerror(op.err)))
            if op.kind in MODIFY:
                self.model.settle(op)
                self.max_segs = max(self.max_segs, self.model.nsegs())
            elif op.kind == "read":
                got = bytearray(op.slot[:op.len])
                self.free_slots.setdefault(len(op.slot), []).append(op.slot)
                op.slot = op.buf = None
                self.check_read(op, got, op.snap, op.conc)
                op.snap = op.conc = None
            elif op.kind == "extents":
                self.check_extents(op)

    def wait(self, cond, what):
        last = time.monotonic()
        while not cond():
            nd = len(self.done)
            self.pump(1.0)
            if self.done or nd:
                last = time.monotonic()
            self.process_done()
            if time.monotonic() - last > self.args.stall:
                self.fail_recent("no request completed for %d s while "
                                 "waiting for %s (server hung?)" %
                                 (self.args.stall, what))

    def n_inflight(self):
        return sum(len(x) for x in self.inflight)

    # ------------------------------------------------------------ checks
    def check_read(self, op, got, snap, conc):
        """Every byte of got (read of [op.off, op.end)) must be one of the
        values the snapshot + concurrent requests allow."""
        a, b = op.off, op.end
        bounds = {a, b}
        for x, y, _ in snap:
            bounds.add(x)
        for w in conc:
            bounds.add(max(a, w.off))
            bounds.add(min(b, w.end))
        bounds = sorted(x for x in bounds if a <= x <= b)
        si = 0
        torn = False
        for k in range(len(bounds) - 1):
            x, y = bounds[k], bounds[k + 1]
            if x >= y:
                continue
            while snap[si][1] <= x:
                si += 1
            cands = list(snap[si][2])
            cands += [w for w in conc if w.off <= x and y <= w.end]
            seg = got[x - a:y - a]
            vals = []
            for c in cands:
                v = c.value(x, y)
                if v not in vals:
                    vals.append(v)
            if len(vals) > 1:
                self.multi_cand_bytes += y - x
            if seg in vals:
                continue
            torn = True
            # byte by byte (in runs): each byte must match some candidate
            p, n = 0, y - x
            while p < n:
                best = 0
                for v in vals:
                    m = match_len(seg, v, p, n)
                    if m > best:
                        best = m
                if best == 0:
                    self.report_bad_byte(op, x + p, seg[p], cands, snap,
                                         conc, seg, p)
                p += best
        if torn:
            self.torn_reads += 1
        self.checked_bytes += b - a

    def report_bad_byte(self, op, off, got, cands, snap, conc, seg=b"",
                        p=0):
        lines = ["%s returned 0x%02x at offset %d (0x%x), which no "
                 "legal ordering allows" % (op.desc(), got, off, off),
                 "allowed values at that byte:"]
        for c in cands:
            v = c.value(off, off + 1)[0]
            src = "settled" if c not in conc else "concurrent"
            lines.append("  0x%02x  from %s (%s)" % (v, c.desc(), src))
        lines.append("(cluster %d, subcluster %d of it)" %
                     (off // self.cluster,
                      (off % self.cluster) // self.sub))
        run = bytes(seg[p:p + 16])
        lines.append("read returned %s there" % run.hex())
        if self.history is not None and len(run) >= 8:
            # --debug-history: where do these bytes come from?
            for w in self.history:
                if w.kind != "write":
                    continue
                k = w.data.find(run)
                if k >= 0:
                    lines.append("  these bytes are %s's data at offset "
                                 "0x%x (%s)" %
                                 (w.desc(), w.off + k,
                                  "same place" if w.off + k == off
                                  else "ELSEWHERE"))
        self.fail_recent("\n".join(lines))

    def check_extents(self, op):
        pos = op.off
        for off, ents in op.extents:
            if off != op.off:
                self.fail_recent("%s: extents callback for offset %d"
                                 % (op.desc(), off))
            if not ents or len(ents) % 2:
                self.fail_recent("%s: bad extent list %r" %
                                 (op.desc(), ents))
            for i in range(0, len(ents), 2):
                ln, fl = ents[i], ents[i + 1]
                if ln <= 0 or fl & ~3 or pos + ln > self.size:
                    self.fail_recent("%s: bad extent (len %d, flags %d) at "
                                     "%d" % (op.desc(), ln, fl, pos))
                pos += ln
        if not op.extents:
            self.fail_recent("%s: no base:allocation extents" % op.desc())

    def fail_recent(self, msg):
        sys.stderr.write("last requests (issue/done, t = logical time):\n")
        for s in self.recent[-120:]:
            sys.stderr.write("  %s\n" % s)
        sys.stderr.write("model: %d segments; %d requests in flight\n" %
                         (self.model.nsegs(), self.n_inflight()))
        die(msg)

    # ------------------------------------------------------------ phases
    def storm(self):
        args = self.args
        n = 0
        t0 = time.monotonic()
        order = list(range(args.conns))
        while n < args.ops:
            self.rng.shuffle(order)
            for c in order:
                while len(self.inflight[c]) < args.depth and n < args.ops:
                    self.submit(self.new_op(n, c), c)
                    n += 1
            self.wait(lambda: self.done or
                      all(len(x) < args.depth for x in self.inflight),
                      "a free slot")
            self.pump(0)
            self.process_done()
        self.wait(lambda: self.n_inflight() == 0, "the last requests")
        dt = time.monotonic() - t0
        print("storm: %d requests on %d connections x %d in flight in "
              "%.1fs (%.0f/s): %s" %
              (n, args.conns, args.depth, dt, n / dt,
               ", ".join("%s=%d" % kv for kv in sorted(self.stats.items()))))
        print("storm: %d bytes read and checked, %d bytes had >1 legal "
              "value, %d reads mixed values (torn), %d FAST_ZERO ENOTSUP, "
              "model peak %d segments" %
              (self.checked_bytes, self.multi_cand_bytes, self.torn_reads,
               self.fastzero_enotsup, self.max_segs))

    def sync_read_all(self, h, what):
        out = bytearray()
        chunk = 1 << 20
        for off in range(0, self.size, chunk):
            n = min(chunk, self.size - off)
            try:
                out += h.pread(n, off)
            except nbd.Error as e:
                self.fail_recent("%s: read at %d failed: %s" % (what, off, e))
        return out

    def quiet(self):
        # 1. settled state: membership per byte, identical on all conns
        first = None
        for i, h in enumerate(self.conns):
            got = self.sync_read_all(h, "quiet read")
            if first is None:
                op = Op(-2, "read", 0, self.size)
                op.conn = 0
                self.check_read(op, got, self.model.segments(0, self.size),
                                [])
                first = got
            elif got != first:
                k = next(j for j in range(self.size) if got[j] != first[j])
                die("after the storm, connection %d reads 0x%02x at %d, "
                    "connection 0 read 0x%02x (quiet image, no request in "
                    "flight)" % (i, got[k], k, first[k]))
        exact = first
        amb = sum(y - x for x, y, s in self.model.segments(0, self.size)
                  if len(s) > 1)
        print("quiet: whole export read on %d connections: every byte "
              "legal, identical everywhere (%d bytes had >1 legal value)"
              % (len(self.conns), amb))
        # 2. two rounds of non-overlapping requests covering everything
        rng = self.rng
        n = 1 << 30
        for rnd in range(2):
            pos = 0
            ops = []
            while pos < self.size:
                ln = min(self.size - pos,
                         rng.choice([rng.randint(1, 2 * self.cluster),
                                     rng.randint(1, self.sub),
                                     self.sub, self.cluster]))
                r = rng.random()
                if r < 0.65:
                    op = Op(n, "write", pos, ln,
                            nbd.CMD_FLAG_FUA if rng.random() < 0.05 else 0,
                            workload.make_data(rng, ln))
                elif r < 0.75:
                    op = Op(n, "zero", pos, ln, nbd.CMD_FLAG_NO_HOLE)
                elif r < 0.85:
                    op = Op(n, "zerotrim", pos, ln)
                elif r < 0.92:
                    op = Op(n, "trim", pos, ln)
                else:
                    op = None       # left alone
                if op:
                    ops.append(op)
                n += 1
                pos += ln
            rng.shuffle(ops)
            for op in ops:
                c = rng.randrange(len(self.conns))
                self.wait(lambda: len(self.inflight[c]) < self.args.depth,
                          "a free slot")
                self.submit(op, c)
            self.wait(lambda: self.n_inflight() == 0, "the quiet round")
            for op in ops:
                exact[op.off:op.end] = op.value(op.off, op.end)
        self.conns[0].flush()
        for i, h in enumerate(self.conns):
            got = self.sync_read_all(h, "final read")
            if got != exact:
                k = next(j for j in range(self.size) if got[j] != exact[j])
                die("after the quiet rounds (non-overlapping requests, "
                    "exact model), connection %d reads 0x%02x at %d (0x%x), "
                    "expected 0x%02x" % (i, got[k], k, k, exact[k]))
        print("quiet: 2 rounds of non-overlapping requests + flush: all "
              "%d connections read exactly the model" % len(self.conns))
        # 3. block status vs data
        h = self.conns[0]
        pos = 0
        nzero = 0
        while pos < self.size:
            ents = []

            def ecb(meta, offset, entries, err):
                if meta == nbd.CONTEXT_BASE_ALLOCATION:
                    ents.extend(entries)
                return 0
            h.block_status(self.size - pos, pos, ecb)
            if not ents:
                die("block status at %d returned nothing" % pos)
            for i in range(0, len(ents), 2):
                ln, fl = ents[i], ents[i + 1]
                ln = min(ln, self.size - pos)
                if fl & 2 and exact[pos:pos + ln] != bytes(ln):
                    k = next(j for j in range(ln) if exact[pos + j])
                    die("block status says [%d, %d) reads as zero (flags "
                        "%d) but byte %d is 0x%02x" %
                        (pos, pos + ln, fl, pos + k, exact[pos + k]))
                if fl & 2:
                    nzero += ln
                pos += ln
        print("quiet: block status consistent with the data (%d bytes "
              "flagged zero)" % nzero)
        with open(self.args.out, "wb") as f:
            f.write(exact)
        for h in self.conns:
            h.shutdown()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("uri")
    ap.add_argument("--ref", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=12000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--max-len", type=workload.parse_size, default=0)
    ap.add_argument("--mix", default="",
                    help="weights: write,read,zero,zerotrim,fastzero,trim,"
                    "flush,fua,extents")
    ap.add_argument("--stall", type=int, default=60)
    ap.add_argument("--trace")
    ap.add_argument("--debug-history", action="store_true",
                    help="keep every request's data to say where a bad "
                    "read's bytes came from (memory grows)")
    args = ap.parse_args()
    workload.start_memory_watchdog()
    if os.environ.get("STRESS_OPS"):
        args.ops = int(os.environ["STRESS_OPS"])
    if os.environ.get("STRESS_SEED"):
        args.seed = int(os.environ["STRESS_SEED"])
    s = Stress(args)
    print("stress: export %d bytes, cluster %d, %s L2, seed %d" %
          (s.size, s.cluster, "extended" if s.ext else "standard",
           args.seed))
    s.storm()
    s.quiet()
    print("stress: OK")


if __name__ == "__main__":
    main()
