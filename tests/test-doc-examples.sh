#!/usr/bin/env bash
# Run every example of the EXAMPLES section of nbdkit-qcow2x.pod, as
# written there, and check the results against qemu-img.
#
# The page shows each command after "$ " (continued with a trailing
# backslash) and its output, if any, on the following lines of the same
# verbatim paragraph.  This test extracts them and runs them in order in
# a scratch directory, with only these substitutions:
#   - in a command that runs nbdkit, the plugin name "qcow2x" and
#     "./plugin/nbdkit-qcow2x-plugin.so" become the absolute path of the
#     built plugin, and "--filter=qcow2xchain" (or the filter's relative
#     path) the absolute path of the built filter (neither is installed);
#   - a daemon nbdkit (no -U, no --run) gets "-p PORT" with a free port,
#     and "nbd://localhost" in later client commands becomes
#     "nbd://localhost:PORT" (10809 may be busy on the test machine).
# Checks:
#   - every command exits with status 0;
#   - output shown in the page must equal the command's stdout exactly;
#   - nbdinfo --map URI: the map equals qemu-img map --output=json of the
#     served image (of the chain, with the filter), translated by the
#     rules of the EXTENTS and "Extents of the chain" sections;
#   - nbdcopy ... FILE (client or captive --run): FILE equals
#     qemu-img convert -O raw of the served image (QEMU resolving the
#     chain with the filter, with the chain-backing= override if any);
#   - nbdsh ... print(h.pread(N, OFF)): prints the repr of those bytes of
#     qemu-img convert's output;
#   - every read-write server, once stopped (kill, or the end of --run),
#     leaves an image that qemu-img check finds clean (no errors, no
#     leaks); with the filter, the backing files are unchanged (sha256);
#   - nbdcopy -- [ nbdkit -r file SRC ] [ nbdkit qcow2x OUT create=true
#     ... ]: qemu-img compare SRC OUT is identical, OUT is clean, and
#     every data extent of OUT overlaps data of SRC (zero runs of the
#     source are not allocated as data);
#   - the page has the examples this test is meant to cover.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit qemu-img qemu-io nbdinfo nbdcopy nbdsh
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN"
FILTER=${QCX_FILTER:-$top/filter/nbdkit-qcow2xchain-filter.so}
[ -f "$FILTER" ] || fail "filter not built: $FILTER"

pod=$top/nbdkit-qcow2x.pod
work=$tmpdir/work
mkdir -p "$work"

"$PY" - "$pod" "$PLUGIN" "$FILTER" "$work" <<'PYEOF'
import hashlib, json, os, re, shlex, signal, socket, struct, subprocess, sys, time

pod, plugin, filt, work = sys.argv[1:5]
failures = []

def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    failures.append(msg)

# ---- extract the examples ----
text = open(pod).read()
m = re.search(r'^=head1 EXAMPLES\n(.*?)(?=^=head1 )', text, re.M | re.S)
if not m:
    sys.exit("no EXAMPLES section in " + pod)
examples = []           # [command, [expected output lines]]
for para in re.split(r'\n[ \t]*\n', m.group(1)):
    lines = para.split('\n')
    if not lines or not lines[0].startswith((' ', '\t')):
        continue        # not a verbatim paragraph
    cur = None
    cont = False
    for line in lines:
        if not line.strip():
            continue
        if cont:
            cur[0] += '\n' + line
        elif line.startswith(' $ '):
            cur = [line[3:], []]
            examples.append(cur)
        elif cur is not None:
            cur[1].append(line[1:].rstrip())
        else:
            sys.exit("verbatim line before any command in EXAMPLES: %r" % line)
        cont = line.endswith('\\')
if not examples:
    sys.exit("no '$ ' commands found in EXAMPLES")

def joined(cmd):
    # Backslash-newline joins lines as the shell does; the whitespace
    # around it separates words and is collapsed to one space.
    return re.sub(r'([ \t]*)\\\n([ \t]*)',
                  lambda m: ' ' if m.group(1) or m.group(2) else '', cmd)

# Coverage: the page must keep these examples.
alltext = '\n'.join(joined(c) for c, _ in examples)
for what, pat in [("installed plugin (nbdkit ... qcow2x IMAGE)", r'^nbdkit .*\bqcow2x \S+\.qcow2'),
                  ("uninstalled plugin by path", r'^nbdkit .*\./plugin/nbdkit-qcow2x-plugin\.so'),
                  ("nbdinfo --map", r'^nbdinfo --map '),
                  ("nbdcopy to raw", r'nbdcopy \S+ \S+\.raw'),
                  ("nbdsh with pread", r'^nbdsh .*h\.pread\('),
                  ("nbdsh with pwrite", r'^nbdsh .*h\.pwrite\('),
                  ("layer-only=true", r'layer-only=true'),
                  ("nbdcopy from a raw file into a new image",
                   r'^nbdcopy -- \[ nbdkit -r file \S+ \] \[ nbdkit qcow2x \S+ create=true size=\S+ \]'),
                  ("the filter serving a chain", r'^nbdkit .*--filter=qcow2xchain qcow2x \S+\.qcow2'),
                  ("chain-backing=", r'chain-backing='),
                  ("preallocation with discard=keep-mapping",
                   r'preallocation=metadata.*discard=keep-mapping'),
                  ("qemu-img check", r'^qemu-img check ')]:
    if not re.search(pat, alltext, re.M):
        fail("EXAMPLES has no example of " + what)

