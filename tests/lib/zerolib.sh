# Helpers shared by tests/test-zero-*.sh, tests/test-trim-*.sh and
# tests/test-write-reuse.sh (source after tests/functions.sh):
# wl (tests/lib/workload.py), ops, mkfull, mkfull_1m, expect_hole.

wl () { "$PY" "$srcdir/lib/workload.py" "$@"; }

# ops IMG REF OP...: one read-write session through the plugin applying
# explicit ops to IMG and REF (see workload.py ops; reads are verified).
ops ()
{
    local img=$1 ref=$2 cmd a
    shift 2
    printf -v cmd '%q %q ops "$uri" --ref %q' \
        "$PY" "$srcdir/lib/workload.py" "$ref"
    for a in "$@"; do printf -v cmd '%s %q' "$cmd" "$a"; done
    qcx_nbdkit_rw "$img" --run "$cmd" ||
        fail "ops on $(basename "$img") failed"
}

# mkfull IMG OPTS SIZE: qcow2 image with every byte written (random data),
# and IMG.ref, its raw contents.
mkfull ()
{
    local img=$1 opts=$2 size=$3
    qemu-img create -q -f qcow2 -o "$opts" "$img" "$size"
    qcx_gen_data 99 "$size" "$img.data" random
    qemu-io -f qcow2 -c "write -q -s $img.data 0 $size" "$img" >/dev/null
    rm -f "$img.data"
    qcx_qemu_raw "$img" "$img.ref"
}

# mkfull_1m ext|std IMG: mkfull of a 1 MiB image with 64 KiB clusters,
# extended L2 entries (ext) or standard ones (std).
mkfull_1m ()
{
    case $1 in
        ext) mkfull "$2" cluster_size=64k,extended_l2=on 1M ;;
        std) mkfull "$2" cluster_size=64k,extended_l2=off 1M ;;
        *) fail "mkfull_1m: unknown kind '$1'" ;;
    esac
}

# expect_hole IMG HOSTOFF LEN: freed host clusters are punched out.
expect_hole ()
{
    local rc=0
    wl expect-hole "$@" || rc=$?
    case $rc in
        0|77) ;;
        *) fail "freed host range not released: expect-hole $*" ;;
    esac
}
