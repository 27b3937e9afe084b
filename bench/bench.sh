#!/usr/bin/env bash
# qcow2x side-by-side benchmark (issue 6): nbdkit's file plugin on the raw
# equivalent, qemu-nbd and qcow2x over identical data, one server at a time,
# interleaved over several repetitions; medians and per-repetition ratios.
#
#   bench/bench.sh [--quick] [--reps N] [--runtime SEC] [--dir DIR] [--keep]
#                  [--only REGEX] [--servers file,qemu-nbd,qcow2x]
#                  [--profile perf:FILE|perfstat:FILE|callgrind:FILE]
#                  [--profile-server file|qemu-nbd|qcow2x] [--list]
#
# All servers listen on Unix sockets only.  Throughput is MiB/s or IOPS,
# higher is better.  See bench/README.md.
set -euo pipefail
export PATH=/usr/bin:/usr/sbin:/bin:/sbin:$PATH
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
PLUGIN=${QCX_PLUGIN:-$top/plugin/nbdkit-qcow2x-plugin.so}
FILTER=${QCX_FILTER:-$top/filter/nbdkit-qcow2xchain-filter.so}
PY=/usr/bin/python3

quick=0 reps='' runtime='' dir=$here/tmp keep=0 only='' servers_opt='' profile='' profile_server=qcow2x list=0
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --reps) reps=$2; shift ;;
        --runtime) runtime=$2; shift ;;
        --dir) dir=$2; shift ;;
        --keep) keep=1 ;;
        --only) only=$2; shift ;;
        --servers) servers_opt=$2; shift ;;
        --profile) profile=$2; shift ;;
        --profile-server) profile_server=$2; shift ;;
        --list) list=1 ;;
        -h|--help) usage 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; usage 1 >&2 ;;
    esac
    shift
done

if [ $quick = 1 ]; then
    SIZE_MIB=128; SPARSE_GIB=2; W3_IOS=4096; : "${reps:=1}" "${runtime:=1}"
else
    SIZE_MIB=1024; SPARSE_GIB=16; W3_IOS=32768; : "${reps:=3}" "${runtime:=3}"
fi
SIZE=$((SIZE_MIB * 1048576))
SPARSE=$((SPARSE_GIB * 1073741824))
IFS=, read -r -a SERVERS <<< "${servers_opt:-file,qemu-nbd,qcow2x}"
# Extra plugin arguments that make the plugin write compressed clusters
# (workload w7-copy-to-new-zstd runs only if they do).
W7Z_ARGS=${QCX_BENCH_W7Z_ARGS:-compression=zstd compress=true}

