#!/usr/bin/env bash
# The manual page and the README:
#   - podchecker reports no errors and no warnings;
#   - pod2man (as the Makefile runs it) renders without any message;
#   - every parameter the plugin lists in `nbdkit PLUGIN --help` is
#     documented under PARAMETERS, and every documented parameter is
#     accepted by the plugin;
#   - the page has the sections it promises;
#   - README.md only points at files that exist.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires podchecker pod2man nbdkit
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN"

pod=$top/nbdkit-qcow2x.pod

podchecker -warnings -warnings "$pod" >"$tmpdir/podchecker.out" 2>&1 ||
    { cat "$tmpdir/podchecker.out"; fail "podchecker failed"; }
cat "$tmpdir/podchecker.out"
if grep -qiE 'warning|error' "$tmpdir/podchecker.out"; then
    fail "podchecker reported warnings"
fi

pod2man --errors=stderr --section=1 --center=qcow2x --release=qcow2x \
        --name=nbdkit-qcow2x "$pod" >"$tmpdir/page.1" 2>"$tmpdir/pod2man.err" ||
    { cat "$tmpdir/pod2man.err"; fail "pod2man failed"; }
if [ -s "$tmpdir/pod2man.err" ]; then
    cat "$tmpdir/pod2man.err"
    fail "pod2man printed warnings"
fi
# groff, when there: the rendered page must not produce warnings either.
if command -v groff >/dev/null 2>&1; then
    groff -man -Tutf8 -ww -z "$tmpdir/page.1" 2>"$tmpdir/groff.err" || true
    if [ -s "$tmpdir/groff.err" ]; then
        cat "$tmpdir/groff.err"
        fail "groff warnings rendering the page"
    fi
fi
echo "pod renders cleanly"

for s in NAME SYNOPSIS DESCRIPTION PARAMETERS "SUPPORTED FORMATS" EXTENTS \
         "BACKING FILES" ERRORS LIMITS EXAMPLES FILES "SEE ALSO"; do
    grep -q "^=head1 $s\$" "$pod" || fail "no =head1 $s section"
done

# Parameters: documented ones (=item B<key=> under PARAMETERS) ...
doc_params=$(sed -n '/^=head1 PARAMETERS/,/^=head1 /p' "$pod" |
             sed -n 's/^=item \[\{0,1\}B<\([a-z0-9-]*\)=.*/\1/p' | sort -u)
echo "documented parameters:" $doc_params
[ -n "$doc_params" ] || fail "no parameters found in PARAMETERS"
# ... and the ones the plugin lists in its --help (config_help lines
# look like "key=VALUE   description" or "[file=]IMAGE ...").
nbdkit "$PLUGIN" --help >"$tmpdir/help.out" 2>&1 || true
help_params=$(sed -n '/^plugin: /,$p' "$tmpdir/help.out" |
              sed -n 's/^\[\{0,1\}\([a-z][a-z0-9-]*\)=.*/\1/p' | sort -u)
echo "plugin --help parameters:" $help_params
for p in $help_params; do
    echo "$doc_params" | grep -qx "$p" || fail "parameter $p= is not documented"
done
for p in $doc_params; do
    echo "$help_params" | grep -qx "$p" ||
        fail "documented parameter $p= is not in the plugin's --help"
done

# README: files it names exist.
for f in scripts/run.sh scripts/make-demo-image.sh scripts/install-deps.sh \
         tests/run-tests.sh tests/functions.sh nbdkit-qcow2x.pod; do
    grep -qF "$f" "$top/README.md" || fail "README.md does not mention $f"
    [ -e "$top/$f" ] || fail "README.md mentions $f, which does not exist"
done
for d in plugin filter common tests scripts; do
    grep -qF "\`$d/\`" "$top/README.md" || fail "README.md layout misses $d/"
done
echo "README OK"
