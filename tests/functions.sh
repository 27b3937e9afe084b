# qcow2x test harness: common functions, sourced by every tests/test-*.sh.
#
# Usage, at the top of a test:
#
#   #!/usr/bin/env bash
#   . "$(dirname "$0")/functions.sh"
#   set -euo pipefail
#   requires qemu-img qemu-io nbdcopy
#
# Defines:
#   $srcdir   absolute path of the tests/ directory
#   $top      absolute path of the repository root
#   $PLUGIN   absolute path of the plugin (override with $QCX_PLUGIN)
#   $tmpdir   a fresh per-test scratch directory under tests/tmp/, removed
#             on exit (set QCX_KEEP_TMP=1 to keep it for debugging)
#   $PY       /usr/bin/python3 (the only python with the nbd module)
#
# Functions (all work under set -euo pipefail):
#   requires CMD...            exit 77 if a command is missing.  If any
#                              argument starts with "-" the whole argument
#                              list is run as one command line instead
#                              (nbdkit style: requires nbdkit --version).
#   requires_python_nbd        exit 77 if /usr/bin/python3 cannot import nbd.
#   cleanup_fn CMD [ARGS...]   register a command to run on exit.
#   fail MSG...                print MSG to stderr and exit 1.
#   qcx_nbdkit ARGS...         nbdkit -U - -r $PLUGIN ARGS...  (captive mode
#                              when ARGS contain --run 'CMD'; $uri is the
#                              NBD URI inside CMD).  QCX_VERBOSE=1 adds -v.
#   qcx_nbdkit_rw ARGS...      same without -r.
#   qcx_layer_json IMG         print the json: filename that opens IMG's own
#                              layer with backing:null (QEMU's view of a
#                              layer alone).
#   qcx_qemu_raw IMG OUT [layer-only]
#                              qemu-img convert -O raw (the oracle).  With a
#                              third argument "layer-only", IMG's layer alone.
#   qcx_convert IMG OUT [PLUGIN ARGS...]
#                              serve IMG through the plugin and nbdcopy the
#                              export to the raw file OUT.  Extra nbdcopy
#                              flags in $QCX_NBDCOPY_FLAGS (e.g. --no-extents).
#   qcx_compare_with_qemu IMG [PLUGIN ARGS...]
#                              the plugin's bytes must equal qemu-img
#                              convert's (layer alone when the args contain
#                              layer-only=true).  Copies twice: once with
#                              nbdcopy using block status, once with
#                              --no-extents (every byte through pread).
#   qcx_compare_extents IMG [PLUGIN ARGS...]
#                              block status of the export vs qemu-img map
#                              (tests/lib/compare-extents.py).  With
#                              QCX_EXTENTS_REQUIRE=1,2 (flag values), those
#                              flags must occur in qemu-img map's view.
#   qcx_random_reads IMG [PLUGIN ARGS...]
#                              random unaligned preads vs qemu-img convert
#                              ($QCX_SEED, $QCX_READS, $QCX_MAX_READ tune it).
#   qcx_fill_stale IMG [--min-bytes N]
#                              overwrite host bytes reserved for the image
#                              but holding no guest data with 0xA5
#                              (tests/lib/fill-stale.py).
#   qcx_gen_data SEED SIZE OUT [MODE]
#                              deterministic test data (tests/lib/gen-data.py).
#   qcx_layout IMG KEY         print one counter from tests/lib/qcow2-layout.py
#                              (independent parse of IMG's L1/L2 tables).
#   qcx_expect_layout IMG KEY OP N
#                              fail unless (counter KEY) OP N, e.g.
#                              qcx_expect_layout img compressed -ge 10.
#   _qcx_cmp EXP ACT WHAT, _qcx_next/$_qcx_seq, _qcx_check_plugin: helpers
#                              also used by tests/lib/chainlib.sh (keep).
#
# Environment: QCX_PLUGIN (another plugin; a non-.so path is run as an
# nbdkit sh-plugin script, used to test the tests), QCX_VERBOSE=1,
# QCX_KEEP_TMP=1, QCX_SEED/QCX_READS/QCX_MAX_READ/QCX_READ_HINTS
# (random reads), QCX_EXTENTS_REQUIRE (compare-extents --require).

export PATH=${QCX_PATH_PREFIX:+$QCX_PATH_PREFIX:}/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LANG=C LC_ALL=C

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$srcdir/.." && pwd)
PLUGIN=${QCX_PLUGIN:-$top/plugin/nbdkit-qcow2x-plugin.so}
PY=/usr/bin/python3
qcx_lib=$srcdir/lib
qcx_test_name=$(basename "$0" .sh)

# ---- cleanup hooks (as in nbdkit's tests/functions.sh) ----
_qcx_cleanup_hooks=()

