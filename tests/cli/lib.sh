# What the command's test scripts share (sourced by e2e.sh, faults.sh, batch.sh and
# features.sh, after they set `here` to their directory): a scratch directory per case, and
# the helpers that run the command and check what it did. Needs CHUNKMEANS and MKIMAGE.
: "${CHUNKMEANS:?}" "${MKIMAGE:?}" "${PYTHON:=/usr/bin/python3}"

# enter_work NAME: makes a scratch directory, removed on exit, and goes there.
enter_work() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/cm-$1.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    cd "$work" || exit 1
}

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { "$PYTHON" "$here/check.py" "$@" || fail "check $1 $*"; }
mk() { "$MKIMAGE" "$@" --quiet || fail "cm-mkimage $*"; }
cm() { "$CHUNKMEANS" "$@"; }
# expect CODE CMD...: runs CMD, requires exit CODE, keeps stdout and stderr in out.txt, err.txt
expect() {
    local want=$1
    shift
    "$@" >out.txt 2>err.txt
    local got=$?
    [ "$got" -eq "$want" ] || { cat err.txt >&2; fail "$* exited $got, expected $want"; }
    no_sanitizer_report err.txt
}
no_sanitizer_report() {
    ! grep -q -E "Sanitizer|runtime error:" "$1" || { cat "$1" >&2; fail "sanitizer report"; }
}
said() { grep -q -- "$1" err.txt || fail "stderr lacks '$1': $(tr '\r' '\n' <err.txt)"; }
no_temporaries() { # no temporary file left anywhere under the directory
    local parts
    parts=$(find . -name '*.part-*' | head -5)
    [ -z "$parts" ] || fail "temporary files left: $parts"
}
no_outputs() { # the files do not exist, and no temporary file is left
    for f in "$@"; do [ ! -e "$f" ] || fail "$f was left behind"; done
    no_temporaries
}
