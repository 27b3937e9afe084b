#!/usr/bin/env bash
# Profile the qcow2x server during one benchmark workload.
#
#   bench/profile.sh [--server S] WORKLOAD [perf|perfstat|callgrind] [OUTDIR]
#                    [-- bench.sh options]
#
# Runs `bench.sh --only '^WORKLOAD$' --servers S --reps 1` (S: qcow2x by
# default; quick sizes unless bench.sh options say otherwise) and profiles
# the server process while the workload runs (not its start-up or exit) with
#   perf record -e cpu-clock -g   (a software clock: works in VMs without
#                                  hardware counters; kernel included),
#   perf stat                     (CPU time, context switches), or
#   valgrind --tool=callgrind     (user-space instructions, ~50x slower),
# and writes OUTDIR/profile-WORKLOAD[-S]-TOOL.txt (top symbols, self and
# inclusive), keeping the raw data next to it.  OUTDIR defaults to /tmp/bench.
set -euo pipefail
export PATH=/usr/bin:/usr/sbin:/bin:/sbin:$PATH
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

server=qcow2x
if [ "${1:-}" = --server ]; then server=$2; shift 2; fi
[ $# -ge 1 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 1; }
wid=$1; shift
tool=perf
if [ $# -gt 0 ] && [ "$1" != -- ]; then tool=$1; shift; fi
out=/tmp/bench
if [ $# -gt 0 ] && [ "$1" != -- ]; then out=$1; shift; fi
[ "${1:-}" = -- ] && shift
bench_args=("$@")
[ ${#bench_args[@]} -gt 0 ] || bench_args=(--quick --keep --dir /tmp/bench/profile-images)
mkdir -p "$out"
out=$(cd "$out" && pwd)
base=$out/profile-$wid-$tool
[ "$server" = qcow2x ] || base=$out/profile-$wid-$server-$tool

case $tool in
    perf) prof=perf:$base.data ;;
    perfstat) prof=perfstat:$base.data ;;
    callgrind)
        command -v valgrind >/dev/null || { echo "profile.sh: valgrind missing" >&2; exit 1; }
        prof=callgrind:$base.out ;;
    *) echo "profile.sh: tool must be perf, perfstat or callgrind" >&2; exit 1 ;;
esac
rm -f "$base.data" "$base.out"

"$here/bench.sh" "${bench_args[@]}" --only "^$wid\$" --servers "$server" --reps 1 \
    --profile "$prof" --profile-server "$server" > "$base.bench.txt" 2>&1 ||
    { cat "$base.bench.txt" >&2; exit 1; }

{
    echo "# $wid, $server server under $tool"
    grep -E '^  w|^(BENCH|mode)' "$base.bench.txt" || true
    echo
    case $tool in
        perf)
            echo "## self time by object (perf report --no-children --sort dso)"
            perf report -i "$base.data" --stdio --no-children --sort dso -g none \
                --percent-limit 0.5 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -20
            echo
            echo "## self time by symbol (perf report --no-children --sort dso,sym)"
            perf report -i "$base.data" --stdio --no-children --sort dso,sym -g none \
                --percent-limit 0.5 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -60
            echo
            echo "## inclusive time by symbol (perf report --children --sort sym)"
            perf report -i "$base.data" --stdio --children --sort sym -g none \
                --percent-limit 2 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -60
            echo
            echo "## where the time goes: samples whose stack holds KEY, by first caller frame"
            perf script -i "$base.data" -F comm,ip,sym,dso 2>/dev/null > "$base.script"
            /usr/bin/python3 "$here/lib/perfcallers.py" "$base.script" \
                __lll_lock_wait pthread_rwlock ftruncate fallocate pwrite64 pread64 fdatasync \
                sync_file_range ksys_read __sys_sendto inflate ZSTD_decompress
            rm -f "$base.script"
            echo
            echo "## call graphs of the top self symbols (caller order)"
            perf report -i "$base.data" --stdio --no-children --sort sym \
                -g caller,0.5,callee,function,percent --percent-limit 3 2>/dev/null |
                grep -v '^#' | sed '/^$/d' | head -250
            ;;
        perfstat) cat "$base.data" ;;
        callgrind)
            echo "## self instructions"
            callgrind_annotate "$base.out" 2>/dev/null | head -60
            echo
            echo "## inclusive instructions"
            callgrind_annotate --inclusive=yes "$base.out" 2>/dev/null | head -60
            ;;
    esac
} > "$base.txt"
echo "$base.txt"
