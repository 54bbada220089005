#!/usr/bin/env bash
# The big PNG and JPEG inputs: a 1-gigapixel PNG and a 200-megapixel JPEG (the real-photo mosaic
# of compare/real_mosaic.py, made once into the cache), each filtered by
# `chunkmeans run IN OUT.png -k K` at the default memory budget, under /usr/bin/time -v. Prints
# wall time and peak RSS, and checks, PASS or FAIL: peak RSS <= 300 MiB (the issue's target for
# these two inputs), the output a valid PNG (pngcheck -q) of the input's size, and at most K
# colours in it.
#
# usage: benchmarks/formats_big.sh [BUILD_DIR]         (default BUILD_DIR: build)
# environment:
#   INPUTS  inputs to run, in order (default "png1gp jpeg200"): png1gp = 40000x25000 PNG,
#           jpeg200 = 17320x11547 JPEG (200.0 MP), or pngWIDTHxHEIGHT / jpegWIDTHxHEIGHT
#           (a quick try: INPUTS="png2000x1500 jpeg2000x1500")
#   K       number of colours (default 8)
#   CM_ARGS extra `chunkmeans run` arguments (the RSS check is only judged at the default
#           budget: with --memory in CM_ARGS it says "not judged")
#   COLORS=0  do not count the output's colours (a 1 GP palette PNG takes about a minute)
#   KEEP=1  keep the outputs and logs (default: the work directory is deleted at the end)
#   WORK_DIR where the outputs go (default: a new directory under ${TMPDIR:-/tmp})
#   IMAGE_CACHE  where the inputs are kept across runs, keyed by their recipe (default
#           ${XDG_CACHE_HOME:-~/.cache}/chunkmeans-compare, shared with compare.sh); a run
#           links them into its work directory and reads them only
#   TIMEOUT seconds after which chunkmeans is stopped and reported failed (default 3600)
#   PYTHON  the Debian python (default /usr/bin/python3), CHUNKMEANS (binary)
# Run as root on Debian 12, it installs what is missing with apt-get: time, pngcheck,
# libjpeg-turbo-progs (cjpeg makes the JPEG), python3-numpy, python3-skimage, python3-pil.
# Exit status: 0 when every check passed, 1 otherwise.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
helpers=$here/compare
build=${1:-build}
inputs=${INPUTS:-"png1gp jpeg200"}
k=${K:-8}
py=${PYTHON:-/usr/bin/python3}
timeout_s=${TIMEOUT:-3600}
image_cache=${IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chunkmeans-compare}
read -r -a cm_args <<<"${CM_ARGS:-}"

say() { echo "formats_big: $*" >&2; }
die() {
    say "$*"
    exit 1
}
# shellcheck source=benchmarks/common.sh
. "$here/common.sh"

if ! [[ $k =~ ^[0-9]+$ ]] || ((k < 1)); then die "K must be a positive integer, not '$k'"; fi
[[ $timeout_s =~ ^[0-9]+$ ]] || die "TIMEOUT must be a number of seconds"

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing (root + apt-get), as compare.sh does.

py_has() { "$py" -c "import $1" >/dev/null 2>&1; }
pkg_missing() { # PACKAGE: is its tool missing?
    case $1 in
    time) [[ ! -x /usr/bin/time ]] ;;
    coreutils) ! command -v timeout >/dev/null 2>&1 ;;
    pngcheck) ! command -v pngcheck >/dev/null 2>&1 ;;
    libjpeg-turbo-progs) ! command -v cjpeg >/dev/null 2>&1 ;;
    python3-numpy) ! py_has numpy ;;
    python3-skimage) ! py_has skimage.data ;;
    python3-pil) ! py_has PIL.Image ;;
    esac
}
packages=(time coreutils pngcheck python3-numpy python3-skimage python3-pil)
case " $inputs " in *" jpeg"*) packages+=(libjpeg-turbo-progs) ;; esac
missing=()
for p in "${packages[@]}"; do pkg_missing "$p" && missing+=("$p"); done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        progress "installing ${missing[*]} (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 &&
                apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; }
    fi
    still=()
    for p in "${missing[@]}"; do pkg_missing "$p" && still+=("$p"); done
    # pngcheck only makes one check: without it that check says "not available".
    for p in "${still[@]}"; do
        [[ $p == pngcheck ]] && continue
        die "missing ${still[*]}: install them (Debian: apt-get install ${still[*]})"
    done
fi

chunkmeans_src=$(find_exe "${CHUNKMEANS:-}" "$build/chunkmeans" "$build/cli/chunkmeans") ||
    die "no chunkmeans in $build/cli or $build (build it: meson compile -C $build) or set CHUNKMEANS"