cleanup_fn ()
{
    local cmd
    printf -v cmd '%q ' "$@"
    _qcx_cleanup_hooks+=("$cmd")
}

_qcx_run_cleanup_hooks ()
{
    local _status=$? _i
    set +e
    trap '' INT QUIT TERM EXIT ERR
    for (( _i = ${#_qcx_cleanup_hooks[@]} - 1; _i >= 0; --_i )); do
        eval "${_qcx_cleanup_hooks[_i]}"
    done
    if [ "$_status" -ne 0 ]; then
        echo "$0: exit status $_status" >&2
    fi
    exit "$_status"
}
trap _qcx_run_cleanup_hooks INT QUIT TERM EXIT

fail ()
{
    echo "$0: FAIL: $*" >&2
    exit 1
}

requires ()
{
    local a dashed=0
    for a in "$@"; do
        case "$a" in -*) dashed=1 ;; esac
    done
    if [ "$dashed" -eq 1 ]; then
        if ! ( "$@" ) </dev/null >/dev/null 2>&1; then
            echo "$0: SKIP: required command failed: $*" >&2
            exit 77
        fi
    else
        for a in "$@"; do
            if ! command -v "$a" >/dev/null 2>&1; then
                echo "$0: SKIP: required command missing: $a" >&2
                exit 77
            fi
        done
    fi
}

requires_python_nbd ()
{
    if ! "$PY" -c 'import nbd' >/dev/null 2>&1; then
        echo "$0: SKIP: $PY cannot import nbd (install python3-libnbd)" >&2
        exit 77
    fi
}

# ---- per-test scratch directory ----
mkdir -p "$srcdir/tmp"
tmpdir=$(mktemp -d "$srcdir/tmp/$qcx_test_name.XXXXXX")
if [ "${QCX_KEEP_TMP:-0}" = 1 ]; then
    echo "$0: keeping scratch directory $tmpdir" >&2
else
    cleanup_fn rm -rf "$tmpdir"
fi
_qcx_seq=0
_qcx_next () { _qcx_seq=$((_qcx_seq + 1)); }

# ---- nbdkit ----
_qcx_check_plugin ()
{
    if [ ! -f "$PLUGIN" ]; then
        fail "plugin not built: $PLUGIN (run make -C $top)"
    fi
}

# $PLUGIN is normally the .so; a shell-script plugin (e.g. a fake used to
# test the tests) is run through nbdkit's sh plugin.
_qcx_plugin_argv ()
{
    case "$PLUGIN" in
        *.so) _qcx_pargv=("$PLUGIN") ;;
        *)    _qcx_pargv=(sh "$PLUGIN") ;;
    esac
}

qcx_nbdkit ()
{
    _qcx_check_plugin
    local v=() _qcx_pargv
    _qcx_plugin_argv
    if [ "${QCX_VERBOSE:-0}" = 1 ]; then v=(-v); fi
    nbdkit "${v[@]}" -U - -r "${_qcx_pargv[@]}" "$@"
}

qcx_nbdkit_rw ()
{
    _qcx_check_plugin
    local v=() _qcx_pargv
    _qcx_plugin_argv
    if [ "${QCX_VERBOSE:-0}" = 1 ]; then v=(-v); fi
    nbdkit "${v[@]}" -U - "${_qcx_pargv[@]}" "$@"
}

# Does the argument list ask for the layer alone?
_qcx_is_layer_only ()
{
    local a
    for a in "$@"; do
        case "$a" in
            layer-only=true|layer-only=1|layer-only=yes|layer-only=on) return 0 ;;
        esac
    done
    return 1
}

qcx_layer_json ()
{
    "$PY" -c '
import json, os, sys
print("json:" + json.dumps({"driver": "qcow2", "backing": None,
      "file": {"driver": "file", "filename": os.path.abspath(sys.argv[1])}}))
' "$1"
}

qcx_qemu_raw ()
{
    local img=$1 out=$2 mode=${3:-}
    rm -f "$out"
    if [ "$mode" = layer-only ]; then
        qemu-img convert -O raw "$(qcx_layer_json "$img")" "$out"
    else
        qemu-img convert -f qcow2 -O raw "$img" "$out"
    fi
}

qcx_convert ()
{
    local img=$1 out=$2
    shift 2
    rm -f "$out"
    local cmd
    printf -v cmd 'nbdcopy %s -- "$uri" %q' "${QCX_NBDCOPY_FLAGS:-}" "$out"
    qcx_nbdkit "$img" "$@" --run "$cmd" ||
        fail "qcx_convert: serving/copying $(basename "$img")${*:+ $*} failed"
    [ -f "$out" ] || fail "qcx_convert: nbdcopy produced no output for $img"
}

