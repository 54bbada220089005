#!/usr/bin/env bash
# Side-by-side comparison of `chunkmeans run` with other ways of k-colour filtering a big TIFF
# (scikit-learn, a Dask pipeline, Orfeo ToolBox, ImageMagick) and with the codec floors (vips
# copy, tiffcp, decode alone + encode alone; vips on one core), on generated photos and on
# mosaics of real photographs, in one run: wall time and peak RSS under /usr/bin/time -v, MSE of
# every output against its input, then the issue's targets, judged on the real-photo mosaics.
# PNG sizes have a row set of their own: chunkmeans PNG -> PNG against pngquant and Pillow.
#
# usage: benchmarks/compare.sh [BUILD_DIR]            (default BUILD_DIR: build)
# environment:
#   SIZES   sizes to run, in order (default "100mp real100 png50 1gp real1gp"). Generated
#           photos (cm-mkimage): small = 2000x1500, 100mp = 12500x8000, 1gp = 40000x25000, or
#           WIDTHxHEIGHT. Real-photo mosaics (compare/real_mosaic.py): realsmall = 2000x1500,
#           real100 = 12000x8400, real1gp = 40000x25000, or realWIDTHxHEIGHT; the same as PNG
#           (PNG rows: chunkmeans, pngquant, Pillow): pngsmall = 2000x1500, png50 = 8660x5775,
#           or pngWIDTHxHEIGHT
#   K       number of colours (default 8)
#   SKIP    tools to leave out, space-separated: chunkmeans chunkmeans-j1 chunkmeans-none vips
#           tiffcp decode encode sklearn-minibatch sklearn-kmeans dask otb imagemagick
#           histogram lloyd cog pngquant pillow ("sklearn" skips both sklearn rows, "histogram"
#           lloyd too)
#   KEEP=1  keep the images and logs (default: everything is deleted at the end)
#   WORK_DIR where the images go (default: a new directory under ${TMPDIR:-/tmp})
#   IMAGE_CACHE  where the real-photo mosaics are kept across runs, keyed by their recipe
#           (default ${XDG_CACHE_HOME:-~/.cache}/chunkmeans-compare); a run links them into
#           its work directory and reads them only
#   MEMORY  chunkmeans --memory (default: chunkmeans's own, 256M); OTB gets -ram of the same MB
#   IN_MEMORY_MAX_MP  largest image, in megapixels, for the in-memory tools: scikit-learn,
#           ImageMagick, pngquant and Pillow (default 101: 100mp, real100 and png50)
#   TIMEOUT seconds after which one tool is stopped and reported failed (default 3600)
#   PYTHON  the Debian python (default /usr/bin/python3), CHUNKMEANS, MKIMAGE (binaries)
#   BASE    another chunkmeans binary (an earlier build), timed in the same run right after
#           chunkmeans with the same arguments, in a row named BASE_NAME (default "base")
# Run as root on Debian 12, it installs what is missing with apt-get (see benchmarks/README.md).
# A tool that is missing or fails gives a "not available" / "failed" row; the script goes on.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
helpers=$here/compare
build=${1:-build}
sizes=${SIZES:-"100mp real100 png50 1gp real1gp"}
k=${K:-8}
skip=" ${SKIP:-} "
py=${PYTHON:-/usr/bin/python3}
timeout_s=${TIMEOUT:-3600}
in_memory_max_mp=${IN_MEMORY_MAX_MP:-101}
image_cache=${IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chunkmeans-compare}
ncores=$(nproc)

say() { echo "compare: $*" >&2; }
die() {
    say "$*"
    exit 1
}
# shellcheck source=benchmarks/common.sh
. "$here/common.sh"

if ! [[ $k =~ ^[0-9]+$ ]] || ((k < 1)); then die "K must be a positive integer, not '$k'"; fi
[[ $timeout_s =~ ^[0-9]+$ ]] || die "TIMEOUT must be a number of seconds"
budget_mb=256
cm_mem_args=()
if [[ -n ${MEMORY:-} ]]; then
    cm_mem_args=(--memory "$MEMORY")
    budget_mb=$(numfmt --from=iec "${MEMORY%[bB]}" 2>/dev/null) ||
        die "MEMORY must be a size such as 256M or 1G, not '$MEMORY'"
    budget_mb=$((budget_mb / 1048576))
fi

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing (root + apt-get), then note what is still not there.

declare -A pkg_reason # package -> why it is not there
py_has() { "$py" -c "import $1" >/dev/null 2>&1; }
real_convert() { command -v convert >/dev/null 2>&1 && convert -version 2>/dev/null | grep -q ImageMagick; }
pkg_missing() { # PACKAGE: is its tool missing?
    case $1 in
    time) [[ ! -x /usr/bin/time ]] ;;
    libvips-tools) ! command -v vips >/dev/null 2>&1 ;;
    libtiff-tools) ! command -v tiffcp >/dev/null 2>&1 ;;
    imagemagick) ! real_convert ;;
    python3-numpy) ! py_has numpy ;;
    python3-tifffile) ! py_has tifffile ;;
    python3-zarr) ! py_has zarr ;;
    python3-sklearn) ! py_has sklearn.cluster ;;
    python3-skimage) ! py_has skimage.data ;;
    python3-dask) ! py_has dask.array ;; # Debian 12 has no python3-dask-array: it is in here
    otb-bin) ! command -v otbcli_SOMClassification >/dev/null 2>&1 ;;
    coreutils) ! command -v timeout >/dev/null 2>&1 ;;
    pngquant) ! command -v pngquant >/dev/null 2>&1 ;;
    python3-pil) ! py_has PIL.Image ;;
    esac
}
packages=(time coreutils libtiff-tools libvips-tools imagemagick python3-numpy python3-tifffile
    python3-zarr python3-sklearn python3-dask otb-bin)
case " $sizes " in *" real"* | *" png"*) packages+=(python3-skimage) ;; esac
# The PNG rows: pngquant, and Pillow both as a row and to read PNGs for the MSE.
case " $sizes " in *" png"*) packages+=(pngquant python3-pil) ;; esac
missing=()
for p in "${packages[@]}"; do pkg_missing "$p" && missing+=("$p"); done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        progress "installing ${missing[*]} (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt_log=$(mktemp "${TMPDIR:-/tmp}/cm-compare-apt.XXXXXX")
        if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
            apt-get update >>"$apt_log" 2>&1
            # one at a time, so that one package that cannot be had does not stop the others
            for p in "${missing[@]}"; do
                apt-get install -y --no-install-recommends "$p" >>"$apt_log" 2>&1 ||
                    pkg_reason[$p]="apt-get install $p failed"
            done
        fi
        rm -f "$apt_log"
    else
        for p in "${missing[@]}"; do pkg_reason[$p]="not installed (not root: apt-get install $p)"; done
    fi
    for p in "${missing[@]}"; do
        if pkg_missing "$p"; then
            [[ -n ${pkg_reason[$p]:-} ]] || pkg_reason[$p]="$p installed but its tool is not there"
        else
            unset "pkg_reason[$p]"
        fi
    done
