#!/usr/bin/env bash
# qcow2x test runner.
#
#   tests/run-tests.sh            run every tests/test-*.sh and every
#                                 executable tests/unit/* (not *.c)
#   tests/run-tests.sh NAME...    run only these (test-read-v2, test-read-v2.sh,
#                                 tests/test-read-v2.sh or unit/NAME)
#
# Tests run $QCX_JOBS at a time (default: the number of CPUs).
# Each test runs with a timeout ($QCX_TEST_TIMEOUT seconds, default 300),
# its output goes to tests/logs/NAME.log, and one line is printed:
# "PASS: NAME" or "FAIL: NAME (...)".  Exit status 77 (could not run: a
# tool is missing) counts as a failure.  The last line is exactly
# "N passed, N failed"; the exit status is non-zero if anything failed.
# Before it, the last $QCX_FAIL_TAIL (default 30) lines of each failed
# test's log are printed.

set -u
export PATH=${QCX_PATH_PREFIX:+$QCX_PATH_PREFIX:}/usr/bin:/bin:/usr/sbin:/sbin:$PATH

testsdir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
logdir=$testsdir/logs
mkdir -p "$logdir"
timeout_s=${QCX_TEST_TIMEOUT:-300}

tests=()
if [ $# -gt 0 ]; then
    for a in "$@"; do
        a=${a#tests/}
        a=${a#"$testsdir"/}
        if [ -f "$testsdir/$a" ]; then
            tests+=("$a")
        elif [ -f "$testsdir/$a.sh" ]; then
            tests+=("$a.sh")
        else
            echo "run-tests.sh: no such test: $a" >&2
            tests+=("$a")   # reported as FAIL below
        fi
    done
else
    for t in "$testsdir"/test-*.sh; do
        [ -e "$t" ] || continue
        tests+=("${t#"$testsdir"/}")
    done
    # Unit tests: built in tests/unit, or in $QCX_UNIT_DIR (sanitizer
    # builds); listed as unit/NAME either way.
    unitdir=${QCX_UNIT_DIR:-$testsdir/unit}
    for t in "$unitdir"/*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        case "$t" in *.c|*.h|*.o) continue ;; esac
        tests+=("unit/${t##*/}")
    done
fi

# Tests run QCX_JOBS at a time (default: the number of CPUs); each
# prints its PASS/FAIL line when it ends.
jobs_max=${QCX_JOBS:-$(nproc 2>/dev/null || echo 2)}
resdir=$(mktemp -d)
trap 'rm -rf "$resdir"' EXIT

run_one ()
{
    local idx=$1 t=$2 name logname log start path rc secs why
    name=${t%.sh}
    logname=${name//\//-}
    log=$logdir/$logname.log
    start=$(date +%s)
    path=$testsdir/$t
    case "$t" in
        unit/*) path=${QCX_UNIT_DIR:-$testsdir/unit}/${t#unit/} ;;
    esac
    if [ ! -f "$path" ]; then
        echo "no such test: $path" > "$log"
        rc=127
    else
        case "$t" in
            *.sh) cmd=(bash "$path") ;;
            *)    cmd=("$path") ;;
        esac
        # Run from the tests directory; tests must not depend on cwd anyway.
        ( cd "$testsdir" &&
          timeout --kill-after=10 "$timeout_s" "${cmd[@]}" ) \
            </dev/null >"$log" 2>&1
        rc=$?
    fi
    secs=$(( $(date +%s) - start ))
    echo "exit status $rc after ${secs}s" >> "$log"
    if [ "$rc" -eq 0 ]; then
        echo "PASS: $t"
    else
        case "$rc" in
            77)  why="exit 77: could not run, a required tool is missing" ;;
            124|137) why="timed out after ${timeout_s}s" ;;
            *)   why="exit $rc" ;;
        esac
        echo "FAIL: $t ($why; log: tests/logs/$logname.log)"
    fi
    echo "$rc" > "$resdir/$idx"
    echo "$logname" > "$resdir/$idx.log"
}

idx=0
for t in "${tests[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n
    done
    run_one "$idx" "$t" &
    idx=$((idx + 1))
done
wait

# The end of each failed test's log is printed before the summary: CI
# shows only the end of the output, and the logs stay on its machine.
passed=0
failed=0
tail_lines=${QCX_FAIL_TAIL:-30}
for (( i = 0; i < idx; i++ )); do
    if [ "$(cat "$resdir/$i" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        logname=$(cat "$resdir/$i.log" 2>/dev/null || echo "${tests[$i]%.sh}")
        echo "---- last $tail_lines lines of tests/logs/$logname.log ----"
        tail -n "$tail_lines" "$logdir/$logname.log" 2>/dev/null | cut -c1-400
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
