# Helpers shared by the tests/test-create-*.sh scripts (source after
# tests/functions.sh): create, check_clean and friends.

# create IMG ARGS...: create IMG through the plugin (captive nbdkit: the
# image is created at start-up, then served); the export size lands in
# $tmpdir/created-size.  Overlays need layer-only=true in ARGS to be
# served by the plugin alone.
create ()
{
    local img=$1
    shift
    qcx_nbdkit file="$img" create=true "$@" --run 'nbdinfo --size "$uri"' \
        > "$tmpdir/created-size" ||
        fail "creating $(basename "$img") with: $*"
    echo "created $(basename "$img"): $* (export size $(cat "$tmpdir/created-size"))"
}

# info IMG KEY: one field of qemu-img info (format-specific fields too).
info ()
{
    qemu-img info --output=json "$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
d.update(d.get("format-specific", {}).get("data", {}))
v = d.get(sys.argv[1])
print(json.dumps(v) if isinstance(v, bool) or v is None else v)' "$2"
}

# expect_info IMG KEY=VALUE...
expect_info ()
{
    local img=$1 kv got
    shift
    for kv in "$@"; do
        got=$(info "$img" "${kv%%=*}")
        [ "$got" = "${kv#*=}" ] ||
            fail "$(basename "$img"): qemu-img info ${kv%%=*} is '$got', expected '${kv#*=}'"
    done
    echo "info OK: $(basename "$img"): $*"
}

# check_clean IMG: qemu-img check finds no errors, corruptions or leaks.
check_clean ()
{
    local out
    out=$(qemu-img check --output=json "$1") ||
        fail "qemu-img check $(basename "$1") failed: $out"
    "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
bad = {k: d.get(k, 0) for k in ("check-errors", "corruptions", "leaks",
                                 "corruptions-fixed", "leaks-fixed")}
if any(bad.values()):
    sys.exit("qemu-img check: %s" % bad)' "$out" ||
        fail "qemu-img check $(basename "$1") is not clean: $out"
    echo "check OK: $(basename "$1")"
}

# reads_zero IMG: qemu-img compare with a raw file of zeros, same size.
reads_zero ()
{
    local size
    size=$(info "$1" virtual-size)
    rm -f "$tmpdir/zero.raw"
    truncate -s "$size" "$tmpdir/zero.raw"
    qemu-img compare -q -f qcow2 -F raw "$1" "$tmpdir/zero.raw" ||
        fail "$(basename "$1") does not read as $size zero bytes"
    rm -f "$tmpdir/zero.raw"
}