fi
[[ -x /usr/bin/time ]] || die "no /usr/bin/time (GNU time): ${pkg_reason[time]:-}"
command -v timeout >/dev/null 2>&1 || die "no timeout (coreutils)"
"$py" -c 'import numpy, tifffile, zarr' >/dev/null 2>&1 ||
    die "$py cannot import numpy, tifffile and zarr (python3-numpy python3-tifffile python3-zarr):" \
        "needed for the MSE"

mkimage=$(find_exe "${MKIMAGE:-}" "$build/benchmarks/cm-mkimage") ||
    die "no cm-mkimage in $build/benchmarks (build it: meson compile -C $build) or set MKIMAGE"
chunkmeans_src=$(find_exe "${CHUNKMEANS:-}" "$build/chunkmeans" "$build/cli/chunkmeans") ||
    die "no chunkmeans in $build/cli or $build (build it: meson compile -C $build) or set CHUNKMEANS"

# ---------------------------------------------------------------------------------------------
# Work directory: ours to delete unless KEEP=1.

make_work cm-compare
chunkmeans=$(copy_exe "$chunkmeans_src" chunkmeans) || exit 1
base=""
if [[ -n ${BASE:-} ]]; then
    [[ -x $BASE && ! -d $BASE ]] || die "BASE=$BASE is not an executable"
    base=$(copy_exe "$BASE" chunkmeans-base) || exit 1
fi

# ---------------------------------------------------------------------------------------------
# Results: keyed "SIZE:TOOL".

declare -A STAT WALL RSS CPU MSE NOTE SAME # SAME[SIZE]: cmp of the -jN and -j1 outputs
tool_order=(chunkmeans chunkmeans-j1 cog gdal-plain gdal-cog vips tiffcp decode chunkmeans-none encode codec
    sklearn-minibatch sklearn-kmeans dask otb imagemagick histogram lloyd)
[[ -n $base ]] && tool_order=(chunkmeans chunkmeans-base "${tool_order[@]:1}")
declare -A LABEL=(
    [chunkmeans]="chunkmeans -j$ncores"
    [chunkmeans-j1]="chunkmeans -j1"
    [chunkmeans-base]="chunkmeans -j$ncores: ${BASE_NAME:-base}"
    [cog]="chunkmeans --cog (overviews auto)"
    [gdal-plain]="gdal_translate -outsize 1%: plain output"
    [gdal-cog]="gdal_translate -outsize 1%: --cog output"
    [vips]="vips copy, one core (floor)"
    [tiffcp]="tiffcp -m 0 -c zip"
    [decode]="decode alone: vips, one core"
    [chunkmeans-none]="chunkmeans --compression none"
    [encode]="encode k-colour: vips, one core"
    [codec]="codec floor: decode + encode"
    [sklearn-minibatch]="sklearn MiniBatchKMeans"
    [sklearn-kmeans]="sklearn KMeans (reference)"
    [dask]="Dask + MiniBatchKMeans"
    [otb]="OTB SOMClassification"
    [imagemagick]="ImageMagick -colors $k"
    [histogram]="chunkmeans --algorithm histogram"
    [lloyd]="chunkmeans --algorithm lloyd"
    [pngquant]="pngquant --nofs $k"
    [pillow]="Pillow MEDIANCUT, kmeans=1"
)
# The rows of a PNG size (PNG in, PNG out), the references of its columns being pngquant's.
png_tool_order=(chunkmeans chunkmeans-j1 pngquant pillow)
[[ -n $base ]] && png_tool_order=(chunkmeans chunkmeans-base "${png_tool_order[@]:1}")

skipped() { # TOOL: named in SKIP (or a prefix of it before '-')
    [[ $skip == *" $1 "* || $skip == *" ${1%%-*} "* ]]
}
set_na() { # SIZE TOOL REASON
    STAT[$1:$2]=na
    NOTE[$1:$2]=$3
}

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# timed SIZE TOOL CMD...: runs CMD under /usr/bin/time -v (and timeout), records the result.
timed() {
    local s=$1 t=$2 rc
    shift 2
    local tf=$dir/$t.time log=$dir/$t.log
    cat "$in" >/dev/null # every tool starts from a warm page cache
    progress "$s: ${LABEL[$t]}: running"
    echo "$*" >"$dir/$t.cmd"
    /usr/bin/time -v -o "$tf" timeout -k 30 "$timeout_s" "$@" >"$log" 2>&1
    rc=$?
    if ((rc == 0)); then
        STAT[$s:$t]=ok
        WALL[$s:$t]=$(wall_s "$tf")
        RSS[$s:$t]=$(rss_mib "$tf")
        CPU[$s:$t]=$(cpu_pct "$tf")
        progress "$s: ${LABEL[$t]}: ${WALL[$s:$t]} s, ${RSS[$s:$t]} MiB peak"
        return 0
    fi
    STAT[$s:$t]=failed
    if ((rc == 124)) || { ((rc == 137)) && le "$timeout_s" "$(wall_s "$tf")"; }; then
        NOTE[$s:$t]="timed out after $timeout_s s"
    elif ((rc == 137)); then
        NOTE[$s:$t]="killed (out of memory?): $(last_words "$log")"
    elif ((rc > 128)); then
        NOTE[$s:$t]="killed by signal $((rc - 128)): $(last_words "$log")"
    else
        NOTE[$s:$t]="exit $rc: $(last_words "$log")"
        [[ -s $log ]] || NOTE[$s:$t]="exit $rc, no message"
    fi
    progress "$s: ${LABEL[$t]}: FAILED (${NOTE[$s:$t]}); log: $log"
    return 1
}

