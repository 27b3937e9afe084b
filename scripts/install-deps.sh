#!/usr/bin/env bash
# Install whatever the build and the test suite need and is missing
# (Debian 12).  Runs apt-get as root, or through sudo.
set -e
# Extra package names may be given as arguments (e.g. valgrind).
need=("$@")
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkgconfig() { pkg-config --exists "$1" 2>/dev/null; }
have_cmd cc          || need+=(gcc)
have_cmd make        || need+=(make)
have_cmd pkg-config  || need+=(pkg-config)
have_cmd pod2man     || need+=(perl)
have_cmd nbdkit      || need+=(nbdkit)
[ -f /usr/include/nbdkit-plugin.h ] || need+=(nbdkit-plugin-dev)
have_cmd nbdinfo     || need+=(libnbd-bin)
have_cmd nbdsh       || need+=(libnbd-bin)
/usr/bin/python3 -c 'import nbd' 2>/dev/null || need+=(python3-libnbd)
have_cmd qemu-img    || need+=(qemu-utils)
have_cmd qemu-io     || need+=(qemu-utils)
have_pkgconfig zlib    || need+=(zlib1g-dev)
have_pkgconfig libzstd || need+=(libzstd-dev)
have_pkgconfig libdeflate || need+=(libdeflate-dev)
have_cmd timeout     || need+=(coreutils)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "install-deps: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