env = dict(os.environ)
# QCX_PATH_PREFIX (sanitizer runs) puts a wrapping nbdkit first.
env["PATH"] = ((os.environ.get("QCX_PATH_PREFIX") + ":")
               if os.environ.get("QCX_PATH_PREFIX") else "") + \
    "/usr/bin:/bin:/usr/sbin:/sbin:" + env.get("PATH", "")

def sh(args, **kw):
    return subprocess.run(args, cwd=work, env=env, **kw)

# ---- what a server serves ----
class Served:
    """img: absolute path of the top image; mode: 'plugin', 'layer' or
    'chain'; override/override_fmt: chain-backing= and its format;
    readonly: nbdkit -r."""
    def __init__(self, img, mode, override=None, override_fmt=None,
                 readonly=False, backing=None):
        self.img, self.mode = img, mode
        self.override, self.override_fmt = override, override_fmt
        self.readonly = readonly
        self.backing = backing          # backing= of create=true
        self.hashes = {}

    def __repr__(self):
        return "%s(%s%s)" % (os.path.basename(self.img), self.mode,
                             ", chain-backing=" + self.override if self.override else "")

def is_qcow2(path):
    with open(path, "rb") as f:
        return f.read(4) == b"QFI\xfb"

def qcow2_backing(path):
    """(backing name, format or None) from a qcow2 header, or (None, None)."""
    with open(path, "rb") as f:
        h = f.read(65536)
    version = struct.unpack(">I", h[4:8])[0]
    boff, blen = struct.unpack(">QI", h[8:20])
    name = h[boff:boff + blen].decode() if boff else None
    fmt = None
    off = 72 if version == 2 else struct.unpack(">I", h[100:104])[0]
    while off + 8 <= len(h):
        t, l = struct.unpack(">II", h[off:off + 8])
        if t == 0:
            break
        if t == 0xE2792ACA:
            fmt = h[off + 8:off + 8 + l].decode()
        off += 8 + (l + 7) // 8 * 8
    return name, fmt

def chain_layers(served):
    """[(path, 'qcow2'|'raw')] of the backing layers, top excluded."""
    if served.override:
        name, fmt, ref = served.override, served.override_fmt, None
    elif os.path.exists(served.img):
        name, fmt = qcow2_backing(served.img)
        ref = served.img
    elif served.backing:
        name, fmt, ref = served.backing, None, served.img
    else:
        return []
    layers = []
    while name:
        path = name if name.startswith("/") or ref is None \
            else os.path.join(os.path.dirname(ref), name)
        path = os.path.join(work, path)
        kind = fmt or ("qcow2" if is_qcow2(path) else "raw")
        layers.append((path, kind))
        if kind != "qcow2" or len(layers) > 64:
            break
        ref = path
        name, fmt = qcow2_backing(path)
    return layers

def qemu_name(served):
    if served.mode == "layer":
        return "json:" + json.dumps({"driver": "qcow2", "backing": None,
            "file": {"driver": "file", "filename": served.img}})
    if served.mode == "chain" and served.override:
        path, kind = chain_layers(served)[0]
        return "json:" + json.dumps({"driver": "qcow2",
            "file": {"driver": "file", "filename": served.img},
            "backing": {"driver": kind, "file": {"driver": "file", "filename": path}}})
    return served.img

def qemu_raw(served):
    out = os.path.join(work, ".oracle.raw")
    if os.path.exists(out):
        os.unlink(out)
    sh(["qemu-img", "convert", "-O", "raw", qemu_name(served), out], check=True)
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data

def coalesce(entries):
    runs = []
    for s, l, t in entries:
        if runs and runs[-1][2] == t and runs[-1][0] + runs[-1][1] == s:
            runs[-1][1] += l
        else:
            runs.append([s, l, t])
    return [tuple(r) for r in runs]