# mse_keep SIZE TOOL OUT [--labels]: the MSE of OUT against the input.
mse_keep() {
    local s=$1 t=$2 out=$3 m
    shift 3
    progress "$s: ${LABEL[$t]}: MSE"
    if m=$("$py" "$helpers/mse.py" "$in" "$out" "$@" 2>"$dir/$t.mse.log"); then
        MSE[$s:$t]=$(awk '$1 == "mse" { print $2 }' <<<"$m")
        if [[ $* == *--labels* ]]; then
            NOTE[$s:$t]="${NOTE[$s:$t]:+${NOTE[$s:$t]}; }$(awk '$1 == "classes" { print $2 }' <<<"$m") classes"
        fi
    else
        NOTE[$s:$t]="${NOTE[$s:$t]:+${NOTE[$s:$t]}; }MSE failed: $(last_words "$dir/$t.mse.log")"
    fi
}
drop() { [[ ${KEEP:-0} == 1 ]] || rm -f "$@"; } # FILE...: deleted unless KEEP=1
# mse_of SIZE TOOL OUT [--labels]: the MSE of OUT against the input, then OUT is deleted.
mse_of() {
    mse_keep "$@"
    drop "$3" "$3".aux.xml
}

size_names="small, 100mp, 1gp, realsmall, real100, real1gp, pngsmall, png50, WIDTHxHEIGHT,"
size_names+=" realWIDTHxHEIGHT or pngWIDTHxHEIGHT"
size_dims() {
    case $1 in
    small | realsmall | pngsmall) echo "2000 1500" ;;
    100mp) echo "12500 8000" ;;
    real100) echo "12000 8400" ;;
    png50) echo "8660 5775" ;; # 50.0 MP, 3:2
    1gp | real1gp) echo "40000 25000" ;;
    [1-9]*x[1-9]* | real[1-9]*x[1-9]* | png[1-9]*x[1-9]*)
        [[ $1 =~ ^(real|png)?([0-9]+)x([0-9]+)$ ]] && echo "${BASH_REMATCH[2]} ${BASH_REMATCH[3]}" ;;
    *) return 1 ;;
    esac
}
is_real() { [[ $1 == real* ]]; } # SIZE: a TIFF mosaic of real photographs (else a generated photo)
is_png() { [[ $1 == png* ]]; }   # SIZE: the mosaic as a PNG, for the PNG rows
is_100mp() { [[ $1 == 100mp || $1 == real100 ]]; } # the size the in-memory targets are set for
size_kind() { # SIZE: what the image is, in a few words
    if is_png "$1"; then
        echo "real-photo mosaic PNG"
    elif is_real "$1"; then
        echo "real-photo mosaic"
    else
        echo "generated photo"
    fi
}

# ---------------------------------------------------------------------------------------------
# Probes: options of chunkmeans that may not be implemented yet.

probe_algorithm() { # NAME: does `chunkmeans run --algorithm NAME` exit 0 on a tiny image?
    [[ -f $work/probe.tif ]] ||
        "$mkimage" "$work/probe.tif" --width 64 --height 48 --pattern photo --quiet >/dev/null 2>&1
    local rc
    "$chunkmeans" run "$work/probe.tif" "$work/probe.$1.tif" -k 2 --algorithm "$1" -q \
        >"$work/probe.$1.log" 2>&1
    rc=$?
    [[ -s $work/probe.$1.log ]] || echo "chunkmeans run --algorithm $1 exits $rc" >"$work/probe.$1.log"
    return $rc
}
declare -A ALGO=([histogram]=0 [lloyd]=0)
probe_algorithm histogram && ALGO[histogram]=1
probe_algorithm lloyd && ALGO[lloyd]=1

# ---------------------------------------------------------------------------------------------
# Header.

mem_gib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
gen_sizes="" real_sizes="" png_sizes=""
for s in $sizes; do
    size_dims "$s" >/dev/null || continue
    if is_png "$s"; then
        png_sizes+=" $s"
    elif is_real "$s"; then
        real_sizes+=" $s"
    else
        gen_sizes+=" $s"
    fi
done
# The photos of the mosaics, named by their generator.
real_desc=$("$py" "$helpers/real_mosaic.py" describe 2>/dev/null) ||
    real_desc="mosaic of python3-skimage's photographs (not available: $py cannot import skimage.data)"
png_desc=$("$py" "$helpers/real_mosaic.py" describe png 2>/dev/null) || png_desc=$real_desc
echo "== chunkmeans comparison: sizes $sizes, k = $k, 8-bit RGB; TIFF sizes deflate, 512x512 tiles"
[[ -n $gen_sizes ]] && echo "generated photo (${gen_sizes# }): cm-mkimage --pattern photo (deflate level 2, no predictor)"
[[ -n $real_sizes ]] && echo "real-photo mosaic (${real_sizes# }): $real_desc; cached in $image_cache"
[[ -n $png_sizes ]] && echo "real-photo mosaic PNG (${png_sizes# }): $png_desc; cached in $image_cache"
echo "host: $ncores cores, $mem_gib GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg); work dir: $work"
echo "chunkmeans: $chunkmeans_src ($("$chunkmeans" --version 2>/dev/null | head -n 1))"
[[ -n $base ]] && echo "${BASE_NAME:-base}: $BASE ($("$base" --version 2>/dev/null | head -n 1))"
[[ -n $gen_sizes$real_sizes ]] && echo "versions: vips $(vips --version 2>/dev/null | awk '{ print $1 }' | sed 's/vips-//' || echo -)," \
    "libtiff $(dpkg-query -W -f='${Version}' libtiff-tools 2>/dev/null || echo -)," \
    "ImageMagick $(dpkg-query -W -f='${Version}' imagemagick 2>/dev/null || echo -)," \
    "OTB $(dpkg-query -W -f='${Version}' otb-bin 2>/dev/null || echo -)," \
    "$("$py" -c 'import sklearn, dask, tifffile; print("scikit-learn", sklearn.__version__ + ", dask", dask.__version__ + ", tifffile", tifffile.__version__)' 2>/dev/null || echo "python: -")"
[[ -n $png_sizes ]] && echo "versions: pngquant $(pngquant --version 2>/dev/null | awk '{ print $1 }' || echo -)," \
    "Pillow $("$py" -c 'import PIL; print(PIL.__version__)' 2>/dev/null || echo -)"
awk '{ if ($1 > 0.5) printf "warning: load average %s before the run: other work on the machine makes the times noisy\n", $1 }' /proc/loadavg
for p in "${!pkg_reason[@]}"; do echo "not available: $p (${pkg_reason[$p]})"; done
echo

# ---------------------------------------------------------------------------------------------
# One size.