# Workloads: id unit specific-target note.  Table order.
META=$(cat <<EOF
w1-seqread-1M MiB/s file>=0.8 fio read bs=1M iodepth=8, fully allocated ${SIZE_MIB} MiB image (qcow2: 64K std L2)
w2-randread-4K-1conn IOPS file>=0.8 fio randread bs=4K iodepth=16, 1 connection
w2-randread-4K-4conn IOPS file>=0.8 fio randread bs=4K, 4 connections x iodepth=16
w3-randwrite-4K-extl2-64K IOPS file>=0.7 $W3_IOS distinct 4K blocks (iodepth=16) into an empty overlay over the allocated base; file = raw copy
w3-randwrite-4K-extl2-2M IOPS - same, overlay extended L2 2M clusters
w3-randwrite-4K-std-64K IOPS - same, overlay standard L2 64K clusters
w4-seqwrite-1M MiB/s - fio write bs=1M iodepth=8 filling an empty image (qemu-img create defaults) / sparse raw
w5-copy-zstd MiB/s - nbdcopy to null:, multi-conn (4 connections); file = raw equivalent
w5-copy-zstd-1conn MiB/s aux same, nbdcopy -C 1 (aux: for the scaling check)
w5-copy-zlib MiB/s - nbdcopy to null:, multi-conn (4 connections)
w5-copy-zlib-1conn MiB/s aux same, nbdcopy -C 1 (aux)
w6-randread-4K-sparse IOPS - fio randread bs=4K iodepth=16 over ${SPARSE_GIB} GiB, 64K of data every 1 MiB
w7-copy-to-new MiB/s - nbdcopy raw file -> new image: file = sparse raw, qemu-nbd = qemu-img create defaults, qcow2x = create=true defaults
w7-copy-to-new-zstd MiB/s - nbdcopy --flush raw -> new qcow2x image with $W7Z_ARGS; qemu-nbd column = qemu-img convert -c -o compression_type=zstd (its level)
w7-copy-to-new-zstd-l1 MiB/s - same with compress-level=1 (zstd's fastest positive level; qemu-img has no level option)
EOF
)
WORKLOADS=()
while read -r wid _; do
    if [ -z "$only" ] || [[ $wid =~ $only ]]; then WORKLOADS+=("$wid"); fi
done <<< "$META"
if [ $list = 1 ]; then echo "$META"; exit 0; fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
IMG=$dir/images
RUN=$dir/run.$$
# The socket lives under /tmp: a Unix socket path is limited to 107
# bytes, and $dir may be deep.
SOCKDIR=$(mktemp -d /tmp/qcx-bench.XXXXXX)
SOCK=$SOCKDIR/s.sock
PIDF=$RUN/s.pid
URI="nbd+unix:///?socket=$SOCK"
LOG=$RUN/servers.log
mkdir -p "$IMG" "$RUN"
RESULTS=$RUN/results.txt
: > "$RESULTS"
SRV_WAIT=

log() { printf '%s\n' "$*" >&2; }
die() { log "bench.sh: $*"; exit 1; }

# stop_server [discard]: with "discard" (the image is deleted next), SIGKILL:
# the servers' flush at exit is not measured and would only write data that is
# thrown away (unless a profiling wrapper needs a clean exit).
stop_server() {
    [ -n "$SRV_WAIT" ] || return 0
    [ -z "$profile" ] || profile_stop
    local pid sig=TERM
    pid=$(cat "$PIDF" 2>/dev/null || echo "$SRV_WAIT")
    if [ "${1:-}" = discard ] && [ -z "$profile" ]; then sig=KILL; fi
    kill -$sig "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$SRV_WAIT" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SRV_WAIT" 2>/dev/null; then
        log "bench.sh: server $SRV_WAIT did not exit after 60 s, killing it"
        kill -KILL "$SRV_WAIT" "$pid" 2>/dev/null || true
    fi
    SRV_WAIT=
    rm -f "$SOCK" "$PIDF"
}
cleanup() {
    local rc=$?
    stop_server
    rm -rf "$RUN" "$SOCKDIR"
    if [ $keep = 0 ]; then rm -rf "$IMG"; rmdir "$dir" 2>/dev/null || true; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() {
    local i
    for ((i = 0; i < 1200; i++)); do
        if ! kill -0 "$SRV_WAIT" 2>/dev/null; then
            tail -20 "$LOG" >&2
            die "server exited at start-up (log above)"
        fi
        if [ -S "$SOCK" ] && [ -s "$PIDF" ] && nbdinfo --size "$URI" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    die "server not ready after 60 s"
}

# start_server KIND RO IMAGE [EXTRA...]
#   KIND: file (nbdkit file plugin), qemu-nbd, qcow2x, qcow2x-chain (with the filter)
start_server() {
    local kind=$1 ro=$2 image=$3; shift 3
    local roflag=() wrap=() name
    name=${kind%-chain}
    [ "$ro" = 1 ] && roflag=(-r)
    rm -f "$SOCK" "$PIDF"
    echo "=== $kind ro=$ro $image $*" >> "$LOG"
    if [ "$name" = "$profile_server" ] && [ "${profile%%:*}" = callgrind ]; then
        wrap=(valgrind --tool=callgrind --instr-atstart=no --separate-threads=no
              "--callgrind-out-file=${profile#callgrind:}")
    fi
    case $kind in
        file)
            "${wrap[@]}" nbdkit -f -U "$SOCK" -P "$PIDF" "${roflag[@]}" file "file=$image" "$@" \
                >> "$LOG" 2>&1 &
            ;;
        qemu-nbd)
            "${wrap[@]}" qemu-nbd -k "$SOCK" --pid-file="$PIDF" -f qcow2 --cache=writeback \
                --aio="$AIO" -e 16 -t "${roflag[@]}" "$image" "$@" >> "$LOG" 2>&1 &
            ;;
        qcow2x|qcow2x-chain)
            local filt=()
            [ $kind = qcow2x-chain ] && filt=(--filter="$FILTER")
            "${wrap[@]}" nbdkit -f -U "$SOCK" -P "$PIDF" "${roflag[@]}" "${filt[@]}" "$PLUGIN" \
                "file=$image" "$@" >> "$LOG" 2>&1 &
            ;;
        *) die "start_server: $kind" ;;
    esac
    SRV_WAIT=$!
    disown "$SRV_WAIT"      # no "Killed" job notices; stop_server polls instead of wait
    wait_ready
    if [ -n "$profile" ] && [ "$name" = "$profile_server" ]; then profile_start; fi
    SRV_CPU0=$(cpu_ticks)
}

