#!/usr/bin/env bash
# The manual page and the README:
#   - podchecker reports no errors and no warnings;
#   - pod2man (as the Makefile runs it) renders without any message;
#   - the plugin's parameters documented under PARAMETERS are exactly
#     the ones `nbdkit PLUGIN --help` lists, and the filter's documented
#     under FILTER PARAMETERS exactly the ones
#     `nbdkit --filter=FILTER PLUGIN --help` lists for the filter;
#   - the page has the sections it promises;
#   - README.md only points at files that exist, shows `make run` and
#     `make check`, and names every plugin and filter parameter.
. "$(dirname "$0")/functions.sh"
set -euo pipefail
requires podchecker pod2man nbdkit
[ -f "$PLUGIN" ] || fail "plugin not built: $PLUGIN"
FILTER=${QCX_FILTER:-$top/filter/nbdkit-qcow2xchain-filter.so}
[ -f "$FILTER" ] || fail "filter not built: $FILTER"

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

for s in NAME SYNOPSIS DESCRIPTION PARAMETERS "SUPPORTED FORMATS" WRITING \
         "CREATING IMAGES" EXTENTS "BACKING FILES" "THE QCOW2XCHAIN FILTER" \
         "FILTER PARAMETERS" ERRORS LIMITS EXAMPLES FILES "SEE ALSO"; do
    grep -q "^=head1 $s\$" "$pod" || fail "no =head1 $s section"
done

# Parameters documented in section $1 (=item B<key=...>).
doc_params_of ()
{
    sed -n "/^=head1 $1\$/,/^=head1 /p" "$pod" |
        sed -n 's/^=item \[\{0,1\}B<\([a-z0-9-]*\)=.*/\1/p' | sort -u
}
# Parameters in config_help lines ("key=VALUE   description" or
# "[file=]IMAGE ...") of --help output, from the line matching $1 to the
# line matching $2 (or the end).
help_params_of ()
{
    sed -n "/$1/,/$2/p" "$3" |
        sed -n 's/^\[\{0,1\}\([a-z][a-z0-9-]*\)=.*/\1/p' | sort -u
}
# same_sets WHAT DOCUMENTED HELP
same_sets ()
{
    local p
    echo "$1: documented:" $2
    echo "$1: --help:" $3
    [ -n "$2" ] || fail "$1: no parameters documented"
    [ -n "$3" ] || fail "$1: no parameters in --help"
    for p in $3; do
        grep -qx -- "$p" <<< "$2" || fail "$1: parameter $p= is not documented"
    done
    for p in $2; do
        grep -qx -- "$p" <<< "$3" ||
            fail "$1: documented parameter $p= is not in --help"
    done
}

nbdkit "$PLUGIN" --help >"$tmpdir/help.out" 2>&1 || true
same_sets plugin "$(doc_params_of PARAMETERS)" \
    "$(help_params_of '^plugin: ' '^$' "$tmpdir/help.out")"

nbdkit --filter="$FILTER" "$PLUGIN" --help >"$tmpdir/fhelp.out" 2>&1 || true
same_sets filter "$(doc_params_of 'FILTER PARAMETERS')" \
    "$(help_params_of '^filter: ' '^plugin: ' "$tmpdir/fhelp.out" | grep -v '^$' || true)"
# The filter's --help must not have swallowed the plugin's lines.
grep -q '^plugin: ' "$tmpdir/fhelp.out" || fail "no plugin: section in the filter's --help"

# README: files it names exist.
for f in scripts/run.sh scripts/make-demo-image.sh scripts/install-deps.sh \
         tests/run-tests.sh tests/functions.sh nbdkit-qcow2x.pod; do
    grep -qF "$f" "$top/README.md" || fail "README.md does not mention $f"
    [ -e "$top/$f" ] || fail "README.md mentions $f, which does not exist"
done
for d in plugin filter common tests scripts; do
    grep -qF "\`$d/\`" "$top/README.md" || fail "README.md layout misses $d/"
done
# README: the two commands, and every parameter in its summary.
for w in "make run" "make run IMAGE=" "make check" "--filter=qcow2xchain" \
         "create=true" "nbdcopy -- [ nbdkit -r file"; do
    grep -qF -- "$w" "$top/README.md" || fail "README.md does not mention '$w'"
done
for p in $(help_params_of '^plugin: ' '^$' "$tmpdir/help.out") \
         $(help_params_of '^filter: ' '^plugin: ' "$tmpdir/fhelp.out"); do
    grep -qF -- "$p=" "$top/README.md" || fail "README.md does not mention $p="
done
echo "README OK"
