# shellcheck shell=bash
# What the benchmark scripts share: finding the binaries, a work directory of their own, and
# reading the reports of /usr/bin/time -v. Sourced by compare.sh, formats_big.sh and run_1gp.sh,
# after they define die().

progress() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

find_exe() { # first executable among the arguments
    local f
    for f in "$@"; do
        if [[ -n $f && -x $f && ! -d $f ]]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

# make_work PREFIX: sets work to a new directory under WORK_DIR (made if missing) or TMPDIR,
# deleted at exit unless KEEP=1 (inputs linked into it from a cache are left as they are).
make_work() {
    if [[ -n ${WORK_DIR:-} ]]; then
        mkdir -p "$WORK_DIR" || die "cannot create $WORK_DIR"
        work=$(mktemp -d "$WORK_DIR/$1.XXXXXX") || die "cannot create a directory in $WORK_DIR"
    else
        work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || die "cannot create a work directory"
    fi
    trap cleanup_work EXIT
    trap 'exit 130' INT TERM
}
cleanup_work() {
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "kept: $work"
    else
        rm -rf "$work"
    fi
}

# copy_exe SRC NAME: a copy of a binary in $work/bin, so that a rebuild during the run does not
# mix versions; prints its path.
copy_exe() {
    mkdir -p "$work/bin"
    cp "$1" "$work/bin/$2" || die "cannot copy $1"
    echo "$work/bin/$2"
}

wall_s() { # seconds from "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.34"
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.2f", s }' "$1"
}
rss_mib() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
cpu_pct() { awk -F': ' '/Percent of CPU/ { print $2 }' "$1"; }
last_words() { # FILE: the last non-empty line, shortened
    grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr -s '[:space:]' ' ' | cut -c1-90 |
        sed 's/ *$//'
}
human() { numfmt --to=iec-i --suffix=B --format=%.2f "$1"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