# _qcx_cmp EXPECTED ACTUAL WHAT: cmp with a readable report.
_qcx_cmp ()
{
    local exp=$1 act=$2 what=$3
    local es as
    es=$(stat -c %s "$exp")
    as=$(stat -c %s "$act")
    if [ "$es" != "$as" ]; then
        fail "$what: size differs: qemu $es bytes, plugin $as bytes"
    fi
    if ! cmp -s "$exp" "$act"; then
        echo "$what: bytes differ from qemu-img convert; first differences" \
             "(offset, qemu octal, plugin octal; offsets 1-based):" >&2
        cmp -l "$exp" "$act" 2>/dev/null | head -n 20 >&2 || true
        local n
        n=$(cmp -l "$exp" "$act" 2>/dev/null | wc -l || true)
        echo "$what: $n differing bytes" >&2
        fail "$what: plugin bytes differ from qemu-img convert"
    fi
}

qcx_compare_with_qemu ()
{
    local img=$1
    shift
    _qcx_next
    local exp=$tmpdir/qemu.$_qcx_seq.raw
    local act=$tmpdir/plugin.$_qcx_seq.raw
    if _qcx_is_layer_only "$@"; then
        qcx_qemu_raw "$img" "$exp" layer-only
    else
        qcx_qemu_raw "$img" "$exp"
    fi || fail "qemu-img convert of $img failed"
    QCX_NBDCOPY_FLAGS= qcx_convert "$img" "$act" "$@"
    _qcx_cmp "$exp" "$act" "$(basename "$img")${*:+ $*} (nbdcopy)"
    QCX_NBDCOPY_FLAGS=--no-extents qcx_convert "$img" "$act" "$@"
    _qcx_cmp "$exp" "$act" "$(basename "$img")${*:+ $*} (nbdcopy --no-extents)"
    rm -f "$exp" "$act"
    echo "compare_with_qemu OK: $(basename "$img")${*:+ $*}"
}

qcx_compare_extents ()
{
    local img=$1
    shift
    local lo=
    if _qcx_is_layer_only "$@"; then lo=--layer-only; fi
    local cmd
    printf -v cmd '%q %q "$uri" %q %s' "$PY" "$qcx_lib/compare-extents.py" "$img" "$lo"
    if [ -n "${QCX_EXTENTS_REQUIRE:-}" ]; then
        printf -v cmd '%s --require %q' "$cmd" "$QCX_EXTENTS_REQUIRE"
    fi
    qcx_nbdkit "$img" "$@" --run "$cmd" ||
        fail "extents of $(basename "$img")${*:+ $*} differ from qemu-img map"
    echo "compare_extents OK: $(basename "$img")${*:+ $*}"
}

qcx_random_reads ()
{
    local img=$1
    shift
    _qcx_next
    local exp=$tmpdir/qemu.$_qcx_seq.raw
    if _qcx_is_layer_only "$@"; then
        qcx_qemu_raw "$img" "$exp" layer-only
    else
        qcx_qemu_raw "$img" "$exp"
    fi
    local cmd
    printf -v cmd '%q %q "$uri" %q --seed %q --count %q --max-len %q' \
        "$PY" "$qcx_lib/random-reads.py" "$exp" \
        "${QCX_SEED:-1}" "${QCX_READS:-2000}" "${QCX_MAX_READ:-262144}"
    if [ -n "${QCX_READ_HINTS:-}" ]; then
        printf -v cmd '%s --hints %q' "$cmd" "$QCX_READ_HINTS"
    fi
    qcx_nbdkit "$img" "$@" --run "$cmd" ||
        fail "random reads of $(basename "$img")${*:+ $*} differ from qemu-img convert"
    rm -f "$exp"
    echo "random_reads OK: $(basename "$img")${*:+ $*}"
}

qcx_fill_stale ()
{
    "$PY" "$qcx_lib/fill-stale.py" "$@" || fail "fill-stale.py $* failed"
}

qcx_gen_data ()
{
    "$PY" "$qcx_lib/gen-data.py" "$@" || fail "gen-data.py $* failed"
}

qcx_layout ()
{
    "$PY" "$qcx_lib/qcow2-layout.py" "$1" --key "$2"
}

qcx_expect_layout ()
{
    local img=$1 key=$2 op=$3 n=$4 v
    v=$(qcx_layout "$img" "$key")
    if ! [ "$v" "$op" "$n" ]; then
        "$PY" "$qcx_lib/qcow2-layout.py" "$img" >&2 || true
        fail "$(basename "$img"): layout check failed: $key = $v, expected $op $n" \
             "(the image does not exercise the case this test is about)"
    fi
    echo "layout OK: $(basename "$img"): $key = $v ($op $n)"
}
