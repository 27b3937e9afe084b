# qcow2xchain filter test helpers.  Source after tests/functions.sh:
#
#   . "$(dirname "$0")/functions.sh"
#   . "$srcdir/lib/chainlib.sh"
#
# Defines:
#   $FILTER   absolute path of the filter (override with $QCX_FILTER)
#   $chainpy  "$PY $srcdir/lib/chainmk.py" (image builder, see its --help)
#
# Functions:
#   chain_nbdkit ARGS...        nbdkit -U - -r --filter=$FILTER $PLUGIN ARGS
#   chain_nbdkit_rw ARGS...     the same, read-write
#   chain_spec IMG [DEPTH [BACKING [FORMAT]]]
#                               QEMU's name for IMG's chain: the file name
#                               itself, or a json: filename cutting the
#                               chain below DEPTH backing layers and/or
#                               replacing IMG's backing file by BACKING
#                               (chainmk.py spec).
#   chain_compare IMG SPEC [FILTER ARGS...]
#                               the filter's bytes (nbdcopy with and without
#                               block status, then random unaligned reads)
#                               must equal qemu-img convert -O raw SPEC.
#   chain_extents IMG SPEC [FILTER ARGS...]
#                               the filter's block status must equal
#                               qemu-img map SPEC (tests/lib/chain-extents.py;
#                               $CHAIN_REQUIRE=0,2,3 lists flag values that
#                               must occur in QEMU's map).
#   chain_check_clean IMG       qemu-img check: no errors, no leaks.
#   chain_compare_ref REF IMG   qemu-img compare (QEMU resolving IMG's chain)
#                               says identical to the raw file REF.
#   chain_sums FILE...          sha256 of each FILE (for "unchanged" checks).
#   chain_workload IMG REF [WORKLOAD OPTS...] [-- FILTER ARGS...]
#                               random multi-connection workload through the
#                               filter (tests/lib/workload.py run), REF the
#                               raw model (updated).
#   chain_expect_fail_start WHAT PATTERN... -- ARGS...
#                               nbdkit with the filter and ARGS must refuse
#                               to start (no hang), with a message
#                               on stderr matching every (case-insensitive,
#                               extended regex) PATTERN.

FILTER=${QCX_FILTER:-$top/filter/nbdkit-qcow2xchain-filter.so}
chainpy="$PY $srcdir/lib/chainmk.py"

_chain_check_built ()
{
    _qcx_check_plugin
    [ -f "$FILTER" ] || fail "filter not built: $FILTER (run make -C $top)"
}

chain_nbdkit ()
{
    _chain_check_built
    local v=()
    if [ "${QCX_VERBOSE:-0}" = 1 ]; then v=(-v); fi
    nbdkit "${v[@]}" -U - -r --filter="$FILTER" "$PLUGIN" "$@"
}

chain_nbdkit_rw ()
{
    _chain_check_built
    local v=()
    if [ "${QCX_VERBOSE:-0}" = 1 ]; then v=(-v); fi
    nbdkit "${v[@]}" -U - --filter="$FILTER" "$PLUGIN" "$@"
}

chain_spec ()
{
    "$PY" "$qcx_lib/chainmk.py" spec "$@" || fail "chainmk.py spec $* failed"
}

_chain_qemu_raw ()
{
    local spec=$1 out=$2
    rm -f "$out"
    qemu-img convert -O raw "$spec" "$out" ||
        fail "qemu-img convert -O raw $spec failed"
}

chain_compare ()
{
    local img=$1 spec=$2
    shift 2
    _qcx_next
    local exp=$tmpdir/chain-qemu.$_qcx_seq.raw
    local act=$tmpdir/chain-filter.$_qcx_seq.raw
    local what
    what="$(basename "$img")${*:+ $*}"
    _chain_qemu_raw "$spec" "$exp"
    local flags cmd
    for flags in "" "--no-extents"; do
        rm -f "$act"
        printf -v cmd 'nbdcopy %s -- "$uri" %q' "$flags" "$act"
        chain_nbdkit "$img" "$@" --run "$cmd" ||
            fail "$what: serving/copying through the filter failed"
        _qcx_cmp "$exp" "$act" "$what (nbdcopy $flags)"
    done
    printf -v cmd '%q %q "$uri" %q --seed %q --count %q --max-len %q --hints %q' \
        "$PY" "$qcx_lib/random-reads.py" "$exp" "${QCX_SEED:-1}" \
        "${CHAIN_READS:-400}" 200000 "${CHAIN_HINTS:-512,2048,4096,65536}"
    chain_nbdkit "$img" "$@" --run "$cmd" ||
        fail "$what: random reads through the filter differ from qemu-img convert"
    rm -f "$exp" "$act"
    echo "chain_compare OK: $what"
}