# ---------------------------------------------------------------------------------------------
# Work directory: ours to delete unless KEEP=1.

make_work cm-formats # the inputs in it are links: the cache stays as it was
chunkmeans=$(copy_exe "$chunkmeans_src" chunkmeans) || exit 1


input_dims() { # INPUT: "FORMAT WIDTH HEIGHT"
    case $1 in
    png1gp) echo "png 40000 25000" ;;
    jpeg200) echo "jpeg 17320 11547" ;; # 3:2, 199.99 MP
    png[1-9]*x[1-9]* | jpeg[1-9]*x[1-9]*)
        [[ $1 =~ ^(png|jpeg)([0-9]+)x([0-9]+)$ ]] &&
            echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}" ;;
    *) return 1 ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Header.

budget="default budget"
[[ " ${cm_args[*]} " == *" --memory "* || " ${cm_args[*]} " == *" --memory="* ]] &&
    budget="CM_ARGS sets --memory"
cm_line="chunkmeans run IN OUT.png -k $k${cm_args[*]:+ ${cm_args[*]}} ($budget, -j$(nproc) unless said)"
echo "== chunkmeans on big PNG and JPEG inputs: $inputs; $cm_line"
echo "inputs: $("$py" "$helpers/real_mosaic.py" describe png 2>/dev/null | sed 's/; PNG,.*//')"
echo "  PNG: $("$py" "$helpers/real_mosaic.py" describe png 2>/dev/null | sed 's/.*; PNG, /PNG, /');" \
    "JPEG: cjpeg -quality 90 ($(cjpeg -version 2>&1 | head -n 1)); cached in $image_cache"
echo "host: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo) GiB RAM," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); work dir: $work"
echo "chunkmeans: $chunkmeans_src ($("$chunkmeans" --version 2>/dev/null | head -n 1))"
awk '{ if ($1 > 0.5) printf "warning: load average %s before the run: other work on the machine makes the times noisy\n", $1 }' /proc/loadavg
echo

# ---------------------------------------------------------------------------------------------
# One input.

declare -A WALL RSS CPU NOTE COLORS INSIZE OUTSIZE
ran=()

# check NAME WHAT MEASURED VERDICT: one line of the results, kept for the end, its verdict
# (PASS, FAIL, "not available", "not judged") counted.
checks=()
declare -A COUNT=([PASS]=0 [FAIL]=0 ["not available"]=0 ["not judged"]=0)
check() {
    checks+=("$(printf '  %-14s %-40s %-38s %s' "$1" "$2" "$3" "$4")")
    COUNT[$4]=$((COUNT[$4] + 1))
}