# run_png_peers SIZE MP: the PNG rows after chunkmeans's: pngquant and Pillow, PNG to PNG, each
# holding the whole image (up to IN_MEMORY_MAX_MP).
run_png_peers() {
    local s=$1 mp=$2 in_memory=1
    le "$mp" "$in_memory_max_mp" || in_memory=0
    if skipped pngquant; then set_na "$s" pngquant "skipped (SKIP)"; elif [[ -n ${pkg_reason[pngquant]:-} ]]; then
        set_na "$s" pngquant "${pkg_reason[pngquant]}"
    elif ((!in_memory)); then
        set_na "$s" pngquant "not run: in memory, up to $in_memory_max_mp MP (IN_MEMORY_MAX_MP)"
    else
        # Its default speed (4); --nofs: no dithering, as chunkmeans and Pillow's quantize.
        if timed "$s" pngquant pngquant --nofs --force --output "$dir/pngquant.png" "$k" -- "$in"; then
            NOTE[$s:pngquant]="speed 4 (default), no dithering"
            mse_of "$s" pngquant "$dir/pngquant.png"
        fi
    fi
    if skipped pillow; then set_na "$s" pillow "skipped (SKIP)"; elif [[ -n ${pkg_reason[python3-pil]:-} ]]; then
        set_na "$s" pillow "${pkg_reason[python3-pil]}"
    elif ((!in_memory)); then
        set_na "$s" pillow "not run: in memory, up to $in_memory_max_mp MP (IN_MEMORY_MAX_MP)"
    else
        progress "$s: Pillow's median cut may take minutes"
        if timed "$s" pillow "$py" "$helpers/pillow_quantize.py" "$in" "$dir/pillow.png" "$k"; then
            NOTE[$s:pillow]="quantize(K, MEDIANCUT, kmeans=1) of convert('RGB')"
            mse_of "$s" pillow "$dir/pillow.png"
        fi
    fi
}

