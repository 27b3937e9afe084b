#!/usr/bin/env bash
# BACKING: the plugin alone must refuse an image that names a backing file
# (nbdkit fails at start-up, before serving, with an error naming the
# backing file and --filter=qcow2xchain), whether or not the backing file
# exists.  With layer-only=true it serves the layer alone, never opening
# the backing file: bytes equal qemu-img convert of the json: backing:null
# form, deferred regions (including unallocated subclusters whose host
# bytes hold 0xA5) read as zeros.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires qemu-img qemu-io nbdkit nbdcopy cmp grep
requires_python_nbd

mk="$PY $srcdir/lib/mkimg.py"
cd "$tmpdir"
$mk base my-base-image.qcow2 2M
qemu-img create -q -f qcow2 -b my-base-image.qcow2 -F qcow2 top.qcow2 2M
qemu-io -f qcow2 top.qcow2 -c "write -q -P 0x5c 100000 100000"

refused ()
{
    local img=$1 what=$2
    rm -f ran
    if qcx_nbdkit "$img" --run 'touch ran' 2>err; then
        cat err
        fail "$what: nbdkit started on an image with a backing file"
    fi
    cat err
    [ ! -e ran ] || fail "$what: nbdkit served the image before failing"
    grep -q 'qcow2xchain' err || fail "$what: error does not mention qcow2xchain"
    grep -q 'my-base-image.qcow2' err ||
        fail "$what: error does not name the backing file my-base-image.qcow2"
    grep -qi 'error' err || fail "$what: no error line"
}

refused top.qcow2 "backing file present"
refused "$tmpdir/top.qcow2" "absolute image path"
refused file=top.qcow2 "file= key"

# Backing file missing: still refused with its name...
mv my-base-image.qcow2 elsewhere.qcow2
refused top.qcow2 "backing file missing"
# ... and layer-only=true does not need it.
qcx_compare_with_qemu top.qcow2 layer-only=true
mv elsewhere.qcow2 my-base-image.qcow2

# Overlays with every (sub)cluster state, served alone.
$mk ext-states over-ext.qcow2 --backing my-base-image.qcow2
qcx_fill_stale over-ext.qcow2 --min-bytes 1
refused over-ext.qcow2 "extended L2 overlay"
qcx_compare_with_qemu over-ext.qcow2 layer-only=true
qcx_random_reads over-ext.qcow2 layer-only=true

$mk std-states over-std.qcow2 --backing my-base-image.qcow2
qcx_fill_stale over-std.qcow2
qcx_compare_with_qemu over-std.qcow2 layer-only=true

# The layer view differs from the chain view (the test is not vacuous).
qcx_qemu_raw over-ext.qcow2 chain.raw
qcx_qemu_raw over-ext.qcow2 layer.raw layer-only
! cmp -s chain.raw layer.raw || fail "test bug: layer and chain views are equal"
