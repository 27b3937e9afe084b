#!/usr/bin/env bash
# Run every example of the EXAMPLES section of nbdkit-qcow2x.pod, as
# written there, and check the results against qemu-img.
#
# The page shows each command after "$ " (continued with a trailing
# backslash) and its output, if any, on the following lines of the same
# verbatim paragraph.  This test extracts them and runs them in order in
# a scratch directory, with only these substitutions:
#   - "nbdkit ... qcow2x" and "./plugin/nbdkit-qcow2x-plugin.so" become
#     the absolute path of the built plugin (it is not installed);
#   - a daemon nbdkit (no -U, no --run) gets "-p PORT" with a free port,
#     and "nbd://localhost" in later client commands becomes
#     "nbd://localhost:PORT" (10809 may be busy on the test machine).
# Checks:
#   - every command exits with status 0;
#   - output shown in the page must equal the command's stdout exactly;
#   - nbdinfo --map URI: the map equals qemu-img map --output=json of the
#     served image, translated by the rule of the EXTENTS section;
#   - nbdcopy ... FILE (client or captive --run): FILE equals
#     qemu-img convert -O raw of the served image;
#   - nbdsh ... print(h.pread(N, OFF)): prints the repr of those bytes of
#     qemu-img convert's output;
#   - the page has the examples this test is meant to cover (installed
#     and uninstalled plugin, nbdinfo --map, nbdcopy, nbdsh, layer-only).
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires nbdkit qemu-img qemu-io nbdinfo nbdcopy nbdsh
requires_python_nbd
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN"

pod=$top/nbdkit-qcow2x.pod
work=$tmpdir/work
mkdir -p "$work"

"$PY" - "$pod" "$PLUGIN" "$work" <<'PYEOF'
import json, os, re, shlex, signal, socket, subprocess, sys, time

pod, plugin, work = sys.argv[1:4]
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
    return re.sub(r'\\\n\s*', ' ', cmd)

# Coverage: the page must keep these examples.
alltext = '\n'.join(joined(c) for c, _ in examples)
for what, pat in [("installed plugin (nbdkit ... qcow2x IMAGE)", r'^nbdkit .*\bqcow2x \S+\.qcow2'),
                  ("uninstalled plugin by path", r'^nbdkit .*\./plugin/nbdkit-qcow2x-plugin\.so'),
                  ("nbdinfo --map", r'^nbdinfo --map '),
                  ("nbdcopy to raw", r'nbdcopy \S+ \S+\.raw'),
                  ("nbdsh with pread", r'^nbdsh .*h\.pread\('),
                  ("layer-only=true", r'layer-only=true')]:
    if not re.search(pat, alltext, re.M):
        fail("EXAMPLES has no example of " + what)

# ---- oracle helpers ----
def layer_json(img):
    return "json:" + json.dumps({"driver": "qcow2", "backing": None,
        "file": {"driver": "file", "filename": os.path.abspath(img)}})

def qemu_name(served):
    img, layer_only = served
    return layer_json(img) if layer_only else img

def qemu_raw(served):
    out = os.path.join(work, ".oracle.raw")
    if os.path.exists(out):
        os.unlink(out)
    subprocess.run(["qemu-img", "convert", "-O", "raw", qemu_name(served), out],
                   check=True, cwd=work)
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data

def qemu_map(served):
    img, _ = served
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", img],
                      check=True, cwd=work, capture_output=True, text=True).stdout)
    has_backing = "backing-filename" in info
    m = json.loads(subprocess.run(["qemu-img", "map", "--output=json", qemu_name(served)],
                   check=True, cwd=work, capture_output=True, text=True).stdout)
    runs = []
    for e in m:
        if e["data"]:
            t = 0
        elif not e["present"] and has_backing:
            t = 1
        elif "offset" in e:
            t = 2
        else:
            t = 3
        if runs and runs[-1][2] == t and runs[-1][0] + runs[-1][1] == e["start"]:
            runs[-1][1] += e["length"]
        else:
            runs.append([e["start"], e["length"], t])
    return [tuple(r) for r in runs]