# CPU time (user+system, all threads) of the running server, in clock ticks.
CLK_TCK=$(getconf CLK_TCK)
SRV_CPU0=0
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$(cat "$PIDF")/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<< "$stat"
}
# finish "VALUE UNITS": VAL = "VALUE UNITS SERVER-CPU-SECONDS" for the running server.
finish() {
    VAL="$1 $(awk -v a="$(cpu_ticks)" -v b="$SRV_CPU0" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (a - b) / t }')"
}

# Profiling of one server (--profile-server, default qcow2x) during the
# measurement only (bench/profile.sh):
#   --profile perf:FILE       attaches `perf record -g` (cpu-clock) once it is ready;
#   --profile perfstat:FILE   attaches `perf stat` (CPU time, context switches);
#   --profile callgrind:FILE  runs it under callgrind, instrumenting only while ready.
PERF_PID='' PROF_ON=0
profile_start() {
    PROF_ON=1
    case $profile in
        perf:*)
            perf record -q -e cpu-clock -F 1000 --call-graph dwarf -p "$(cat "$PIDF")" -o "${profile#perf:}" \
                >> "$LOG" 2>&1 &
            PERF_PID=$!
            sleep 0.5 ;;
        perfstat:*)
            perf stat -e task-clock,context-switches,cpu-migrations,page-faults \
                -p "$(cat "$PIDF")" -o "${profile#perfstat:}" --append >> "$LOG" 2>&1 &
            PERF_PID=$!
            sleep 0.5 ;;
        callgrind:*) callgrind_control -i on "$(cat "$PIDF")" >> "$LOG" 2>&1 ;;
    esac
}
profile_stop() {
    [ $PROF_ON = 1 ] || return 0
    PROF_ON=0
    case $profile in
        perf:*|perfstat:*)
            if [ -n "$PERF_PID" ]; then
                kill -INT "$PERF_PID" 2>/dev/null || true
                wait "$PERF_PID" 2>/dev/null || true
                PERF_PID=''
            fi ;;
        callgrind:*) callgrind_control -i off "$(cat "$PIDF")" >> "$LOG" 2>&1 || true ;;
    esac
}

now() { date +%s.%N; }
mibps() { $PY -c "import sys; print('%.3f' % ($1 / 1048576.0 / (float(sys.argv[2]) - float(sys.argv[1]))))" "$2" "$3"; }

# fio_run METRIC JOB-OPTIONS...: one fio job against $URI, prints
# "METRIC UNITS" (UNITS: I/Os done, or MiB transferred for MiB/s).
fio_run() {
    local metric=$1; shift
    local job=$RUN/job.fio out=$RUN/fio.json
    {
        echo "[global]"
        echo "ioengine=nbd"
        echo "uri=$URI"
        echo "group_reporting=1"
        for o in "$@"; do echo "$o"; done
        echo "[job]"
    } > "$job"
    fio --eta=never --output-format=json --output="$out" "$job" >> "$LOG" 2>&1 ||
        { cat "$out" >&2 || true; die "fio failed ($job)"; }
    $PY "$here/lib/fiojson.py" "$out" "$metric"
}

