#!/bin/sh
# sanitizer-wrapper.sh DIR "LIBS": write DIR/nbdkit, an nbdkit that
# preloads the sanitizer runtime LIBS.  nbdkit is not built with the
# sanitizer, so an instrumented plugin or filter needs the runtime
# loaded first; preloading it only into nbdkit (not into qemu-img,
# python, ...) keeps the rest of the test suite unaffected.
set -e
dir=$1
libs=$2
mkdir -p "$dir"
cat > "$dir/nbdkit" <<WRAP
#!/bin/sh
LD_PRELOAD="$libs\${LD_PRELOAD:+ \$LD_PRELOAD}" exec /usr/bin/nbdkit "\$@"
WRAP
chmod +x "$dir/nbdkit"