def qemu_map(served):
    m = json.loads(sh(["qemu-img", "map", "--output=json", qemu_name(served)],
                      check=True, capture_output=True, text=True).stdout)
    has_backing = qcow2_backing(served.img)[0] is not None
    kinds = ["qcow2"] + [k for _, k in chain_layers(served)]
    entries = []
    for e in m:
        if e["data"]:
            t = 0
        elif served.mode == "chain":
            # "Extents of the chain": zero where the top image keeps a
            # host cluster is ZERO; everything else that is not data,
            # including zeros of lower layers, is HOLE|ZERO.
            d = e.get("depth", 0)
            t = 2 if "offset" in e and d == 0 else 3
        elif not e["present"] and has_backing:
            t = 1
        elif "offset" in e:
            t = 2
        else:
            t = 3
        entries.append((e["start"], e["length"], t))
    return coalesce(entries)

def parse_nbdinfo_map(out):
    entries = []
    for line in out.splitlines():
        f = line.split()
        if len(f) < 3:
            raise ValueError("unexpected nbdinfo --map line: %r" % line)
        entries.append((int(f[0]), int(f[1]), int(f[2])))
    return coalesce(entries)

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def served_from_nbdkit(toks):
    """What an nbdkit command line (tokens, paths substituted) serves."""
    i = toks.index(plugin)
    img = None
    params = {}
    for t in toks[i + 1:]:
        if t.startswith('-'):
            break
        if t.startswith('file='):
            img = t[5:]
        elif '=' not in t:
            img = t
        else:
            k, v = t.split('=', 1)
            params[k] = v
    if img is None:
        raise ValueError("no image in nbdkit command: %r" % toks)
    filtered = any(t == "--filter=" + filt or t == filt for t in toks[:i])
    truthy = ('true', '1', 'on', 'yes')
    if filtered:
        mode = "chain"
    elif params.get("layer-only") in truthy:
        mode = "layer"
    else:
        mode = "plugin"
    readonly = "-r" in toks[:i] or "--readonly" in toks[:i]
    return Served(os.path.join(work, img), mode,
                  params.get("chain-backing"), params.get("chain-backing-format"),
                  readonly, params.get("backing") if params.get("create") in truthy else None)

def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()

def before_serving(served):
    if served.mode == "chain":
        for path, _ in chain_layers(served):
            served.hashes[path] = sha256(path)

def after_serving(served, what):
    """The server has stopped: the image it wrote must be clean."""
    if not served.readonly:
        p = sh(["qemu-img", "check", served.img], capture_output=True, text=True)
        if p.returncode != 0:
            fail("qemu-img check of %s after %s:\n%s%s"
                 % (served, what, p.stdout, p.stderr))
        else:
            print("  qemu-img check of %s clean" % os.path.basename(served.img))
    for path, h in served.hashes.items():
        if sha256(path) != h:
            fail("backing file %s changed while serving %s" % (path, served))
        else:
            print("  backing file %s unchanged" % os.path.basename(path))

def substitute(cmd):
    """Plugin and filter names -> built paths, in commands that run nbdkit."""
    if not re.search(r'\bnbdkit\b', cmd):
        return cmd
    cmd = cmd.replace("./plugin/nbdkit-qcow2x-plugin.so", plugin)
    cmd = cmd.replace("./filter/nbdkit-qcow2xchain-filter.so", filt)
    cmd = re.sub(r'--filter=qcow2xchain(?=\s)', '--filter=' + filt, cmd)
    cmd = re.sub(r'(?<=\s)qcow2x(?=\s)', plugin, cmd)
    return cmd

def check_nbdcopy_create(j):
    m = re.match(r'nbdcopy -- \[ nbdkit -r file (\S+) \] \[ nbdkit \S+ (\S+) create=true .*\]$', j)
    if not m:
        return
    src, out = (os.path.join(work, x) for x in m.groups())
    p = sh(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, out],
           capture_output=True, text=True)
    if p.returncode != 0:
        fail("qemu-img compare %s %s: %s%s" % (src, out, p.stdout, p.stderr))
    else:
        print("  qemu-img compare: identical")
    after_serving(Served(out, "plugin"), "nbdcopy")
    src_map = json.loads(sh(["qemu-img", "map", "--output=json", "-f", "raw", src],
                            check=True, capture_output=True, text=True).stdout)
    out_map = json.loads(sh(["qemu-img", "map", "--output=json", out],
                            check=True, capture_output=True, text=True).stdout)
    src_data = [(e["start"], e["start"] + e["length"]) for e in src_map if e["data"]]
    n = 0
    for e in out_map:
        if not e["data"]:
            continue
        n += 1
        s, t = e["start"], e["start"] + e["length"]
        if not any(a < t and s < b for a, b in src_data):
            fail("%s: data allocated at [%d, %d), where %s has no data"
                 % (out, s, t, src))
    if n == 0:
        fail("%s has no data at all" % out)
    print("  %s is sparse where %s is" % (os.path.basename(out), os.path.basename(src)))