run_size() {
    local s=$1 w h dims raw npix mp
    dims=$(size_dims "$s") || {
        say "unknown size '$s' ($size_names)"
        return 1
    }
    read -r w h <<<"$dims"
    npix=$((w * h))
    raw=$((npix * 3))
    mp=$(calc "$npix / 1e6")
    dir=$work/$s
    in=$dir/in.tif
    is_png "$s" && in=$dir/in.png
    mkdir -p "$dir"

    # Room: the input (~raw/2), one uncompressed copy (raw) at a time and a compressed output.
    local need_kib=$((raw * 2 / 1024)) avail_kib avail_mem_kib
    avail_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    if ((avail_kib < need_kib)); then
        echo "warning: $dir has $((avail_kib / 1024)) MiB free, $s may need $((need_kib / 1024)) MiB"
    fi
    avail_mem_kib=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
    if is_png "$s"; then
        # Pillow holds RGB as 4 bytes a pixel, and its input and converted copies at once.
        if le "$mp" "$in_memory_max_mp" && ((avail_mem_kib < npix * 12 / 1024)); then
            echo "warning: $((avail_mem_kib / 1024)) MiB of memory available; Pillow may need" \
                "$((npix * 12 / 1048576)) MiB and fail"
        fi
    else
        if ((avail_mem_kib < raw * 3 / 2 / 1024)); then
            echo "warning: $((avail_mem_kib / 1024)) MiB of memory available; tiffcp holds the decoded image" \
                "($((raw / 1048576)) MiB) and may fail"
        fi
        # sklearn KMeans holds the pixels as float64 several times over: ~125 bytes a pixel.
        if le "$mp" "$in_memory_max_mp" && ((avail_mem_kib < npix * 125 / 1024)); then
            echo "warning: $((avail_mem_kib / 1024)) MiB of memory available; sklearn KMeans may need" \
                "$((npix * 125 / 1048576)) MiB and fail"
        fi
    fi

    local made=0 t0=$SECONDS cached fmt=tif
    is_png "$s" && fmt=png
    if is_real "$s" || is_png "$s"; then
        # Made once into the cache (1gp: a few minutes), then linked here and only read.
        progress "$s: ${w}x${h} ($mp MP) $(size_kind "$s") from $image_cache (made there if missing)"
        if cached=$("$py" "$helpers/real_mosaic.py" cached "$image_cache" "$w" "$h" "$fmt" 2>"$dir/generate.log") &&
            [[ -f $cached ]]; then
            if ln -f "$cached" "$in" 2>/dev/null || ln -sf "$cached" "$in"; then
                made=1
                if grep -q ' done, ' "$dir/generate.log"; then
                    progress "$s: made in $((SECONDS - t0)) s and cached: $cached"
                fi
            else
                echo "cannot link $cached into $dir" >>"$dir/generate.log"
            fi
        fi
    else
        progress "$s: generating ${w}x${h} ($mp MP) RGB photo"
        "$mkimage" "$in" --width "$w" --height "$h" --bands 3 --pattern photo \
            --compression deflate --tile 512 --quiet >"$dir/generate.log" 2>&1 && made=1
    fi
    if ((!made)); then
        local why
        why="input not generated: $(last_words "$dir/generate.log")"
        for t in "${tool_order[@]}" "${png_tool_order[@]}"; do set_na "$s" "$t" "$why"; done
        progress "$s: $why"
        return 1
    fi
    local in_size
    in_size=$(stat -L -c %s "$in")
    echo "$s: input ${w}x${h} RGB $(size_kind "$s")," \
        "$(numfmt --to=iec-i --suffix=B --format=%.2f "$in_size")" \
        "(raw $(numfmt --to=iec-i --suffix=B --format=%.2f "$raw"))"

    # chunkmeans, all cores and one; both outputs are kept until cmp has compared them. A PNG
    # size writes PNG: chunkmeans picks the output format by OUT's extension.
    local x=${in##*.}
    if skipped chunkmeans; then set_na "$s" chunkmeans "skipped (SKIP)"; else
        timed "$s" chunkmeans "$chunkmeans" run "$in" "$dir/cm.$x" -k "$k" "${cm_mem_args[@]}" \
            -j "$ncores" --progress never && mse_keep "$s" chunkmeans "$dir/cm.$x"
    fi
    if [[ -n $base ]]; then
        timed "$s" chunkmeans-base "$base" run "$in" "$dir/cm-base.$x" -k "$k" "${cm_mem_args[@]}" \
            -j "$ncores" --progress never && mse_of "$s" chunkmeans-base "$dir/cm-base.$x"
    fi
    if skipped chunkmeans-j1; then set_na "$s" chunkmeans-j1 "skipped (SKIP)"; else
        if timed "$s" chunkmeans-j1 "$chunkmeans" run "$in" "$dir/cm1.$x" -k "$k" \
            "${cm_mem_args[@]}" -j 1 --progress never; then
            mse_keep "$s" chunkmeans-j1 "$dir/cm1.$x"
            if [[ ${STAT[$s:chunkmeans]:-} == ok && -n ${MSE[$s:chunkmeans]:-} &&
                ${MSE[$s:chunkmeans]} != "${MSE[$s:chunkmeans-j1]:-}" ]]; then
                NOTE[$s:chunkmeans-j1]="MSE differs from -j$ncores"
            fi
            if [[ ${STAT[$s:chunkmeans]:-} == ok ]]; then
                progress "$s: cmp -j$ncores -j1"
                if cmp -s "$dir/cm.$x" "$dir/cm1.$x"; then
                    SAME[$s]=identical
                else
                    local why
                    why=$(cmp "$dir/cm.$x" "$dir/cm1.$x" 2>&1 | sed -e 's/.* differ: \(byte [0-9]*\).*/first at \1/' \
                        -e 's/.*EOF on \([^ ]*\).*/\1 is shorter/')
                    SAME[$s]="differ: ${why//$dir\//}"
                    NOTE[$s:chunkmeans-j1]="${NOTE[$s:chunkmeans-j1]:+${NOTE[$s:chunkmeans-j1]}; }not the bytes of -j$ncores"
                fi
            fi
        fi
        drop "$dir/cm1.$x"
    fi
    # --cog: the same run with its overviews (auto) in the COG layout; then GDAL reduces each
    # output to 1%, which with overviews it reads from the smallest level large enough.
    if ! is_png "$s"; then
        if skipped cog; then set_na "$s" cog "skipped (SKIP)"; else
            timed "$s" cog "$chunkmeans" run "$in" "$dir/cog.tif" -k "$k" "${cm_mem_args[@]}" \
                -j "$ncores" --cog --progress never
            if ok "$s" cog && ok "$s" chunkmeans && command -v gdal_translate >/dev/null; then
                timed "$s" gdal-plain gdal_translate -q -outsize 1% 1% "$dir/cm.tif" "$dir/1p.tif"
                timed "$s" gdal-cog gdal_translate -q -outsize 1% 1% "$dir/cog.tif" "$dir/1c.tif"
            fi
            drop "$dir/cog.tif" "$dir/1p.tif" "$dir/1c.tif"
        fi
    fi
    drop "$dir/cm.$x"

    if is_png "$s"; then
        run_png_peers "$s" "$mp"
        [[ ${KEEP:-0} == 1 ]] || rm -f "$in"
        return 0
    fi

    # The floors: copies with the same compression.
    if skipped vips; then set_na "$s" vips "skipped (SKIP)"; elif [[ -n ${pkg_reason[libvips-tools]:-} ]]; then
        set_na "$s" vips "${pkg_reason[libvips-tools]}"
    else
        timed "$s" vips env VIPS_CONCURRENCY=1 vips copy "$in" \
            "$dir/vips.tif[compression=deflate,tile,tile-width=512,tile-height=512]" &&
            NOTE[$s:vips]="VIPS_CONCURRENCY=1; lossless copy, deflate, 512 tiles"
        rm -f "$dir/vips.tif"
    fi
    if skipped tiffcp; then set_na "$s" tiffcp "skipped (SKIP)"; elif [[ -n ${pkg_reason[libtiff-tools]:-} ]]; then
        set_na "$s" tiffcp "${pkg_reason[libtiff-tools]}"
    else
        timed "$s" tiffcp tiffcp -m 0 -c zip "$in" "$dir/tiffcp.tif" &&
            NOTE[$s:tiffcp]="one thread, holds the decoded image"
        rm -f "$dir/tiffcp.tif"
    fi

    # The codec floor: decoding the input alone + encoding the k-colour output alone.
    if skipped decode; then set_na "$s" decode "skipped (SKIP)"; elif [[ -n ${pkg_reason[libvips-tools]:-} ]]; then
        set_na "$s" decode "${pkg_reason[libvips-tools]}"
    else
        timed "$s" decode env VIPS_CONCURRENCY=1 vips copy "$in" "$dir/decoded.v" &&
            NOTE[$s:decode]="VIPS_CONCURRENCY=1; vips copy IN x.v (uncompressed)"
        rm -f "$dir/decoded.v"
    fi
    if skipped chunkmeans-none || skipped encode; then
        set_na "$s" chunkmeans-none "skipped (SKIP)"
        set_na "$s" encode "skipped (SKIP)"
    else
        if timed "$s" chunkmeans-none "$chunkmeans" run "$in" "$dir/cm-none.tif" -k "$k" \
            "${cm_mem_args[@]}" --compression none --progress never; then
            NOTE[$s:chunkmeans-none]="makes the input of 'encode alone'"
            if [[ -n ${pkg_reason[libvips-tools]:-} ]]; then
                set_na "$s" encode "${pkg_reason[libvips-tools]}"
            else
                timed "$s" encode env VIPS_CONCURRENCY=1 vips copy "$dir/cm-none.tif" \
                    "$dir/encoded.tif[compression=deflate,tile,tile-width=512,tile-height=512]" &&
                    NOTE[$s:encode]="VIPS_CONCURRENCY=1; k-colour image, uncompressed to deflate"
            fi
        else
            set_na "$s" encode "no uncompressed k-colour image (chunkmeans --compression none failed)"
        fi
        rm -f "$dir/cm-none.tif" "$dir/encoded.tif"
    fi
    if [[ ${STAT[$s:decode]:-} == ok && ${STAT[$s:encode]:-} == ok ]]; then
        STAT[$s:codec]=ok
        WALL[$s:codec]=$(calc "${WALL[$s:decode]} + ${WALL[$s:encode]}")
        NOTE[$s:codec]="sum of the two rows above"
    else
        set_na "$s" codec "needs decode and encode"
    fi

    # scikit-learn, in memory.
    local in_memory=1
    le "$mp" "$in_memory_max_mp" || in_memory=0
    local t mode
    for t in sklearn-minibatch sklearn-kmeans; do
        mode=${t#sklearn-}
        if skipped "$t"; then set_na "$s" "$t" "skipped (SKIP)"; elif [[ -n ${pkg_reason[python3-sklearn]:-} ]]; then
            set_na "$s" "$t" "${pkg_reason[python3-sklearn]}"
        elif ((!in_memory)); then
            set_na "$s" "$t" "not run: in memory, up to $in_memory_max_mp MP (IN_MEMORY_MAX_MP)"
        else
            [[ $mode == kmeans ]] && progress "$s: sklearn KMeans on every pixel may take minutes"
            timed "$s" "$t" "$py" "$helpers/sklearn_kmeans.py" "$mode" "$in" "$dir/$t.tif" "$k" &&
                mse_of "$s" "$t" "$dir/$t.tif"
            if [[ $mode == minibatch ]]; then
                NOTE[$s:$t]="${NOTE[$s:$t]:+${NOTE[$s:$t]}; }n_init=3, every pixel"
            else
                NOTE[$s:$t]="${NOTE[$s:$t]:+${NOTE[$s:$t]}; }n_init=1, Lloyd, every pixel"
            fi
        fi
    done

    # Dask: out of core.
    if skipped dask; then set_na "$s" dask "skipped (SKIP)"; elif [[ -n ${pkg_reason[python3-dask]:-}${pkg_reason[python3-sklearn]:-} ]]; then
        set_na "$s" dask "${pkg_reason[python3-dask]:-${pkg_reason[python3-sklearn]}}"
    else
        timed "$s" dask "$py" "$helpers/dask_kmeans.py" "$in" "$dir/dask.tif" "$k" &&
            mse_of "$s" dask "$dir/dask.tif" && NOTE[$s:dask]="fit on 262144 sampled pixels"
    fi

    # Orfeo ToolBox: a self-organising map of K x 1 neurons (Debian's OTB has no
    # KMeansClassification: that needs Shark). It writes the label map; the MSE recolours every
    # class with its mean colour.
    local otb_app=""
    if command -v otbcli_KMeansClassification >/dev/null 2>&1; then otb_app=KMeansClassification; fi
    if skipped otb; then set_na "$s" otb "skipped (SKIP)"; elif [[ -n ${pkg_reason[otb-bin]:-} ]]; then
        set_na "$s" otb "${pkg_reason[otb-bin]}"
    else
        local ltype=uint8 ts=262144 tp co
        ((k > 255)) && ltype=uint16
        tp=$(awk -v t="$ts" -v n="$npix" 'BEGIN { p = t / n; if (p > 1) p = 1; printf "%.6g", p }')
        co='?&gdal:co:COMPRESS=DEFLATE&gdal:co:TILED=YES&gdal:co:BLOCKXSIZE=512&gdal:co:BLOCKYSIZE=512'
        if [[ $otb_app == KMeansClassification ]]; then
            LABEL[otb]="OTB KMeansClassification"
            timed "$s" otb otbcli_KMeansClassification -in "$in" -out "$dir/otb.tif$co" "$ltype" \
                -nc "$k" -ts "$ts" -rand 0 -ram "$budget_mb" &&
                mse_of "$s" otb "$dir/otb.tif" --labels
        else
            timed "$s" otb otbcli_SOMClassification -in "$in" -out "$dir/otb.tif$co" "$ltype" \
                -sx "$k" -sy 1 -nx 1 -ny 0 -ts "$ts" -tp "$tp" -rand 0 -ram "$budget_mb" &&
                mse_of "$s" otb "$dir/otb.tif" --labels
        fi
        [[ ${STAT[$s:otb]:-} == ok ]] &&
            NOTE[$s:otb]="label map, -ram $budget_mb; MSE with class means; ${NOTE[$s:otb]:-}"
    fi

    # ImageMagick: octree colour reduction, in memory.
    if skipped imagemagick; then set_na "$s" imagemagick "skipped (SKIP)"; elif [[ -n ${pkg_reason[imagemagick]:-} ]]; then
        set_na "$s" imagemagick "${pkg_reason[imagemagick]}"
    elif ((!in_memory)); then
        set_na "$s" imagemagick "not run: in memory, up to $in_memory_max_mp MP (IN_MEMORY_MAX_MP)"
    else
        # Debian's policy.xml caps memory, disk and area, and -limit cannot pass a policy: the
        # run reads a policy of its own (compare/imagemagick/policy.xml) on top.
        MAGICK_CONFIGURE_PATH=$helpers/imagemagick timed "$s" imagemagick convert \
            -limit memory 8GiB -limit map 16GiB -limit disk 64GiB -limit area 16GP \
            "$in" +dither -colors "$k" -type TrueColor -depth 8 -compress zip \
            -define tiff:tile-geometry=512x512 "$dir/im.tif" &&
            mse_of "$s" imagemagick "$dir/im.tif" && NOTE[$s:imagemagick]="octree quantizer, +dither"
    fi

    # chunkmeans's exact algorithms, when they exist.
    local a
    for a in histogram lloyd; do
        if skipped "$a" || { [[ $a == lloyd ]] && skipped histogram; }; then
            set_na "$s" "$a" "skipped (SKIP)"
        elif ((!ALGO[$a])); then
            set_na "$s" "$a" "not available ($(last_words "$work/probe.$a.log"))"
        else
            timed "$s" "$a" "$chunkmeans" run "$in" "$dir/$a.tif" -k "$k" "${cm_mem_args[@]}" \
                --algorithm "$a" --progress never && mse_of "$s" "$a" "$dir/$a.tif"
        fi
    done

    [[ ${KEEP:-0} == 1 ]] || rm -f "$in"
    return 0
}

# ---------------------------------------------------------------------------------------------
# Reports.

print_table() {
    local s=$1 floor ref t st wall vs rss cpu mse mr note
    # TIFF sizes: times against vips copy on one core, MSE against sklearn KMeans; PNG sizes:
    # both against pngquant, the peer the PNG targets are set against.
    local floor_t=vips ref_t=sklearn-kmeans order=("${tool_order[@]}")
    local against="vips copy on one core, MSE against sklearn KMeans" fcol=/floor rcol=/KMeans
    if is_png "$s"; then
        floor_t=pngquant ref_t=pngquant order=("${png_tool_order[@]}")
        against="pngquant, MSE against pngquant's" fcol=/pngq rcol=/pngq
    fi
    floor=${WALL[$s:$floor_t]:-}
    [[ ${STAT[$s:$floor_t]:-} == ok ]] || floor=""
    ref=""
    [[ ${STAT[$s:$ref_t]:-} == ok ]] && ref=${MSE[$s:$ref_t]:-}
    echo
    echo "== $s ($(size_dims "$s" | tr ' ' 'x') $(size_kind "$s"), k = $k): times against $against"
    if is_png "$s"; then
        echo "image: $png_desc"
    elif is_real "$s"; then
        echo "image: $real_desc"
    else
        echo "image: generated by cm-mkimage --pattern photo"
    fi
    printf '%-34s %9s %8s %9s %6s %9s %7s  %s\n' tool "wall s" "$fcol" "RSS MiB" CPU MSE "$rcol" note
    for t in "${order[@]}"; do
        st=${STAT[$s:$t]:-na}
        note=${NOTE[$s:$t]:-}
        if [[ $st == ok ]]; then
            wall=${WALL[$s:$t]}
            vs=-
            [[ -n $floor ]] && le 0.001 "$floor" && vs=$(calc "$wall / $floor")x
            rss=${RSS[$s:$t]:--}
            cpu=${CPU[$s:$t]:--}
            mse=${MSE[$s:$t]:--}
            mr=-
            [[ -n $ref && $mse != - ]] && le 0.000001 "$ref" && mr=$(calc "$mse / $ref")x
        else
            [[ $st == failed ]] && wall=failed || wall="n/a"
            vs=- rss=- cpu=- mse=- mr=-
            [[ $st == na && -z $note ]] && note="not run"
            [[ $st == na && $note != skipped* && $note != not* ]] && note="not available: $note"
        fi
        printf '%-34s %9s %8s %9s %6s %9s %7s  %s\n' "${LABEL[$t]}" "$wall" "$vs" "$rss" "$cpu" \
            "$mse" "$mr" "$note"
    done
}

# target_line SIZE TEXT MEASURED VERDICT: one line of the targets; the verdicts of the real-photo
# sizes, on which the targets are judged, are counted in JUDGED.
declare -A JUDGED=([met]=0 [notmet]=0 [na]=0)
target_line() {
    local tag=$1 v=na
    if is_real "$1"; then
        tag+="*"
        case $4 in met) v=met ;; "NOT MET") v=notmet ;; esac
        JUDGED[$v]=$((JUDGED[$v] + 1))
    fi
    printf '  %-10s %-66s %-46s %s\n' "$tag" "$2" "$3" "$4"
}
ok() { [[ ${STAT[$1:$2]:-} == ok ]]; }
verdict() { if le "$1" "$2"; then echo met; else echo "NOT MET"; fi; }

