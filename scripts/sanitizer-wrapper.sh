#!/bin/sh
# sanitizer-wrapper.sh DIR: put scripts/sanitizer-nbdkit.sh into DIR as
# "nbdkit" (see that script); the caller exports QCX_SAN_PRELOAD.
set -e
mkdir -p "$1"
ln -sf "$(cd "$(dirname "$0")" && pwd)/sanitizer-nbdkit.sh" "$1/nbdkit"