# ---------------------------------------------------------------- images
prep_images() {
    local stamp=$IMG/stamp want="size=$SIZE sparse=$SPARSE v2"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "bench: reusing images in $IMG"
        return 0
    fi
    rm -f "$IMG"/*
    local t0; t0=$(date +%s)
    log "bench: preparing images in $IMG (base ${SIZE_MIB} MiB, sparse ${SPARSE_GIB} GiB) ..."
    # Realistic, compressible content: the start of a tar of /usr, repeated.
    local corpus=$((SIZE_MIB < 256 ? SIZE_MIB : 256))
    tar cf - -C / usr/lib usr/share 2>/dev/null | head -c "$((corpus * 1048576))" > "$IMG/corpus" || true
    [ "$(stat -c %s "$IMG/corpus")" = $((corpus * 1048576)) ] || die "could not build the data corpus"
    local i
    for ((i = 0; i < SIZE_MIB / corpus; i++)); do cat "$IMG/corpus"; done > "$IMG/base.raw"
    rm -f "$IMG/corpus"
    # Fully allocated qcow2 (no zero detection), qemu-img create defaults.
    qemu-img convert -q -f raw -O qcow2 -S 0 -W -m 16 "$IMG/base.raw" "$IMG/base.qcow2"
    qemu-img convert -q -f raw -O qcow2 -S 0 -W -m 16 -c -o compression_type=zstd \
        "$IMG/base.raw" "$IMG/zstd.qcow2"
    qemu-img convert -q -f raw -O qcow2 -S 0 -W -m 16 -c -o compression_type=zlib \
        "$IMG/base.raw" "$IMG/zlib.qcow2"
    $PY "$here/lib/mksparse.py" "$SPARSE" "$IMG/base.raw" "$IMG/sparse.raw"
    qemu-img convert -q -f raw -O qcow2 -W -m 16 "$IMG/sparse.raw" "$IMG/sparse.qcow2"
    sync
    echo "$want" > "$stamp"
    log "bench: images ready in $(($(date +%s) - t0)) s"
}

# w7-copy-to-new-zstd runs only if the plugin, given $W7Z_ARGS, really
# writes compressed clusters.
plugin_writes_compressed() {
    local t=$RUN/probe.qcow2 src=$RUN/probe.raw
    head -c 4194304 "$IMG/base.raw" > "$src"
    rm -f "$t"
    # shellcheck disable=SC2086
    nbdkit -U - "$PLUGIN" "file=$t" create=true size=4M $W7Z_ARGS \
        --run "nbdcopy '$src' \"\$uri\"" >> "$LOG" 2>&1 || { rm -f "$t" "$src"; return 1; }
    local pct
    pct=$(qemu-img check "$t" 2>/dev/null | sed -n 's/.*fragmented, \([0-9.]*\)% compressed.*/\1/p')
    rm -f "$t" "$src"
    [ -n "$pct" ] && [ "$pct" != "0.00" ]
}

