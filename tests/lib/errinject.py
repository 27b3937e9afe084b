#!/usr/bin/python3
"""Error injection sweep: the plugin's inject-error=OP:NTH:ERRNO[:persistent]
makes the NTH following write (sync, truncate) of the image file fail.
For every NTH of a sweep, run the same deterministic workload and check
that the failure is handled cleanly.

usage: errinject.py --plugin PLUGIN [--filter FILTER] --dir DIR
                    --create OPTS --size SIZE [--base-random]
                    [--host-prefill BYTES] [--seed S] [--ops N]
                    [--max-len N] [--big-len N]
                    --sweep SPEC [--sweep SPEC ...]
                    [--must-trigger OP:N] [--expect-hit TEXT ...]
                    [--plugin-arg KEY=VALUE ...]

SPEC  OP:NTHS[:MODE]   OP write|sync|truncate; NTHS a list of numbers and
      ranges (1-40,50,60-200/10); MODE continue (default), kill or
      persistent.  The errno cycles through ENOSPC, EIO, EDQUOT.

The template image is made once: qemu-img create -o OPTS (with
--base-random, over a 'base.qcow2' full of random data, served through
--filter), then --host-prefill bytes of data written by qemu-io (puts
the file near a refcount block boundary).  Each run copies it, starts
nbdkit (pidfile + unix socket) with inject-error=OP:NTH:ERRNO[:persistent]
and applies the workload synchronously, alternating two connections
(deterministic order of the plugin's file writes).  Rules checked:

  1. No request fails before the fault; reads never fail; the connection
     never drops and the server never dies.
  2. The first failing request fails with the injected errno (EDQUOT
     travels as ENOSPC on the wire).
  3. The NEXT flush reports it: if the first failing request is a write,
     zero or trim without FUA, the next flush (on either connection) must
     fail with the same errno (or a FUA request before it, whose flush
     reports it); a flush that succeeds instead pretends success.  (A
     failed flush or FUA request reported the error itself; the next
     flush may then fail once too.)
  4. One-shot faults: apart from that flush, nothing else fails, and the
     final flushes succeed (the server recovered).  Persistent faults,
     and sync faults (a failed sync fails every later one: the data it
     lost cannot be made durable by retrying): modifying requests and
     flushes may keep failing, reads must not.
  5. Reads (during the workload and of the whole disk at the end) return
     the model everywhere except ranges of failed requests not since
     overwritten by a successful one.
  6. MODE continue: clean shutdown (SIGTERM, exit 0), qemu-img check
     without corruption (exit 0, or 3 = leaks only), qemu-img convert
     equal to the model (same exceptions), then reopened without the
     fault: it reads what QEMU reads, takes a write + flush, shuts down,
     check still without corruption.  Sync faults: the same, except that
     the exit status is free and convert is held to the durable bytes
     below instead of the model.
     MODE kill: SIGKILL right after the flush that reported the error;
     persistent: SIGTERM with the fault still active.  Then qemu-img check
     without corruption, and every byte acknowledged by a successful
     flush or FUA request (and not touched since) reads back through
     qemu-img convert.
  7. If no request failed, the server log must not show an injected
     failure (else it was swallowed); --must-trigger OP:N requires every
     NTH <= N of OP to make a request fail; --expect-hit TEXT requires
     some run's injected failure to have hit a structure whose name
     contains TEXT (e.g. "refcount block").

Exit 0 if every run passes.
"""
import argparse
import errno
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockdir  # noqa: E402
import workload  # noqa: E402  (Gen, make_data, Ranges, read_header)
from workload import Ranges  # noqa: E402

import nbd  # noqa: E402

ERRNOS = ["ENOSPC", "EIO", "EDQUOT"]
WIRE = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO, "EDQUOT": errno.ENOSPC}


class Fail(Exception):
    pass


def excerpt(out, n=12):
    lines = out.rstrip("\n").split("\n")
    if len(lines) > n:
        lines = lines[:n - 4] + ["    ..."] + lines[-3:]
    return "\n".join("    | " + x for x in lines)


def run(cmd, ok=(0,)):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    if r.returncode not in ok:
        raise Fail("command failed (exit %d): %s\n%s" %
                   (r.returncode, " ".join(cmd), excerpt(out)))
    return r.returncode, out