run_input() {
    local name=$1 fmt w h dir in out cached rc ext
    read -r fmt w h <<<"$(input_dims "$name")"
    dir=$work/$name
    mkdir -p "$dir"
    ext=png
    [[ $fmt == jpeg ]] && ext=jpg
    in=$dir/in.$ext
    out=$dir/out.png
    ran+=("$name")

    # Made once into the cache (the 1 GP PNG: several minutes), then linked here and only read.
    progress "$name: ${w}x${h} $fmt from $image_cache (made there if missing)"
    local t0=$SECONDS
    if ! cached=$("$py" "$helpers/real_mosaic.py" cached "$image_cache" "$w" "$h" "$fmt" \
        2>"$dir/generate.log") || [[ ! -f $cached ]]; then
        NOTE[$name]="input not made: $(last_words "$dir/generate.log")"
        progress "$name: ${NOTE[$name]}"
        check "$name" "chunkmeans run" "${NOTE[$name]}" FAIL
        return 1
    fi
    grep -q ' done, ' "$dir/generate.log" && progress "$name: made in $((SECONDS - t0)) s: $cached"
    ln -f "$cached" "$in" 2>/dev/null || ln -sf "$cached" "$in" || die "cannot link $cached into $dir"
    INSIZE[$name]=$(stat -L -c %s "$in")

    # From a warm page cache, as compare.sh times every tool.
    cat "$in" >/dev/null
    local cmd=("$chunkmeans" run "$in" "$out" -k "$k" "${cm_args[@]}" --progress never)
    echo "${cmd[*]}" >"$dir/chunkmeans.cmd"
    progress "$name: chunkmeans run -> PNG: running"
    /usr/bin/time -v -o "$dir/chunkmeans.time" timeout -k 30 "$timeout_s" "${cmd[@]}" \
        >"$dir/chunkmeans.log" 2>&1
    rc=$?
    if ((rc != 0)); then
        NOTE[$name]="exit $rc: $(last_words "$dir/chunkmeans.log")"
        ((rc == 124)) && NOTE[$name]="timed out after $timeout_s s"
        progress "$name: FAILED (${NOTE[$name]}); log: $dir/chunkmeans.log"
        check "$name" "chunkmeans run" "${NOTE[$name]}" FAIL
        rm -f "$out"
        return 1
    fi
    WALL[$name]=$(wall_s "$dir/chunkmeans.time")
    RSS[$name]=$(rss_mib "$dir/chunkmeans.time")
    CPU[$name]=$(cpu_pct "$dir/chunkmeans.time")
    OUTSIZE[$name]=$(stat -c %s "$out")
    progress "$name: ${WALL[$name]} s, ${RSS[$name]} MiB peak"

    if [[ $budget != "default budget" ]]; then
        check "$name" "peak RSS <= 300 MiB (default budget)" "${RSS[$name]} MiB (CM_ARGS: --memory)" \
            "not judged"
    elif le "${RSS[$name]}" 300; then
        check "$name" "peak RSS <= 300 MiB (default budget)" "${RSS[$name]} MiB" PASS
    else
        check "$name" "peak RSS <= 300 MiB (default budget)" "${RSS[$name]} MiB" FAIL
    fi

    # pngcheck reads every chunk and inflates the image data: CRCs, zlib stream, row lengths.
    if command -v pngcheck >/dev/null 2>&1; then
        progress "$name: pngcheck -q"
        if pngcheck -q "$out" >"$dir/pngcheck.log" 2>&1; then
            check "$name" "output a valid PNG (pngcheck -q)" "no errors" PASS
        else
            check "$name" "output a valid PNG (pngcheck -q)" "$(last_words "$dir/pngcheck.log" | cut -c1-60)" \
                FAIL
        fi
    else
        check "$name" "output a valid PNG (pngcheck -q)" "no pngcheck (apt-get install pngcheck)" \
            "not available"
    fi

    # Size and colours: the output streamed by compare/colors.py (a palette PNG as its indices).
    local c size n
    if [[ ${COLORS:-1} == 0 ]]; then
        check "$name" "output ${w}x${h}, at most $k colours" "not counted (COLORS=0)" \
            "not available"
    else
        progress "$name: counting the output's colours"
        t0=$SECONDS
        if c=$("$py" "$helpers/colors.py" "$out" 2>"$dir/colors.log"); then
            size=$(awk '$1 == "size" { print $2 }' <<<"$c")
            n=$(awk '$1 == "colors" { print $2 }' <<<"$c")
            COLORS[$name]=$n
            progress "$name: $size, $n colours (counted in $((SECONDS - t0)) s)"
            if [[ $size == "${w}x${h}" ]] && ((n <= k)); then
                check "$name" "output ${w}x${h}, at most $k colours" "$size, $n colours" PASS
            else
                check "$name" "output ${w}x${h}, at most $k colours" "$size, $n colours" FAIL
            fi
        else
            check "$name" "output ${w}x${h}, at most $k colours" \
                "count failed: $(last_words "$dir/colors.log" | cut -c1-50)" FAIL
        fi
    fi
    [[ ${KEEP:-0} == 1 ]] || rm -f "$out"
    return 0
}

for name in $inputs; do
    if input_dims "$name" >/dev/null; then
        run_input "$name"
    else
        say "unknown input '$name' (png1gp, jpeg200, pngWIDTHxHEIGHT or jpegWIDTHxHEIGHT): skipped"
    fi
done
((${#ran[@]})) || die "no input to run"

# ---------------------------------------------------------------------------------------------
# Report.

echo
echo "== $cm_line"
printf '%-14s %-18s %11s %11s %9s %9s %6s %8s\n' input size "in" "out" "wall s" "RSS MiB" CPU colours
for name in "${ran[@]}"; do
    read -r fmt w h <<<"$(input_dims "$name")"
    if [[ -n ${WALL[$name]:-} ]]; then
        printf '%-14s %-18s %11s %11s %9s %9s %6s %8s\n' "$name" "${w}x${h} $fmt" \
            "$(human "${INSIZE[$name]}")" "$(human "${OUTSIZE[$name]}")" "${WALL[$name]}" \
            "${RSS[$name]}" "${CPU[$name]}" "${COLORS[$name]:--}"
    else
        printf '%-14s %-18s %11s %11s %9s  %s\n' "$name" "${w}x${h} $fmt" \
            "$(human "${INSIZE[$name]:-0}")" - failed "${NOTE[$name]:-}"
    fi
done
echo
echo "== checks"
for line in "${checks[@]}"; do echo "$line"; done
echo "   ${COUNT[PASS]} PASS, ${COUNT[FAIL]} FAIL, $((COUNT["not available"] + COUNT["not judged"])) not judged"
((COUNT[FAIL] == 0))