# ---- run ----
port = None
served = None
daemons = {}            # pid -> Served, servers we started

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False

def wait_gone(pid, secs=10):
    end = time.time() + secs
    while alive(pid) and time.time() < end:
        time.sleep(0.05)
    return not alive(pid)

def read_pidfile(pidfile, secs=10):
    """nbdkit creates the file, then writes the pid: wait for both."""
    end = time.time() + secs
    while time.time() < end:
        try:
            with open(pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            time.sleep(0.05)
    return None

try:
    for cmd, expected in examples:
        run = substitute(cmd)
        words = joined(cmd).split()
        is_nbdkit = words[0] == "nbdkit"
        daemon = False
        captive = None
        if is_nbdkit:
            if plugin not in run:
                fail("cannot find the plugin name in: " + cmd)
                continue
            toks = shlex.split(joined(run))
            daemon = "--run" not in toks and "-U" not in toks and "--unix" not in toks
            served = served_from_nbdkit(toks)
            before_serving(served)
            if daemon:
                if "-P" not in toks:
                    fail("daemon example without -P PIDFILE (cannot stop it): " + cmd)
                    continue
                pidfile = os.path.join(work, toks[toks.index("-P") + 1])
                if os.path.exists(pidfile):
                    os.unlink(pidfile)
                port = free_port()
                run = "nbdkit -p %d" % port + run[len("nbdkit"):]
            else:
                captive = served
        elif port is not None:
            run = re.sub(r'nbd://localhost(?![:\w])', 'nbd://localhost:%d' % port, run)

        kill_pid = None
        m = re.match(r'kill \$\(cat (\S+)\)$', joined(cmd))
        if m:
            kill_pid = read_pidfile(os.path.join(work, m.group(1)), 1)

        print("+ " + run, flush=True)
        p = subprocess.run(["bash", "-c", run], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, errors="replace", timeout=120)
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        if p.returncode != 0:
            fail("exit status %d: %s" % (p.returncode, cmd))
            continue

        if daemon:
            pid = read_pidfile(pidfile)
            if pid is None:
                fail("nbdkit did not write its pidfile: " + cmd)
            else:
                daemons[pid] = served
        if kill_pid is not None:
            if not wait_gone(kill_pid):
                fail("server %d still running after: %s" % (kill_pid, cmd))
            elif kill_pid in daemons:
                after_serving(daemons.pop(kill_pid), cmd)
            port = None
        if captive is not None:
            after_serving(captive, cmd)

        # Output shown in the page must be the real output.
        if expected:
            actual = [l.rstrip() for l in p.stdout.rstrip('\n').split('\n')]
            if actual != expected:
                fail("output of %r differs from the page:\n  page:   %r\n  actual: %r"
                     % (joined(cmd), expected, actual))

        # Independent checks against qemu-img.
        j = joined(run)
        check_nbdcopy_create(joined(cmd))
        if re.match(r'nbdinfo --map ', j):
            got = parse_nbdinfo_map(p.stdout)
            exp = qemu_map(served)
            if got != exp:
                fail("nbdinfo --map vs qemu-img map of %s:\n  qemu:   %r\n  served: %r"
                     % (served, exp, got))
            else:
                print("  map matches qemu-img map of %s (%d runs)" % (served, len(got)))
        out = None
        m = re.match(r'nbdcopy (?!--)\S+ (\S+)$', j)
        if m:
            out = m.group(1)
        m = re.search(r'--run .*nbdcopy "\$uri" (\S+?)\'?$', j)
        if is_nbdkit and m:
            out = m.group(1)
        if out:
            with open(os.path.join(work, out), "rb") as f:
                got = f.read()
            if got != qemu_raw(served):
                fail("%s differs from qemu-img convert of %s" % (out, served))
            else:
                print("  %s matches qemu-img convert of %s (%d bytes)"
                      % (out, served, len(got)))
        m = re.search(r'nbdsh .*print\(h\.pread\((\d+), (\d+)\)\)', j)
        if m:
            n, off = int(m.group(1)), int(m.group(2))
            raw = qemu_raw(served)[off:off + n]
            # libnbd < 1.16 returns a bytearray, later versions bytes.
            want = repr(bytearray(raw))
            if p.stdout.rstrip('\n') not in (want, repr(raw)):
                fail("nbdsh pread(%d, %d): got %r, qemu-img convert has %r"
                     % (n, off, p.stdout, want))
            else:
                print("  pread matches qemu-img convert")
finally:
    for pid in daemons:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid, 5)
    if daemons:
        fail("servers left running at the end of the examples: %r" % daemons)

print("%d example commands run, %d failures" % (len(examples), len(failures)))
sys.exit(1 if failures else 0)
PYEOF