chain_extents ()
{
    local img=$1 spec=$2
    shift 2
    local cmd
    printf -v cmd '%q %q "$uri" %q' "$PY" "$qcx_lib/chain-extents.py" "$spec"
    # Does the served top defer to a backing file (see chain-extents.py)?
    local a defers=
    if qemu-img info --output=json -U "$img" | grep -q '"backing-filename"'; then
        defers=1
    fi
    for a in "$@"; do
        case "$a" in chain-backing=*) defers=1 ;; esac
    done
    if [ -n "$defers" ]; then cmd="$cmd --top-defers"; fi
    if [ -n "${CHAIN_REQUIRE:-}" ]; then
        printf -v cmd '%s --require %q' "$cmd" "$CHAIN_REQUIRE"
    fi
    chain_nbdkit "$img" "$@" --run "$cmd" ||
        fail "extents of $(basename "$img")${*:+ $*} through the filter differ from qemu-img map"
    echo "chain_extents OK: $(basename "$img")${*:+ $*}"
}

chain_check_clean ()
{
    "$PY" "$qcx_lib/chainmk.py" check "$1" || fail "qemu-img check $(basename "$1") is not clean"
}

chain_compare_ref ()
{
    local ref=$1 img=$2 out
    if ! out=$(qemu-img compare -f raw -F qcow2 "$ref" "$img" 2>&1); then
        echo "$out" >&2
        fail "qemu-img compare $(basename "$ref") $(basename "$img"): not identical"
    fi
    echo "compare OK: $(basename "$img") (chain resolved by QEMU) == $(basename "$ref")"
}

chain_sums ()
{
    sha256sum "$@"
}

chain_expect_fail_start ()
{
    local what=$1
    shift
    local pats=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    [ "${1:-}" = "--" ] && shift
    _chain_check_built
    local err=$tmpdir/start-err.txt t0 t1 rc=0
    t0=$(date +%s%N)
    timeout 20 nbdkit -U - --filter="$FILTER" "$PLUGIN" "$@" --run 'exit 0' \
        </dev/null >/dev/null 2>"$err" || rc=$?
    t1=$(date +%s%N)
    local ms=$(( (t1 - t0) / 1000000 ))
    sed 's/^/    stderr: /' "$err"
    [ "$rc" -ne 0 ] || fail "$what: nbdkit started (expected a refusal): $*"
    [ "$rc" -ne 124 ] || fail "$what: nbdkit hung (no refusal within 20 s)"
    # "At once" is checked without a wall-clock limit (a loaded CI machine
    # made a 1 s limit flaky): rc != 0 under --run proves the refusal came
    # during start-up, before any client, and the 20 s timeout catches a
    # hang.  The time is printed for the log only.
    local p
    for p in "${pats[@]}"; do
        grep -Eqi -- "$p" "$err" ||
            fail "$what: error message does not match /$p/"
    done
    echo "refused OK ($ms ms): $what"
}

# chain_workload IMG REF [WORKLOAD OPTIONS...] [-- FILTER ARGS...]
#   serve IMG read-write through the filter and run tests/lib/workload.py
#   (random NBD ops on several connections; overlapping ops serialised, so
#   the model REF, a raw file, is well defined; reads checked against the
#   model as they complete; final read-back).  REF is updated.
chain_workload ()
{
    local img=$1 ref=$2
    shift 2
    local wargs=() fargs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do wargs+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    fargs=("$@")
    local cmd
    printf -v cmd '%q %q run "$uri" --ref %q --image %q' \
        "$PY" "$qcx_lib/workload.py" "$ref" "$img"
    local a
    for a in "${wargs[@]}"; do printf -v cmd '%s %q' "$cmd" "$a"; done
    chain_nbdkit_rw "$img" "${fargs[@]}" --run "$cmd" ||
        fail "workload through the filter on $(basename "$img") failed: ${wargs[*]} -- ${fargs[*]}"
}
