#!/bin/sh
# valgrind-wrapper.sh DIR: write DIR/nbdkit, an nbdkit run under
# valgrind memcheck that fails (exit 99) on any memory error or definite
# leak.  Only nbdkit runs under valgrind; the tools around it do not.
set -e
dir=$1
mkdir -p "$dir"
cat > "$dir/nbdkit" <<'WRAP'
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full \
     --errors-for-leak-kinds=definite --show-leak-kinds=definite \
     --trace-children=no --child-silent-after-fork=yes \
     /usr/bin/nbdkit "$@"
WRAP
chmod +x "$dir/nbdkit"