class Server:
    def __init__(self, args, img, d, tag, inject=None):
        self.sock = sockdir.socket_path(d)
        self.pidfile = os.path.join(d, "s.pid")
        for f in (self.sock, self.pidfile):
            if os.path.exists(f):
                os.unlink(f)
        self.logname = os.path.join(d, "server-%s.log" % tag)
        self.log = open(self.logname, "w")
        argv = ["nbdkit", "-f", "-U", self.sock, "-P", self.pidfile]
        if args.filter:
            argv.append("--filter=" + args.filter)
        argv += [args.plugin, "file=" + img]
        argv += args.plugin_arg
        if inject:
            argv.append("inject-error=" + inject)
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log)
        t0 = time.monotonic()
        while not (os.path.exists(self.sock) and
                   os.path.exists(self.pidfile)):
            if self.p.poll() is not None:
                raise Fail("server exited at start-up (exit %d): %s" %
                           (self.p.returncode, self.text()))
            if time.monotonic() - t0 > 30:
                self.kill()
                raise Fail("server did not start")
            time.sleep(0.01)
        self.uri = "nbd+unix:///?socket=" + self.sock

    def text(self):
        self.log.flush()
        with open(self.logname) as f:
            return f.read()

    def kill(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait()
        self.log.close()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail("server did not exit within 60 s of SIGTERM")
        self.log.close()
        return rc


def connect(uri, n):
    hs = []
    for i in range(n):
        h = nbd.NBD()
        h.set_handle_name("errinject%d" % i)
        h.connect_uri(uri)
        hs.append(h)
    return hs


def first_diff(got, exp, ranges, what):
    for a, b in ranges:
        if got[a:b] != exp[a:b]:
            k = next(j for j in range(a, b) if got[j] != exp[j])
            raise Fail("%s: byte at %d (0x%x) reads %s, expected %s" %
                       (what, k, k, bytes(got[k:k + 8]).hex(),
                        bytes(exp[k:k + 8]).hex()))


def complement(size, *excl):
    r = Ranges([(0, size)])
    for e in excl:
        for a, b in e:
            r.remove(a, b)
    return list(r)


# ---------------------------------------------------------------- workload

def make_workload(args, size, cluster, sub, ext):
    rng = random.Random(args.seed)
    max_len = args.max_len or min(3 * cluster, 256 << 10)
    gen = workload.Gen(rng, size, cluster, sub, ext, [(0, size)], max_len,
                       args.big_len or min(8 * cluster, 512 << 10), 0, 2)
    ops = []
    next_flush = rng.randint(3, 8)
    for i in range(args.ops):
        if i == next_flush:
            ops.append(("flush",))
            next_flush = i + rng.randint(3, 9)
            continue
        r = rng.random()
        if r < 0.12:
            off, ln = gen.big()
            ops.append(("write", off, ln, workload.make_data(rng, ln), False))
            continue
        off, ln = gen.range(0)
        if r < 0.55:
            ops.append(("write", off, ln, workload.make_data(rng, ln),
                        rng.random() < 0.12))
        elif r < 0.65:
            ops.append(("zero", off, ln, True, rng.random() < 0.1))
        elif r < 0.75:
            ops.append(("zero", off, ln, False, rng.random() < 0.1))
        elif r < 0.85:
            ops.append(("trim", off, ln, rng.random() < 0.1))
        else:
            ops.append(("read", off, ln))
    return ops


def op_desc(i, op):
    if op[0] == "flush":
        return "op %d flush" % i
    fua = ""
    if op[0] == "write" and op[4] or op[0] == "zero" and op[4] or \
            op[0] == "trim" and op[3]:
        fua = " FUA"
    extra = ""
    if op[0] == "zero":
        extra = " NO_HOLE" if op[3] else " MAY_TRIM"
    return "op %d %s [0x%x, 0x%x)%s%s" % (i, op[0], op[1], op[1] + op[2],
                                          extra, fua)


def is_fua(op):
    return (op[0] == "write" and op[4]) or (op[0] == "zero" and op[4]) or \
        (op[0] == "trim" and op[3])


def do_op(h, op):
    k = op[0]
    if k == "flush":
        h.flush()
    elif k == "write":
        h.pwrite(op[3], op[1], nbd.CMD_FLAG_FUA if op[4] else 0)
    elif k == "zero":
        fl = (nbd.CMD_FLAG_NO_HOLE if op[3] else 0) | \
            (nbd.CMD_FLAG_FUA if op[4] else 0)
        h.zero(op[2], op[1], fl)
    elif k == "trim":
        h.trim(op[2], op[1], nbd.CMD_FLAG_FUA if op[3] else 0)
    elif k == "read":
        return h.pread(op[2], op[1])


# ---------------------------------------------------------------- one run

def one_run(args, tmpl, start, ops, opname, nth, ename, mode, idx):
    d = os.path.join(args.dir, "run%d" % idx)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    img = os.path.join(d, "disk.qcow2")
    shutil.copyfile(tmpl, img)
    persistent = mode == "persistent"
    spec = "%s:%d:%s%s" % (opname, nth, ename, ":persistent"
                           if persistent else "")
    # A failed sync is never retried into success (the plugin's syncs
    # keep failing after one, as QEMU's do): a one-shot sync fault lasts
    # like a persistent one, until the restart.
    lasting = persistent or opname == "sync"
    want = WIRE[ename]
    size = len(start)
    model = bytearray(start)
    durable = bytearray(start)
    unknown = Ranges()
    srv = Server(args, img, d, "inject", spec)
    st = dict(first=None, expect=False, may=False, reported_by=None,
              nfail=0, last_ok=True, kill=False, dirty=Ranges())

    def step(h, i, op):
        desc = op_desc(i, op)
        k = op[0]
        try:
            got = do_op(h, op)
            err = None
        except nbd.Error as e:
            err = e
        if err is not None and (h.aio_is_dead() or h.aio_is_closed()
                                or srv.p.poll() is not None):
            raise Fail("%s: connection lost after the error (%s); server %s"
                       % (desc, err, "died (exit %s)" % srv.p.returncode
                          if srv.p.poll() is not None else "alive"))
        first = st["first"]
        if err is not None:
            st["nfail"] += 1
            st["last_ok"] = False
            if k == "read":
                raise Fail("%s failed (%s): reads must not fail" %
                           (desc, err))
            if first is None:
                st["first"] = (i, desc)
                if err.errnum != want:
                    raise Fail("%s failed with errno %s, expected %s "
                               "(injected %s)" %
                               (desc, err.errnum, want, ename))
                if k == "flush":
                    st["reported_by"] = (i, desc)
                elif is_fua(op):
                    st["may"] = True
                    st["reported_by"] = (i, desc)
                else:
                    st["expect"] = True
            elif (k == "flush" or is_fua(op)) and (st["expect"] or
                                                   st["may"]):
                # the next flush (or a FUA request's flush) reports it
                if err.errnum != want:
                    raise Fail("%s reported errno %s for the earlier "
                               "failure, expected %s" %
                               (desc, err.errnum, want))
                st["expect"] = st["may"] = False
                st["reported_by"] = (i, desc)
            elif not lasting:
                raise Fail("%s failed (%s) after the one-shot fault at %s "
                           "had already been reported: the server did not "
                           "recover" % (desc, err, first[1]))
            if k != "flush":
                unknown.add(op[1], op[1] + op[2])
                st["dirty"].add(op[1], op[1] + op[2])
            if st["reported_by"] and st["reported_by"][0] == i and \
                    mode == "kill" and \
                    (k == "flush" or st["first"][0] != i):
                st["kill"] = True
            return
        st["last_ok"] = True
        if k == "flush":
            if st["expect"]:
                raise Fail("%s succeeded although %s failed since the "
                           "previous flush: the flush pretends success"
                           % (desc, first[1]))
            st["may"] = False
            for a, b in st["dirty"]:
                durable[a:b] = model[a:b]
            st["dirty"] = Ranges()
        elif k == "read":
            a, b = op[1], op[1] + op[2]
            rel = [(max(0, x - a), min(b - a, y - a)) for x, y in
                   complement(size, unknown) if x < b and a < y]
            first_diff(got, model[a:b], rel, desc)
        else:
            a, b = op[1], op[1] + op[2]
            model[a:b] = op[3] if k == "write" else bytes(b - a)
            unknown.remove(a, b)
            if is_fua(op):
                durable[a:b] = model[a:b]
                st["dirty"].remove(a, b)
            else:
                st["dirty"].add(a, b)

    try:
        hs = connect(srv.uri, 2)
        i = 0
        for op in ops:
            step(hs[i % 2], i, op)
            i += 1
            if st["kill"]:
                break
        if mode == "continue" and not lasting:
            # flush until the error is reported and a flush succeeds
            step(hs[i % 2], i, ("flush",))
            i += 1
            for _ in range(2):
                if st["last_ok"] and not st["expect"]:
                    break
                step(hs[i % 2], i, ("flush",))
                i += 1
            if not st["last_ok"]:
                raise Fail("the final flushes keep failing: the server did "
                           "not recover from a one-shot fault")
        first, reported_by, nfail = st["first"], st["reported_by"], \
            st["nfail"]
        dirty = st["dirty"]
        if first is None:
            log = srv.text()
            if "(injected)" in log:
                raise Fail("no request failed, but the server log shows an "
                           "injected failure (swallowed?):\n" + log)
        # whole-disk read through the live server
        got = bytearray()
        for off in range(0, size, 1 << 20):
            got += hs[0].pread(min(1 << 20, size - off), off)
        first_diff(got, model, complement(size, unknown),
                   "live read-back after the workload")
        for h in hs:
            h.shutdown()
    except Fail:
        srv.kill()
        raise
    except nbd.Error as e:
        srv.kill()
        raise Fail("unexpected libnbd error: %s" % e)
    log = srv.text()
    hit = re.findall(r"((?:write|sync|truncate) [^:]+): [^:]*\(injected\)",
                     log)
    if mode == "kill":
        srv.kill()
        how = "SIGKILL"
    else:
        rc = srv.stop()
        how = "SIGTERM exit %d" % rc
        if rc != 0 and not lasting:
            raise Fail("server exit status %d after a clean shutdown:\n%s"
                       % (rc, srv.text()))
    # consistency
    rc, out = run(["qemu-img", "check", img], ok=(0, 1, 2, 3))
    if rc not in (0, 3):
        raise Fail("qemu-img check exit %d: the image is corrupt (server "
                   "log: %s)\n%s" % (rc, log.strip().replace("\n", " / "),
                                      excerpt(out)))
    leaks = "leaked" in out
    raw = os.path.join(d, "after.raw")
    run(["qemu-img", "convert", "-O", "raw", img, raw])
    with open(raw, "rb") as f:
        after = f.read()
    if mode == "continue" and not lasting:
        first_diff(after, model, complement(size, unknown),
                   "qemu-img convert after the clean shutdown")
    else:
        first_diff(after, durable, complement(size, unknown, dirty),
                   "after %s: data acknowledged by a successful flush or "
                   "FUA" % how)
    if mode == "continue":
        # reopen without the fault
        srv = Server(args, img, d, "reopen")
        try:
            h = connect(srv.uri, 1)[0]
            got = bytearray()
            for off in range(0, size, 1 << 20):
                got += h.pread(min(1 << 20, size - off), off)
            first_diff(got, after, [(0, size)],
                       "reopened image vs qemu-img convert")
            h.pwrite(b"\x5a" * 1000, size // 3)
            h.flush()
            h.shutdown()
        except nbd.Error as e:
            srv.kill()
            raise Fail("reopened image: %s" % e)
        except Fail:
            srv.kill()
            raise
        rc2 = srv.stop()
        if rc2 != 0:
            raise Fail("reopened server exit status %d" % rc2)
        rc3, out3 = run(["qemu-img", "check", img], ok=(0, 1, 2, 3))
        if rc3 not in (0, 3):
            raise Fail("qemu-img check exit %d after reopening and writing"
                       "\n%s" % (rc3, excerpt(out3)))
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    if first is None:
        res = "no request failed (not reached%s)" % (
            ", hit at shutdown: %s" % hit[0] if hit else "")
    else:
        res = "%s failed" % first[1]
        if reported_by is not None and reported_by[0] != first[0]:
            res += ", %s reported it" % reported_by[1]
        if nfail > 1 and lasting:
            res += ", %d failures in all" % nfail
    res += " [%s]" % (", ".join(sorted(set(hit))) or "-")
    res += "; %s; check %s" % (how, "leaks" if leaks else "clean")
    return first is not None, hit, res


# ---------------------------------------------------------------- sweep

_ctx = None


def _init_worker(ctx):
    global _ctx
    _ctx = ctx


def _worker(r):
    idx, opname, nth, ename, mode, spec = r
    args, tmpl, start, ops = _ctx
    try:
        return one_run(args, tmpl, start, ops, opname, nth, ename, mode,
                       idx), None
    except Fail as e:
        return None, str(e)
    except Exception as e:      # a bug in this script: report, not hang
        import traceback
        return None, "unexpected %s: %s\n%s" % (type(e).__name__, e,
                                                 traceback.format_exc())


def report(results, runs, must):
    hits, failures, untriggered = {}, [], []
    for (idx, opname, nth, ename, mode, spec), (res, err) in \
            zip(runs, results):
        if err is not None:
            print("FAIL %-28s %-10s %s" % (spec, mode, err))
            failures.append("%s (%s): %s" % (spec, mode, err))
        else:
            triggered, hit, text = res
            for x in hit:
                hits[x] = hits.get(x, 0) + 1
            if not triggered and nth <= must.get(opname, 0):
                untriggered.append(spec)
            print("ok   %-28s %-10s %s" % (spec, mode, text))
        sys.stdout.flush()
    return hits, failures, untriggered


# ---------------------------------------------------------------- main

def parse_nths(s):
    out = []
    for part in s.split(","):
        step = 1
        if "/" in part:
            part, st = part.split("/")
            step = int(st)
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1, step))
        else:
            out.append(int(part))
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--filter")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--create", required=True)
    ap.add_argument("--size", required=True)
    ap.add_argument("--base-random", action="store_true")
    ap.add_argument("--host-prefill", type=workload.parse_size, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=80)
    ap.add_argument("--max-len", type=workload.parse_size, default=0)
    ap.add_argument("--big-len", type=workload.parse_size, default=0)
    ap.add_argument("--sweep", action="append", required=True)
    ap.add_argument("--must-trigger", action="append", default=[])
    ap.add_argument("--expect-hit", action="append", default=[])
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--plugin-arg", action="append", default=[],
                    help="extra KEY=VALUE for the server (repeatable)")
    args = ap.parse_args()
    workload.start_memory_watchdog()
    args.plugin = os.path.abspath(args.plugin)
    if args.filter:
        args.filter = os.path.abspath(args.filter)
    os.makedirs(args.dir, exist_ok=True)
    t0 = time.monotonic()

    tmpl = os.path.join(args.dir, "template.qcow2")
    opts = args.create
    if args.base_random:
        base = os.path.join(args.dir, "base.qcow2")
        braw = os.path.join(args.dir, "base.raw")
        sz = workload.parse_size(args.size)
        with open(braw, "wb") as f:
            f.write(random.Random(args.seed + 77).randbytes(sz))
        run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", braw,
             base])
        os.unlink(braw)
        opts += ",backing_file=%s,backing_fmt=qcow2" % base
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, tmpl,
         args.size])
    if args.host_prefill:
        # allocate host clusters at the end of the guest disk, so the
        # workload's first allocations are near a refcount block boundary
        sz = workload.parse_size(args.size)
        n = min(args.host_prefill, sz // 4)
        data = os.path.join(args.dir, "prefill.bin")
        with open(data, "wb") as f:
            f.write(random.Random(args.seed + 5).randbytes(n))
        run(["qemu-io", "-f", "qcow2", tmpl, "-c",
             "write -q -s %s %d %d" % (data, sz - n, n)])
        os.unlink(data)
    raw = os.path.join(args.dir, "start.raw")
    run(["qemu-img", "convert", "-O", "raw", tmpl, raw])
    with open(raw, "rb") as f:
        start = f.read()
    hd = workload.read_header(tmpl)
    cluster, ext = hd["cluster_size"], hd["extended_l2"]
    sub = cluster // 32 if ext else cluster
    ops = make_workload(args, len(start), cluster, sub, ext)
    print("errinject: %s, %d-byte disk, cluster %d, %s L2, refcount bits "
          "%d%s; workload of %d requests (seed %d)" %
          (os.path.basename(args.plugin), len(start), cluster,
           "extended" if ext else "standard", 1 << hd["refcount_order"],
           ", through the filter" if args.filter else "", len(ops),
           args.seed))
    sys.stdout.flush()

    must = {}
    for m in args.must_trigger:
        o, n = m.split(":")
        must[o] = int(n)
    runs = []
    for sw in args.sweep:
        parts = sw.split(":")
        opname, nths = parts[0], parse_nths(parts[1])
        mode = parts[2] if len(parts) > 2 else "continue"
        for nth in nths:
            ename = ERRNOS[len(runs) % len(ERRNOS)]
            spec = "%s:%d:%s%s" % (opname, nth, ename,
                                   ":persistent" if mode == "persistent"
                                   else "")
            runs.append((len(runs) + 1, opname, nth, ename, mode, spec))
    ctx = (args, tmpl, start, ops)
    jobs = int(os.environ.get("ERRINJECT_JOBS", "2"))
    if jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(
                jobs, initializer=_init_worker, initargs=(ctx,)) as pool:
            results = pool.imap(_worker, runs)
            hits, failures, untriggered = report(results, runs, must)
    else:
        _init_worker(ctx)
        hits, failures, untriggered = report(map(_worker, runs), runs, must)
    nruns = len(runs)
    print("errinject: structures hit: %s" %
          (", ".join("%s=%d" % kv for kv in sorted(hits.items())) or "none"))
    for t in args.expect_hit:
        if not any(t in x for x in hits):
            failures.append("no run's injected failure hit a %r write" % t)
    if untriggered:
        failures.append("the fault made no request fail for %s (the "
                        "workload writes more than that: swallowed?)" %
                        ", ".join(untriggered))
    print("errinject: %d runs, %d failed, %.1fs" %
          (nruns, len(failures), time.monotonic() - t0))
    if failures:
        sys.stderr.write("errinject.py: FAIL:\n  " +
                         "\n  ".join(failures) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