# png_targets SIZE: the PNG targets, measured in this run against pngquant and Pillow; their
# verdicts are counted in PNG_JUDGED.
declare -A PNG_JUDGED=([met]=0 [notmet]=0 [na]=0)
png_line() { # SIZE TEXT MEASURED VERDICT
    local v=na
    case $4 in met) v=met ;; "NOT MET") v=notmet ;; esac
    PNG_JUDGED[$v]=$((PNG_JUDGED[$v] + 1))
    printf '  %-10s %-66s %-46s %s\n' "$1" "$2" "$3" "$4"
}
png_targets() {
    local s=$1 cm t o r v
    cm=${WALL[$s:chunkmeans]:-}
    for o in pngquant pillow; do
        t="faster than ${LABEL[$o]} (wall, same run)"
        if ok "$s" chunkmeans && ok "$s" "$o"; then
            r=$(calc "$cm / ${WALL[$s:$o]}")
            if lt "$cm" "${WALL[$s:$o]}"; then v=met; else v="NOT MET"; fi
            png_line "$s" "$t" "$cm s / ${WALL[$s:$o]} s = ${r}x (< 1)" "$v"
        else
            png_line "$s" "$t" "-" "not available"
        fi
    done
    t="MSE <= pngquant's"
    if [[ -n ${MSE[$s:chunkmeans]:-} && -n ${MSE[$s:pngquant]:-} ]] && le 0.000001 "${MSE[$s:pngquant]}"; then
        r=$(awk -v a="${MSE[$s:chunkmeans]}" -v b="${MSE[$s:pngquant]}" 'BEGIN { printf "%.3f", a / b }')
        png_line "$s" "$t" "${MSE[$s:chunkmeans]} / ${MSE[$s:pngquant]} = ${r}x (<= 1)" \
            "$(verdict "${MSE[$s:chunkmeans]}" "${MSE[$s:pngquant]}")"
    else
        png_line "$s" "$t" "-" "not available"
    fi
    t="peak RSS <= 0.5 x pngquant's, at the default budget"
    if ok "$s" chunkmeans && ok "$s" pngquant && ((${#cm_mem_args[@]})); then
        png_line "$s" "$t" "${RSS[$s:chunkmeans]} MiB at --memory $MEMORY, pngquant ${RSS[$s:pngquant]} MiB" \
            "not available"
    elif ok "$s" chunkmeans && ok "$s" pngquant; then
        r=$(calc "${RSS[$s:chunkmeans]} / ${RSS[$s:pngquant]}")
        png_line "$s" "$t" "${RSS[$s:chunkmeans]} MiB / ${RSS[$s:pngquant]} MiB = ${r}x (<= 0.5)" \
            "$(verdict "${RSS[$s:chunkmeans]}" "$(calc "0.5 * ${RSS[$s:pngquant]}")")"
    else
        png_line "$s" "$t" "-" "not available"
    fi
    t="-j1 and -j$ncores outputs byte-identical (cmp)"
    case ${SAME[$s]:-} in
    identical) png_line "$s" "$t" "identical" met ;;
    differ*) png_line "$s" "$t" "${SAME[$s]}" "NOT MET" ;;
    *) png_line "$s" "$t" "-" "not available" ;;
    esac
}