def parse_nbdinfo_map(out):
    runs = []
    for line in out.splitlines():
        f = line.split()
        if len(f) < 3:
            raise ValueError("unexpected nbdinfo --map line: %r" % line)
        start, length, t = int(f[0]), int(f[1]), int(f[2])
        if runs and runs[-1][2] == t and runs[-1][0] + runs[-1][1] == start:
            runs[-1][1] += length
        else:
            runs.append([start, length, t])
    return [tuple(r) for r in runs]

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def served_from_nbdkit(cmd):
    """(image, layer_only) from an nbdkit command line."""
    toks = shlex.split(joined(cmd))
    i = toks.index(plugin)
    img = None
    layer_only = False
    for t in toks[i + 1:]:
        if t.startswith('-'):
            break
        if t.startswith('file='):
            img = t[5:]
        elif '=' not in t:
            img = t
        elif t in ('layer-only=true', 'layer-only=1', 'layer-only=on', 'layer-only=yes'):
            layer_only = True
    if img is None:
        raise ValueError("no image in nbdkit command: " + cmd)
    return (os.path.join(work, img), layer_only)

# ---- run ----
port = None
served = None
daemons = []            # pids we started
env = dict(os.environ)
env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin:" + env.get("PATH", "")

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

try:
    for cmd, expected in examples:
        run = cmd
        first = joined(cmd).split()[0]
        is_nbdkit = first == "nbdkit"
        daemon = False
        if is_nbdkit:
            run = re.sub(r'(?<=\s)qcow2x(?=\s)', plugin, run, count=1)
            run = run.replace("./plugin/nbdkit-qcow2x-plugin.so", plugin)
            if plugin not in run:
                fail("cannot find the plugin name in: " + cmd)
                continue
            toks = shlex.split(joined(run))
            daemon = "--run" not in toks and "-U" not in toks and "--unix" not in toks
            served = served_from_nbdkit(run)
            if daemon:
                if "-P" not in toks:
                    fail("daemon example without -P PIDFILE (cannot stop it): " + cmd)
                    continue
                pidfile = os.path.join(work, toks[toks.index("-P") + 1])
                if os.path.exists(pidfile):
                    os.unlink(pidfile)
                port = free_port()
                run = "nbdkit -p %d" % port + run[len("nbdkit"):]
        elif port is not None:
            run = re.sub(r'nbd://localhost(?![:\w])', 'nbd://localhost:%d' % port, run)

        kill_pid = None
        m = re.match(r'kill \$\(cat (\S+)\)$', joined(cmd))
        if m:
            with open(os.path.join(work, m.group(1))) as f:
                kill_pid = int(f.read().strip())

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
            end = time.time() + 10
            while not os.path.exists(pidfile) and time.time() < end:
                time.sleep(0.05)
            try:
                with open(pidfile) as f:
                    daemons.append(int(f.read().strip()))
            except (OSError, ValueError):
                fail("nbdkit did not write its pidfile: " + cmd)
        if kill_pid is not None:
            if not wait_gone(kill_pid):
                fail("server %d still running after: %s" % (kill_pid, cmd))
            port = None

        # Output shown in the page must be the real output.
        if expected:
            actual = [l.rstrip() for l in p.stdout.rstrip('\n').split('\n')]
            if actual != expected:
                fail("output of %r differs from the page:\n  page:   %r\n  actual: %r"
                     % (joined(cmd), expected, actual))

        # Independent checks against qemu-img.
        j = joined(run)
        if re.match(r'nbdinfo --map ', j):
            got = parse_nbdinfo_map(p.stdout)
            exp = qemu_map(served)
            if got != exp:
                fail("nbdinfo --map vs qemu-img map of %s:\n  qemu:   %r\n  plugin: %r"
                     % (served, exp, got))
            else:
                print("  map matches qemu-img map (%d runs)" % len(got))
        out = None
        m = re.match(r'nbdcopy \S+ (\S+)$', j)
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
                print("  %s matches qemu-img convert (%d bytes)" % (out, len(got)))
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

print("%d example commands run, %d failures" % (len(examples), len(failures)))
sys.exit(1 if failures else 0)
PYEOF
