#!/usr/bin/python3
"""Crash test: SIGKILL the server in the middle of a write workload, then
check that the image is consistent and that flushed data survived.

usage: crashtest.py --plugin PLUGIN --dir DIR --create OPTS --size SIZE
                    [--iterations N] [--seed S] [--ops N] [--conns N]
                    [--prefill] [--mix SPEC] [--big-len N]
                    [--server plugin|qemu-nbd] [--plugin-arg KEY=VALUE]...

Each iteration (seed S+i):
  1. qemu-img create -f qcow2 -o OPTS a fresh image (and, with --prefill,
     workload.py prefill it), its raw contents -> the model and the
     "durable" reference;
  2. start the server (nbdkit -f -U SOCK -P PIDFILE PLUGIN file=IMG: not
     captive mode) and run a random workload (workload.Runner) with
     periodic flushes over --conns connections;
  3. at a random op (seeded) SIGKILL the server, either with ops in
     flight, right after sending a flush, or after a short random delay
     while ops keep being sent; or ("inject" iterations, --inject) start
     the server with inject-error=write:N:EIO:persistent so that the Nth
     write to the file and every later one fail, as if the process had
     died right after N-1 writes: a deterministic crash point.  The
     workload stops at the first failed request, then the server is
     SIGKILLed;
  4. qemu-img check: exit 0 (clean) or 3 (leaks only) passes, anything
     else (2 = corruption) fails;
  5. qemu-img convert -O raw: every byte acknowledged before the last
     completed flush (or by a completed FUA request) must read back;
     byte ranges touched by any request sent after that flush are
     uncertain and not compared;
  6. reopen the crashed image through the server, run a short workload,
     shut down cleanly: qemu-img check must show no corruption (leaks from
     the crash may remain) and qemu-img compare must say identical.
Exit 0 if every iteration passes.  CRASH_ITERATIONS in the environment
overrides --iterations, CRASH_OLD_OR_NEW=1 turns on --old-or-new;
QCX_CRASH_SERVER=qemu-nbd runs the same checks
against qemu-nbd (to validate this harness; set QCX_WL_MIX=trim=0,fastzero=0
as QEMU's partial trims are advisory and its failed FAST_ZERO may zero part
of the range).
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockdir  # noqa: E402
import workload  # noqa: E402
from workload import Ranges, Op, ServerGone, die  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def run(cmd, ok=(0,)):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    if r.returncode not in ok:
        sys.stderr.write(out)
        die("command failed (exit %d): %s" % (r.returncode, " ".join(cmd)))
    return r.returncode, out


class Server:
    def __init__(self, kind, plugin, img, d, tag, pargs=()):
        self.sock = sockdir.socket_path(d)
        self.pidfile = os.path.join(d, "s.pid")
        for f in (self.sock, self.pidfile):
            if os.path.exists(f):
                os.unlink(f)
        self.log = open(os.path.join(d, "server-%s.log" % tag), "w")
        if kind == "plugin":
            argv = ["nbdkit", "-f", "-U", self.sock, "-P", self.pidfile]
            if os.environ.get("QCX_VERBOSE") == "1":
                argv.append("-v")
            argv += [plugin, "file=" + img] + list(pargs)
        else:   # reference server, to validate this harness
            argv = ["qemu-nbd", "-f", "qcow2", "-t", "-e", "8",
                    "--discard=unmap", "-k", self.sock,
                    "--pid-file", self.pidfile, img]
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log)
        t0 = time.monotonic()
        while not (os.path.exists(self.sock) and os.path.exists(self.pidfile)):
            if self.p.poll() is not None:
                self.log.flush()
                sys.stderr.write(open(self.log.name).read())
                die("server exited at start-up (exit %d)" % self.p.returncode)
            if time.monotonic() - t0 > 30:
                die("server did not start")
            time.sleep(0.02)
        self.uri = "nbd+unix:///?socket=" + self.sock

    def kill(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait()

    def stop(self):
        """Clean shutdown (SIGTERM), like nbdkit at the end of --run."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            die("server did not exit within 60 s of SIGTERM")
        self.log.close()
        return rc