print_targets() {
    local s cm floor codec j1 jn dec enc ref m t v
    [[ -n $gen_sizes$real_sizes ]] || {
        png_print_targets
        return 0
    }
    echo
    echo "== targets (chunkmeans at the default budget, -j$ncores unless said; vips on one core)"
    echo "   judged on the real-photo mosaics (sizes marked *); the generated photos are for reference"
    for s in "${ran[@]}"; do
        is_png "$s" && continue
        cm=${WALL[$s:chunkmeans]:-}
        t="wall <= 0.5 x vips copy (one core, same file, deflate, 512 tiles)"
        if ok "$s" chunkmeans && ok "$s" vips; then
            floor=${WALL[$s:vips]}
            target_line "$s" "$t" "$cm s vs 0.5 x $floor s ($(calc "$cm / $floor")x)" \
                "$(verdict "$cm" "$(calc "0.5 * $floor")")"
        else
            target_line "$s" "$t" "-" "not available"
        fi
        t="wall <= 0.6 x (decode alone + encode k-colour alone, one core)"
        if ok "$s" chunkmeans && ok "$s" codec; then
            dec=${WALL[$s:decode]} enc=${WALL[$s:encode]}
            codec=${WALL[$s:codec]}
            target_line "$s" "$t" "$cm s vs 0.6 x ($dec + $enc) = $(calc "0.6 * $codec") s" \
                "$(verdict "$cm" "$(calc "0.6 * $codec")")"
        else
            target_line "$s" "$t" "-" "not available"
        fi
        t="peak RSS <= 300 MiB at the default budget"
        if ok "$s" chunkmeans && ((${#cm_mem_args[@]})); then
            target_line "$s" "$t" "${RSS[$s:chunkmeans]} MiB at --memory $MEMORY" "not available"
        elif ok "$s" chunkmeans; then
            target_line "$s" "$t" "${RSS[$s:chunkmeans]} MiB" "$(verdict "${RSS[$s:chunkmeans]}" 300)"
        else
            target_line "$s" "$t" "-" "not available"
        fi
        t="-j1 and -j$ncores outputs byte-identical (cmp)"
        case ${SAME[$s]:-} in
        identical) target_line "$s" "$t" "identical" met ;;
        differ*) target_line "$s" "$t" "${SAME[$s]}" "NOT MET" ;;
        *) target_line "$s" "$t" "-" "not available" ;;
        esac
        if [[ -n $base ]]; then
            t="MSE <= ${BASE_NAME:-base}'s MSE (same run)"
            if [[ -n ${MSE[$s:chunkmeans]:-} && -n ${MSE[$s:chunkmeans-base]:-} ]]; then
                target_line "$s" "$t" "${MSE[$s:chunkmeans]} vs ${MSE[$s:chunkmeans-base]}" \
                    "$(verdict "${MSE[$s:chunkmeans]}" "${MSE[$s:chunkmeans-base]}")"
            else
                target_line "$s" "$t" "-" "not available"
            fi
        fi
        t="-j$ncores (all cores) >= 1.8 x faster than -j1"
        if ((ncores < 2)); then
            target_line "$s" "$t" "one core" "not available"
        elif ok "$s" chunkmeans && ok "$s" chunkmeans-j1; then
            j1=${WALL[$s:chunkmeans-j1]}
            jn=$cm
            target_line "$s" "$t" "$j1 s / $jn s = $(calc "$j1 / $jn")x" "$(verdict 1.8 "$(calc "$j1 / $jn")")"
        else
            target_line "$s" "$t" "-" "not available"
        fi
        # The in-memory comparisons (the issue states them for 100 MP).
        local other
        for other in sklearn-minibatch:6 dask:4; do
            local ot=${other%:*} x=${other#*:}
            [[ ${STAT[$s:$ot]:-na} == na && ${NOTE[$s:$ot]:-} == not\ run* ]] && ! is_100mp "$s" && continue
            if ok "$s" chunkmeans && ok "$s" "$ot"; then
                m=$(calc "${WALL[$s:$ot]} / $cm")
                target_line "$s" ">= $x x faster than ${LABEL[$ot]}" \
                    "${WALL[$s:$ot]} s / $cm s = ${m}x" "$(verdict "$x" "$m")"
            else
                target_line "$s" ">= $x x faster than ${LABEL[$ot]}" "-" "not available"
            fi
        done
        if ok "$s" chunkmeans && ok "$s" sklearn-kmeans && [[ -n ${MSE[$s:chunkmeans]:-} && -n ${MSE[$s:sklearn-kmeans]:-} ]]; then
            ref=${MSE[$s:sklearn-kmeans]}
            m=${MSE[$s:chunkmeans]}
            target_line "$s" "MSE <= 1.01 x sklearn KMeans" \
                "$m vs $ref ($(calc "$m / $ref")x)" "$(verdict "$m" "$(calc "1.01 * $ref")")"
        elif is_100mp "$s" || [[ ${STAT[$s:sklearn-kmeans]:-na} != na ]]; then
            target_line "$s" "MSE <= 1.01 x sklearn KMeans" "-" "not available"
        fi
        if ok "$s" cog && ok "$s" chunkmeans; then
            local cw=${WALL[$s:cog]} pw=${WALL[$s:chunkmeans]} cr=${RSS[$s:cog]}
            local cv=met
            le "$cw" "$(calc "1.15 * $pw")" && le "$cr" 300 || cv="NOT MET"
            target_line "$s" "--cog: <= 1.15 x the plain run's wall, peak <= 300 MiB" \
                "$cw s vs $pw s ($(calc "$cw / $pw")x), $cr MiB" "$cv"
        fi
        if ok "$s" histogram && ok "$s" lloyd && [[ -n ${MSE[$s:histogram]:-} && -n ${MSE[$s:lloyd]:-} ]]; then
            local hw=${WALL[$s:histogram]} lw=${WALL[$s:lloyd]} hm=${MSE[$s:histogram]} lm=${MSE[$s:lloyd]}
            local v=met
            le "$hw" "$lw" && le "$hm" "$(calc "1.01 * $lm")" || v="NOT MET"
            target_line "$s" "--algorithm histogram vs lloyd (faster, MSE within 1%)" \
                "$hw s vs $lw s, MSE $hm vs $lm" "$v"
        elif ok "$s" histogram; then
            target_line "$s" "--algorithm histogram vs lloyd" \
                "histogram ${WALL[$s:histogram]} s, MSE ${MSE[$s:histogram]:--}; lloyd not available" \
                "not available"
        else
            target_line "$s" "--algorithm histogram vs lloyd" "-" "not available"
        fi
    done
    if [[ -n $real_sizes ]]; then
        echo "   judged on the real-photo mosaics (${real_sizes# }): ${JUDGED[met]} met," \
            "${JUDGED[notmet]} NOT MET, ${JUDGED[na]} not available"
    else
        echo "   no real-photo mosaic in SIZES: nothing judged (add real100, real1gp)"
    fi
    png_print_targets
}

png_print_targets() {
    local s
    [[ -n $png_sizes ]] || return 0
    echo
    echo "== PNG targets (PNG -> PNG, k = $k; chunkmeans -j$ncores at the default budget, against"
    echo "   pngquant and Pillow in the same run; set for png50, the 50 MP photo PNG)"
    for s in "${ran[@]}"; do
        is_png "$s" && png_targets "$s"
    done
    echo "   PNG targets (${png_sizes# }): ${PNG_JUDGED[met]} met, ${PNG_JUDGED[notmet]} NOT MET," \
        "${PNG_JUDGED[na]} not available"
}

# ---------------------------------------------------------------------------------------------

ran=()
for s in $sizes; do
    if size_dims "$s" >/dev/null; then
        run_size "$s"
        ran+=("$s")
        print_table "$s"
        echo
    else
        say "unknown size '$s' ($size_names): skipped"
    fi
done
((${#ran[@]})) || die "no size to run"

echo
echo "================================ summary ================================"
for s in "${ran[@]}"; do print_table "$s"; done
print_targets
echo
echo "MSE: mean over pixels and bands of the squared difference to the input, 8-bit levels."
if [[ -n $gen_sizes$real_sizes ]]; then
    echo "/floor: wall time over vips copy's (same file, deflate, 512x512 tiles, one core: VIPS_CONCURRENCY=1)."
    echo "OTB writes a label map; its MSE recolours each class with its mean colour."
fi
if [[ -n $png_sizes ]]; then
    echo "/pngq (PNG sizes): wall time, and MSE, over pngquant's. The PNG outputs are palette PNGs:"
    echo "their MSE is that of the colours their indices stand for."
fi
