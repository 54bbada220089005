#!/usr/bin/env bash
# Batch jobs, timed: `apply` of one model to many files in one graph against one `apply`
# process per file (and, with BASE=, against another chunkmeans binary), and `run -k 2,5,10` in
# one pass against three runs. Wall time and peak RSS under /usr/bin/time -v; ratios are to the
# first row of each section, measured in the same run.
#
#   benchmarks/batch.sh [BUILD]      (default build; needs BUILD/chunkmeans, BUILD/benchmarks/cm-mkimage)
#
# Environment: SMALL (files of 400 x 300, default 200), LARGE (files of 2000 x 1500, default 16),
# REPEAT (runs of each row, the fastest counts; default 3),
# KW x KH (the k-list image, default 8000 x 5000), J (threads, default all cores), BASE (an
# older chunkmeans to compare apply with; BASE_NAME names it in the table), DIR (scratch, default a new directory in /tmp, kept
# when given).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
cm=$build/chunkmeans mk=$build/benchmarks/cm-mkimage
[[ -x $cm && -x $mk ]] || { echo "batch.sh: build chunkmeans first (meson compile -C $build)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "batch.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
SMALL=${SMALL:-200} LARGE=${LARGE:-16} KW=${KW:-8000} KH=${KH:-5000} J=${J:-$(nproc)}
REPEAT=${REPEAT:-3}
if [[ -n ${DIR:-} ]]; then mkdir -p "$DIR"; dir=$DIR; else
    dir=$(mktemp -d /tmp/cm-bench-batch.XXXXXX)
    trap 'rm -rf "$dir"' EXIT
fi

# timed NAME CMD...: runs CMD REPEAT times under /usr/bin/time -v; sets wall (the fastest run:
# the machine is shared, and noise only ever adds time) and rss (the largest, MiB).
timed() {
    local name=$1 i w r
    shift
    wall= rss=0
    for ((i = 0; i < REPEAT; i++)); do
        /usr/bin/time -v -o "$dir/$name.time" "$@" >"$dir/$name.log" 2>&1 ||
            { echo "batch.sh: $name failed:" >&2; cat "$dir/$name.log" >&2; exit 1; }
        w=$(awk -F': ' '/Elapsed/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$dir/$name.time")
        r=$(awk -F': ' '/Maximum resident/ {printf "%.1f", $2 / 1024}' "$dir/$name.time")
        wall=$(awk -v a="${wall:-$w}" -v b="$w" 'BEGIN { print (b < a ? b : a) }')
        rss=$(awk -v a="$rss" -v b="$r" 'BEGIN { print (b > a ? b : a) }')
    done
}
row() { awk -v n="$1" -v w="$2" -v b="$3" -v r="$4" 'BEGIN { printf "%-44s %8.2f %8.2fx %9s\n", n, w, b / w, r }'; }
header() { printf '\n%s\n%-44s %8s %9s %9s\n' "$1" "" "wall s" "speed-up" "RSS MiB"; }

# one_by_one MODEL OUTDIR FILES...: one apply process per file, one after another.
one_by_one() {
    local model=$1 out=$2 f
    shift 2
    mkdir -p "$out"
    for f in "$@"; do "$cm" apply "$model" "$f" "$out/${f##*/}" -j "$J" -q --overwrite; done
}
export -f one_by_one
export cm J

batch() { # batch NAME COUNT W H
    local name=$1 n=$2 w=$3 h=$4 i
    mkdir -p "$dir/$name"
    for ((i = 1; i <= n; i++)); do
        local f=$dir/$name/$(printf 'f%04d.tif' "$i")
        [[ -e $f ]] || "$mk" "$f" --width "$w" --height "$h" --pattern photo --seed "$i" --tile 256 \
            --compression deflate --quiet
    done
    local files=("$dir/$name"/f*.tif)
    "$cm" fit "${files[@]}" -k 8 -o "$dir/$name.json" -j "$J" -q
    header "apply: $n files of $w x $h (deflate, k = 8, -j $J)"
    rm -rf "$dir/$name.one" "$dir/$name.graph" "$dir/$name.base"
    # --overwrite: every repetition writes every file
    timed "$name-one" bash -c 'one_by_one "$@"' _ "$dir/$name.json" "$dir/$name.one" "${files[@]}"
    local base=$wall
    row "one apply process per file" "$wall" "$base" "$rss"
    timed "$name-graph" "$cm" apply "$dir/$name.json" "${files[@]}" --out-dir "$dir/$name.graph" -j "$J" -q --overwrite
    row "apply --out-dir: one graph" "$wall" "$base" "$rss"
    if [[ -n ${BASE:-} ]]; then
        timed "$name-base" "$BASE" apply "$dir/$name.json" "${files[@]}" --out-dir "$dir/$name.base" -j "$J" -q --overwrite
        row "apply --out-dir: ${BASE_NAME:-$BASE}" "$wall" "$base" "$rss"
    fi
    for f in "${files[@]}"; do
        cmp -s "$dir/$name.one/${f##*/}" "$dir/$name.graph/${f##*/}" ||
            { echo "batch.sh: ${f##*/}: one graph and one process differ" >&2; exit 1; }
    done
    echo "(outputs of the graph and of one process per file: byte-identical)"
}

batch small "$SMALL" 400 300
batch large "$LARGE" 2000 1500

# ---- several k in one pass ----
in=$dir/k.tif
[[ -e $in ]] || "$mk" "$in" --width "$KW" --height "$KH" --pattern photo --tile 512 --compression deflate --quiet
header "run -k 2,5,10 on $KW x $KH (deflate, -j $J)"
timed k-three bash -c 'for k in 2 5 10; do "$cm" run "$0" "${0%.tif}.one.k$k.tif" -k $k -j "$J" -q --summary "${0%.tif}.s$k.json"; done' "$in"
base=$wall
row "three runs (-k 2, -k 5, -k 10)" "$wall" "$base" "$rss"
timed k-list "$cm" run "$in" "${in%.tif}.list.tif" -k 2,5,10 -j "$J" -q --summary "$dir/list.json"
row "run -k 2,5,10: one sample, one remap pass" "$wall" "$base" "$rss"
for k in 2 5 10; do
    cmp -s "${in%.tif}.one.k$k.tif" "${in%.tif}.list.k$k.tif" ||
        { echo "batch.sh: k=$k: the list and the single run differ" >&2; exit 1; }
done
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
many = json.load(open(f"{d}/list.json"))
ones = [json.load(open(f"{d}/k.s{k}.json")) for k in (2, 5, 10)]
print("(outputs of the list and of each run: byte-identical)")
print(f"chunk reads: list: sample {many['fit_chunks_read']} + remap {many['chunks_read']} "
      f"of {many['chunks']} chunks; three runs: sample {sum(o['fit_chunks_read'] for o in ones)} "
      f"+ remap {sum(o['chunks_read'] for o in ones)}")
for r in many["runs"]:
    print(f"  k={r['k']:>2}  inertia {r['inertia']:.6g}  MSE {r['mean_squared_error']:.2f}")
PY