class Killed(Exception):
    pass


_INV = bytes((b ^ 0xFF) for b in range(256))


def _lanes(x, n):
    """Big int with bit 8*k set for every nonzero byte lane k of x."""
    x |= x >> 4
    x |= x >> 2
    x |= x >> 1
    return x & int.from_bytes(b"\x01" * n, "big")


def old_or_new(got, dur, a, history):
    """Offset (relative to a) of the first byte of got that is neither its
    durable value nor a value written by a request in history
    [(off, end, data or None for zeros, op)], or -1."""
    n = len(got)
    g = int.from_bytes(got, "big")
    bad = _lanes(g ^ int.from_bytes(dur, "big"), n)
    inv = got.translate(_INV)
    for off, end, data, _op in history:
        if not bad:
            break
        x, y = max(off, a), min(end, a + n)
        if x >= y:
            continue
        cand = bytearray(inv)
        cand[x - a:y - a] = data[x - off:y - off] if data is not None \
            else bytes(y - x)
        bad &= _lanes(g ^ int.from_bytes(cand, "big"), n)
    if not bad:
        return -1
    return n - 1 - (bad.bit_length() - 1) // 8


def iteration(args, i):
    seed = args.seed + i
    rng = random.Random(seed * 7919)
    d = os.path.join(args.dir, "it%d" % i)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    img = os.path.join(d, "disk.qcow2")
    model = os.path.join(d, "model.raw")
    durable = os.path.join(d, "durable.raw")
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", args.create, img,
         args.size])
    if args.prefill:
        run([PY, os.path.join(HERE, "workload.py"), "prefill", img,
             "--seed", str(seed), "--budget", str(args.prefill_budget),
             "--tmpdir", d])
    run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, model])
    shutil.copyfile(model, durable)

    pargs = list(args.plugin_arg)
    inject = args.server == "plugin" and rng.random() < args.inject
    if inject:
        nth = rng.randint(1, args.inject_max)
        if args.inject_nth:
            nth = args.inject_nth
        pargs.append("inject-error=write:%d:EIO:persistent" % nth)
    srv = Server(args.server, args.plugin, img, d, "crash", pargs)
    barrier = args.flush_mode == "barrier" or \
        (args.flush_mode == "mixed" and rng.random() < 0.5)
    r = workload.Runner(srv.uri, args.conns, model, depth=args.depth,
                        flush_barrier=barrier, stall_timeout=60)
    r.flush_sync = barrier
    caps = r.caps()
    if caps["read_only"]:
        srv.kill()
        die("export is read-only")
    hd = workload.read_header(img)
    cluster, ext = hd["cluster_size"], hd["extended_l2"]
    sub = cluster // 32 if ext else cluster
    mix = workload.parse_mix(args.mix)
    for k, c in (("fastzero", "fast_zero"), ("trim", "trim"), ("fua", "fua"),
                 ("zero", "zero"), ("zerotrim", "zero")):
        if not caps[c]:
            mix[k] = 0
    if not caps["flush"]:
        srv.kill()
        die("server does not advertise flush")
    gen = workload.Gen(rng, r.size, cluster, sub, ext, [(0, r.size)],
                       min(3 * cluster, 8 << 20),
                       args.big_len or 64 * cluster, 0, args.conns)
    kinds = [k for k in mix if mix[k] > 0]
    weights = [mix[k] for k in kinds]

    dfd = os.open(durable, os.O_RDWR)
    dirty = Ranges()
    st = dict(flushes=0, fua=0, phase="running")

    # Durability bookkeeping.  dirty: bytes touched by a request sent since
    # the last completed flush (they are uncertain after a crash); durable:
    # the file holding the value every other byte must have.  history:
    # (off, end, data or None for zeros, op) of requests that may still
    # change what a crash leaves (for --old-or-new).  The model (the
    # reference file) holds the effect of every completed request.
    # A flush covers the requests completed when it is sent (only one flush
    # is in flight at a time): at that moment pend records A = the dirty
    # bytes and their values, S = those not touched by a request in
    # flight, the requests then in flight, and collects T = bytes touched
    # by requests sent later.  When the flush completes, A's values become
    # the durable (old) values and S - T becomes certain; requests
    # completed before the flush was sent leave the history.
    history = []
    pend = {}
    MOD = ("write", "big", "zero", "zerotrim", "fastzero", "trim")

    def on_issue(op):
        if op.kind in MOD:
            dirty.add(op.off, op.end())
            history.append((op.off, op.end(),
                            op.data if op.kind in ("write", "big") else None,
                            op))
            if pend:
                pend["T"].add(op.off, op.end())
        elif op.kind == "flush":
            # A: all dirty bytes, with their values now (the flush makes
            # them durable unless a request in flight or sent later
            # changes them); S: those no request in flight touches
            A = dirty.copy()
            S = dirty.copy()
            inflight = [o for o in r.inflight() if o.kind in MOD]
            for o in inflight:
                S.remove(o.off, o.end())
            pend.clear()
            pend.update(A=A, S=S,
                        snap=[(a, bytes(r.model[a:b])) for a, b in A],
                        inflight=set(id(o) for o in inflight),
                        mark=len(history), T=Ranges())

    def snap_bytes(x, y):
        for a, data in pend["snap"]:
            if a <= x and y <= a + len(data):
                return data[x - a:y - a]
        raise AssertionError("snapshot does not cover [%d, %d)" % (x, y))

    def on_complete(op, applied):
        if st["phase"] != "running":
            return
        if op.kind == "flush":
            if applied:
                S, T = pend["S"], pend["T"]
                for a, b in pend["A"]:
                    os.pwrite(dfd, snap_bytes(a, b), a)
                for a, b in S:
                    dirty.remove(a, b)
                for a, b in T:
                    for x, y in S:
                        if x < b and a < y:
                            dirty.add(max(a, x), min(b, y))
                keep = [h for h in history[:pend["mark"]]
                        if id(h[3]) in pend["inflight"]]
                history[:] = keep + history[pend["mark"]:]
                st["flushes"] += 1
            pend.clear()
        elif applied and op.kind != "read" and \
                op.flags & r.nbd.CMD_FLAG_FUA:
            # overlapping requests never run concurrently: nothing sent
            # after this one touches its bytes yet
            a, b = op.off, op.end()
            os.pwrite(dfd, r.model[a:b], a)
            dirty.remove(a, b)
            if pend:
                pend["S"].remove(a, b)
                pend["A"].remove(a, b)
            st["fua"] += 1

    def on_error(op, e):
        if not inject:
            return      # a real failure: fail_op reports it
        st["error"] = "%s: %s" % (op.desc(), e)
        raise Killed()

    r.on_issue = on_issue
    r.on_complete = on_complete
    r.on_error = on_error

    kill_at = rng.randint(args.ops // 10, args.ops - 1)
    mode = rng.choice(["inflight", "inflight", "flush", "delay", "delay"])
    if inject:
        kill_at, mode = args.ops, "inject write %d" % nth
    mode += ", %s flushes" % ("barrier" if barrier else "concurrent")
    delay = rng.uniform(0.0, 0.05)
    timer = None

    def do_kill():
        if st["phase"] == "running":
            st["phase"] = "killing"
            srv.kill()
            st["phase"] = "killed"

    t0 = time.monotonic()
    nops = 0
    try:
        for n in range(args.ops):
            if n == kill_at:
                if mode == "inflight":
                    do_kill()
                    raise Killed()
                elif mode == "flush":
                    # send a flush and kill before it can complete
                    op = Op(n, "flush")
                    r.flush_sync = False
                    r.submit(op, rng.randrange(args.conns))
                    do_kill()
                    raise Killed()
                else:
                    timer = threading.Timer(delay, do_kill)
                    timer.start()
            if st["phase"] != "running":
                raise Killed()
            kind = rng.choices(kinds, weights)[0]
            conn = rng.randrange(args.conns)
            op = workload.make_op(n, kind, gen, rng, conn, caps)
            r.submit(op, conn)
            r.issue_checks()
            nops += 1
        # workload finished before the timer fired: wait for it
        if timer:
            timer.join()
            raise Killed()
        do_kill()
        raise Killed()
    except (Killed, ServerGone):
        if inject and not st.get("error"):
            st["error"] = "none: all %d ops done" % nops
        pass
    except SystemExit:
        # workload.die(): a real failure only if the server was alive
        if st["phase"] == "running":
            srv.kill()
            raise
    if timer:
        timer.cancel()
    if st["phase"] != "killed":
        do_kill()
    st["phase"] = "killed"
    dt = time.monotonic() - t0
    for c in r.conns:
        try:
            c.h.close() if hasattr(c.h, "close") else None
        except Exception:
            pass
    r.model.flush()
    os.close(dfd)
    srv.log.close()

    # 4. consistency
    rc, out = run(["qemu-img", "check", img], ok=(0, 1, 2, 3))
    if rc not in (0, 3):
        sys.stderr.write(out)
        die("iteration %d (seed %d, crash mode %s): qemu-img check exit %d "
            "after the crash (%s): the image is corrupt; image kept in %s "
            "if --keep" %
            (i, seed, mode, rc,
             {1: "check failed", 2: "corruption"}.get(rc, "?"), d))
    leaks = "leaked" in out
    # 5. durability
    out_raw = os.path.join(d, "after.raw")
    rc3, out3 = run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", img,
                     out_raw], ok=(0, 1))
    if rc3 != 0:
        sys.stderr.write(out3)
        die("iteration %d (seed %d, crash mode %s): qemu-img convert cannot "
            "read the crashed image (check exit %d)" % (i, seed, mode, rc))
    certain = Ranges([(0, r.size)])
    for a, b in dirty:
        certain.remove(a, b)
    with open(out_raw, "rb") as f1, open(durable, "rb") as f2:
        for a, b in certain:
            off = a
            while off < b:
                n = min(4 << 20, b - off)
                f1.seek(off)
                f2.seek(off)
                got, exp = f1.read(n), f2.read(n)
                if got != exp:
                    k = next(j for j in range(n) if got[j] != exp[j])
                    die("iteration %d (seed %d, crash mode %s): byte at %d "
                        "(0x%x) was durable (flushed or FUA, not touched "
                        "since) but reads %s after the crash, expected %s" %
                        (i, seed, mode, off + k, off + k,
                         got[k:k + 16].hex(), exp[k:k + 16].hex()))
                off += n
    if args.old_or_new:
        with open(out_raw, "rb") as f1, open(durable, "rb") as f2:
            for a, b in dirty:
                f1.seek(a)
                f2.seek(a)
                got, dur = f1.read(b - a), f2.read(b - a)
                k = old_or_new(got, dur, a, history)
                if k >= 0:
                    die("iteration %d (seed %d, crash mode %s): byte at %d "
                        "(0x%x), written since the last flush, reads %02x "
                        "after the crash: neither its flushed value (%02x) "
                        "nor any value written to it since (data from "
                        "elsewhere: a cluster reused before the metadata "
                        "that freed it was durable?)" %
                        (i, seed, mode, a + k, a + k, got[k], dur[k]))
    print("iteration %d (seed %d): killed (%s) after %d ops, %.2fs, %d "
          "flushes, %d FUA; check exit %d%s; %d bytes durable verified, "
          "%d uncertain%s" %
          (i, seed, mode, nops, dt, st["flushes"], st["fua"], rc,
           " (leaks)" if leaks else "", certain.total(), dirty.total(),
           "; first failure: " + st["error"] if st.get("error") else ""))
    sys.stdout.flush()

    # 6. reopen, write some more, clean shutdown
    srv = Server(args.server, args.plugin, img, d, "reopen", args.plugin_arg)
    try:
        rr = workload.Runner(srv.uri, 1, out_raw, depth=4, stall_timeout=60)
        gen2 = workload.Gen(random.Random(seed + 1000), rr.size, cluster,
                            sub, ext, [(0, rr.size)],
                            min(3 * cluster, 8 << 20), 64 * cluster, 0, 1)
        rng2 = random.Random(seed + 2000)
        rr.verify_ranges([(0, rr.size)], "reopen after crash")
        for n in range(args.reopen_ops):
            kind = rng2.choices(kinds, weights)[0]
            op = workload.make_op(n, kind, gen2, rng2, 0, caps)
            rr.submit(op, 0)
            rr.issue_checks()
        rr.drain()
        rr.conns[0].h.flush()
        rr.verify_ranges([(0, rr.size)], "after the reopen workload")
        rr.close()
    except SystemExit:
        srv.kill()
        raise
    except ServerGone as e:
        srv.kill()
        die("iteration %d: server died during the reopen workload: %s" %
            (i, e))
    src = srv.stop()
    if src != 0:
        die("iteration %d: server exit status %d after the reopen workload"
            % (i, src))
    rc2, out2 = run(["qemu-img", "check", img], ok=(0, 1, 2, 3))
    if rc2 not in (0, 3):
        sys.stderr.write(out2)
        die("iteration %d (seed %d): qemu-img check exit %d after reopening "
            "the crashed image and writing to it" % (i, seed, rc2))
    workload.compare_image(out_raw, img)
    print("iteration %d: reopen + %d ops + clean shutdown: check exit %d, "
          "identical" % (i, args.reopen_ops, rc2))
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--create", required=True)
    ap.add_argument("--size", required=True)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=800)
    ap.add_argument("--reopen-ops", type=int, default=200)
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--prefill", action="store_true")
    ap.add_argument("--prefill-budget", default="2M")
    ap.add_argument("--mix",
                    default="write=40,read=10,zero=8,zerotrim=6,fastzero=3,"
                    "trim=8,flush=4,fua=6")
    ap.add_argument("--big-len", type=workload.parse_size, default=0)
    ap.add_argument("--server", choices=["plugin", "qemu-nbd"],
                    default="plugin")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--flush-mode", choices=["barrier", "concurrent", "mixed"],
                    default="mixed",
                    help="barrier: flushes sent with nothing in flight and "
                    "waited for; concurrent: flushes among other requests "
                    "(so frees, allocations and FUA writes race with the "
                    "flush); mixed (default): chosen per iteration")
    ap.add_argument("--old-or-new", action="store_true",
                    help="also require every byte written after the last "
                    "flush to read back as its flushed value or a value "
                    "written to it since (never data from elsewhere)")
    ap.add_argument("--inject", type=float, default=0.4,
                    help="fraction of iterations that crash by injected "
                    "persistent write failure instead of SIGKILL timing")
    ap.add_argument("--inject-nth", type=int, default=0,
                    help="with --inject 1: always fail from write N on "
                    "(reproducing one crash point)")
    ap.add_argument("--inject-max", type=int, default=1500,
                    help="the failing write is chosen in 1..N")
    ap.add_argument("--plugin-arg", action="append", default=[],
                    help="extra plugin parameter (e.g. l2-cache-size=4K)")
    args = ap.parse_args()
    workload.start_memory_watchdog()
    if os.environ.get("QCX_CRASH_SERVER"):     # debugging the harness
        args.server = os.environ["QCX_CRASH_SERVER"]
    if os.environ.get("CRASH_OLD_OR_NEW") == "1":
        args.old_or_new = True
    if os.environ.get("CRASH_ITERATIONS"):
        args.iterations = int(os.environ["CRASH_ITERATIONS"])
    args.plugin = os.path.abspath(args.plugin)
    os.makedirs(args.dir, exist_ok=True)
    t0 = time.monotonic()
    for i in range(args.iterations):
        iteration(args, i)
    print("crashtest: %d iterations OK in %.1fs" %
          (args.iterations, time.monotonic() - t0))


if __name__ == "__main__":
    main()
