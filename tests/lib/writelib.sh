# Helpers shared by tests/test-write-*.sh and tests/test-multiconn-*.sh
# (source after tests/functions.sh): wl (tests/lib/workload.py), the
# image $img and raw model $ref in $tmpdir, and session (one read-write
# nbdkit session running a workload, then verify).

wl () { "$PY" "$srcdir/lib/workload.py" "$@"; }
img=$tmpdir/disk.qcow2
ref=$tmpdir/ref.raw

# session SEED [workload run options...]: one nbdkit session (read-write);
# extra plugin parameters in the array pargs
pargs=()
session ()
{
    local seed=$1 cmd a
    shift
    printf -v cmd '%q %q run "$uri" --ref %q --image %q --seed %q' \
        "$PY" "$srcdir/lib/workload.py" "$ref" "$img" "$seed"
    for a in "$@"; do printf -v cmd '%s %q' "$cmd" "$a"; done
    qcx_nbdkit_rw "$img" ${pargs[@]+"${pargs[@]}"} --run "$cmd" ||
        fail "workload (seed $seed) through the plugin failed"
    wl verify "$img" "$ref" || fail "image not clean/identical after seed $seed"
}