# ---------------------------------------------------------------- workloads
# run_one WID SERVER: sets VAL to "VALUE UNITS CPU" (VALUE: higher is better;
# UNITS: I/Os or MiB done; CPU: server CPU seconds meanwhile).  Not in a subshell: it
# starts servers and fills SHARED.
VAL=
declare -A SHARED      # measurements shared by several rows within one repetition
REP=0
run_one() {
    local wid=$1 srv=$2 t0 t1 ov
    case $wid in
    w1-*|w2-*)
        local opts=(bs=4k rw=randread iodepth=16 time_based "runtime=${runtime}s")
        local metric=read-iops
        case $wid in
            w1-*) opts=(bs=1M rw=read iodepth=8 time_based "runtime=${runtime}s"); metric=read-mib ;;
            *-4conn) opts+=(numjobs=4) ;;
        esac
        case $srv in
            file) start_server file 1 "$IMG/base.raw" ;;
            *) start_server "$srv" 1 "$IMG/base.qcow2" ;;
        esac
        finish "$(fio_run $metric "${opts[@]}")"
        ;;
    w3-*)
        local fio3=(bs=4k rw=randwrite iodepth=16 "size=$SIZE" "number_ios=$W3_IOS" norandommap=0
                    randrepeat=1 randseed=1234)
        if [ $srv = file ]; then
            if [ -z "${SHARED[w3file.$REP]:-}" ]; then
                cp "$IMG/base.raw" "$RUN/w3.raw"
                start_server file 0 "$RUN/w3.raw"
                finish "$(fio_run write-iops "${fio3[@]}")"
                SHARED[w3file.$REP]=$VAL
                stop_server discard; rm -f "$RUN/w3.raw"
            fi
            VAL=${SHARED[w3file.$REP]}
            return 0
        fi
        case $wid in
            *-extl2-64K) ov=cluster_size=64k,extended_l2=on ;;
            *-extl2-2M) ov=cluster_size=2M,extended_l2=on ;;
            *-std-64K) ov=cluster_size=64k,extended_l2=off ;;
        esac
        rm -f "$IMG/w3.qcow2"
        qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 -o "$ov" "$IMG/w3.qcow2"
        if [ $srv = qcow2x ]; then start_server qcow2x-chain 0 "$IMG/w3.qcow2"
        else start_server qemu-nbd 0 "$IMG/w3.qcow2"; fi
        finish "$(fio_run write-iops "${fio3[@]}")"
        stop_server discard; rm -f "$IMG/w3.qcow2"
        ;;
    w4-*)
        if [ $srv = file ]; then
            truncate -s "$SIZE" "$RUN/w4.raw"
            start_server file 0 "$RUN/w4.raw"
        else
            qemu-img create -q -f qcow2 "$RUN/w4.qcow2" "$SIZE"
            start_server "$srv" 0 "$RUN/w4.qcow2"
        fi
        finish "$(fio_run write-mib bs=1M rw=write iodepth=8 "size=$SIZE")"
        stop_server discard; rm -f "$RUN/w4.raw" "$RUN/w4.qcow2"
        ;;
    w5-*)
        local conns=() key=w5file.$REP img=zstd.qcow2
        case $wid in *-1conn) conns=(-C 1); key=$key.1 ;; esac
        case $wid in *zlib*) img=zlib.qcow2 ;; esac
        if [ $srv = file ] && [ -n "${SHARED[$key]:-}" ]; then VAL=${SHARED[$key]}; return 0; fi
        if [ $srv = file ]; then start_server file 1 "$IMG/base.raw"
        else start_server "$srv" 1 "$IMG/$img"; fi
        t0=$(now); nbdcopy "${conns[@]}" "$URI" null: >> "$LOG" 2>&1 || die "nbdcopy failed"; t1=$(now)
        finish "$(mibps "$SIZE" "$t0" "$t1") $SIZE_MIB"
        if [ $srv = file ]; then SHARED[$key]=$VAL; fi
        ;;
    w6-*)
        if [ $srv = file ]; then start_server file 1 "$IMG/sparse.raw"
        else start_server "$srv" 1 "$IMG/sparse.qcow2"; fi
        finish "$(fio_run read-iops bs=4k rw=randread iodepth=16 time_based "runtime=${runtime}s")"
        ;;
    w7-*)
        local key=w7file.$REP
        if [ $srv = file ] && [ -n "${SHARED[$key]:-}" ]; then VAL=${SHARED[$key]}; return 0; fi
        case $srv in
            file) truncate -s "$SIZE" "$RUN/w7.raw"; start_server file 0 "$RUN/w7.raw" ;;
            qemu-nbd)
                if [[ $wid = w7-copy-to-new-zstd* ]]; then
                    # qemu-nbd cannot write compressed clusters: qemu-img convert -c instead.
                    t0=$(now)
                    qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zstd -W -m 16 \
                        "$IMG/base.raw" "$RUN/w7.qcow2"
                    t1=$(now)
                    rm -f "$RUN/w7.qcow2"
                    VAL="$(mibps "$SIZE" "$t0" "$t1") $SIZE_MIB -"
                    return 0
                fi
                qemu-img create -q -f qcow2 "$RUN/w7.qcow2" "$SIZE"
                start_server qemu-nbd 0 "$RUN/w7.qcow2" ;;
            qcow2x)
                local extra=()
                # shellcheck disable=SC2206
                [[ $wid = w7-copy-to-new-zstd* ]] && extra=($W7Z_ARGS)
                [ $wid = w7-copy-to-new-zstd-l1 ] && extra+=(compress-level=1)
                start_server qcow2x 0 "$RUN/w7.qcow2" create=true "size=$SIZE" "${extra[@]}" ;;
        esac
        # The compressed copy is timed to its end on disk, as qemu-img
        # convert is (it flushes; compress=true also compresses clusters
        # written in pieces at the flush).
        local flush=()
        [[ $wid = w7-copy-to-new-zstd* ]] && flush=(--flush)
        t0=$(now); nbdcopy "${flush[@]}" "$IMG/base.raw" "$URI" >> "$LOG" 2>&1 || die "nbdcopy failed"; t1=$(now)
        finish "$(mibps "$SIZE" "$t0" "$t1") $SIZE_MIB"
        stop_server discard; rm -f "$RUN/w7.raw" "$RUN/w7.qcow2"
        if [ $srv = file ]; then SHARED[$key]=$VAL; fi
        ;;
    *) die "unknown workload $wid" ;;
    esac
}

# ---------------------------------------------------------------- main
for c in nbdkit nbdcopy nbdinfo fio qemu-nbd qemu-img; do
    command -v $c >/dev/null || die "$c is missing (make bench installs fio and qemu-utils)"
done
[ -f "$PLUGIN" ] && [ -f "$FILTER" ] || die "build the plugin and filter first (make)"

# qemu-nbd at its fastest setting here: io_uring if this machine allows it.
AIO=io_uring
probe=$RUN/probe.qcow2
qemu-img create -q -f qcow2 "$probe" 1M
qemu-nbd -k "$SOCK" --pid-file="$PIDF" -f qcow2 --cache=writeback --aio=io_uring -e 16 -t -r \
    "$probe" >> "$LOG" 2>&1 &
SRV_WAIT=$!; disown "$SRV_WAIT"
ok=0
for ((i = 0; i < 100; i++)); do
    kill -0 $SRV_WAIT 2>/dev/null || break
    if nbdcopy "$URI" null: 2>/dev/null; then ok=1; break; fi
    sleep 0.05
done
stop_server
rm -f "$probe"
[ $ok = 1 ] || AIO=threads
QEMU_SETTING="qemu-nbd --cache=writeback --aio=$AIO -e 16 -t"

prep_images
W7Z=0
if [[ " ${WORKLOADS[*]} " == *" w7-copy-to-new-zstd"* ]]; then
    if plugin_writes_compressed; then W7Z=1; else
        log "bench: w7-copy-to-new-zstd skipped: the plugin does not write compressed clusters ($W7Z_ARGS)"
    fi
fi

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "qcow2x benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs ($model), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Linux $(uname -r)"
echo "versions: $(nbdkit --version | head -1), $(qemu-nbd --version | head -1), $(fio --version), $(nbdcopy --version | head -1)"
echo "qemu-nbd setting: $QEMU_SETTING (aio=$AIO$([ $AIO = threads ] && echo ': io_uring unavailable here'))"
echo "mode: $([ $quick = 1 ] && echo quick || echo full), ${reps} repetitions, image ${SIZE_MIB} MiB, sparse ${SPARSE_GIB} GiB, timed runs ${runtime} s"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)"
echo "git: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
echo

t_start=$(date +%s)
for ((REP = 1; REP <= reps; REP++)); do
    log "bench: repetition $REP/$reps"
    # Rotate the server order each repetition.
    order=()
    for ((k = 0; k < ${#SERVERS[@]}; k++)); do
        order+=("${SERVERS[$(((k + REP - 1) % ${#SERVERS[@]}))]}")
    done
    for wid in "${WORKLOADS[@]}"; do
        [[ $wid = w7-copy-to-new-zstd* ]] && [ $W7Z = 0 ] && continue
        unit=$(awk -v w="$wid" '$1 == w { print $2 }' <<< "$META")
        for srv in "${order[@]}"; do
            VAL=
            # Write back what earlier steps left dirty (deleted or
            # copied images), so that no writeback runs during this
            # measurement.
            sync
            t_m=$(now)
            run_one "$wid" "$srv"
            stop_server
            read -r v units cpu <<< "$VAL"
            [ -n "${cpu:-}" ] || die "$wid $srv: no result"
            printf '%s %s %s %s %s %s %s\n' "$REP" "$wid" "$srv" "$v" "$unit" "$units" "$cpu" >> "$RESULTS"
            log "  $wid $srv $v $unit (server CPU $cpu s; wall $($PY -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t_m" "$(now)") s)"
        done
    done
done
log "bench: measurements took $(($(date +%s) - t_start)) s"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

awk '{ w = $1; u = $2; s = $3; $1 = $2 = $3 = ""; sub(/^ +/, ""); print w, u, s, $0 }' <<< "$META" > "$RUN/meta"
$PY "$here/lib/report.py" "$RESULTS" "$RUN/meta"
