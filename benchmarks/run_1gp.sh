#!/usr/bin/env bash
# The 1-gigapixel benchmark: generates a 40000x25000 RGB deflate photo-like TIFF, then times
# `tiffcp -c zip` (the floor of a streaming filter) and `chunkmeans run` on it in the same run.
#
# usage: benchmarks/run_1gp.sh [BUILD_DIR [WORK_DIR]]
#   BUILD_DIR  meson build directory (default: build)
#   WORK_DIR   where the images go (default: a new directory under ${TMPDIR:-/tmp})
# environment: WIDTH, HEIGHT (default 40000 x 25000), CM_ARGS (extra `chunkmeans run` args),
#   KEEP=1 (keep the images), CHUNKMEANS, MKIMAGE (binaries, default from BUILD_DIR)
set -euo pipefail

build=${1:-build}
width=${WIDTH:-40000}
height=${HEIGHT:-25000}
read -r -a cm_args <<<"${CM_ARGS:-}"

die() {
    echo "run_1gp: $*" >&2
    exit 1
}
# shellcheck source=benchmarks/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Tools: /usr/bin/time (GNU time, for -v) and tiffcp (libtiff-tools).
missing=()
[[ -x /usr/bin/time ]] || missing+=(time)
command -v tiffcp >/dev/null 2>&1 || missing+=(libtiff-tools)
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "run_1gp: installing ${missing[*]}" >&2
        apt-get install -y "${missing[@]}" >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; } ||
            die "could not install ${missing[*]}"
    else
        die "missing ${missing[*]}: install them" \
            "(Debian/Ubuntu: sudo apt-get install ${missing[*]})"
    fi
fi

mkimage=$(find_exe "${MKIMAGE:-}" "$build/benchmarks/cm-mkimage") ||
    die "no cm-mkimage in $build/benchmarks (build it: meson compile -C $build) or set MKIMAGE"
chunkmeans=$(find_exe "${CHUNKMEANS:-}" "$build/chunkmeans" "$build/cli/chunkmeans") ||
    die "no chunkmeans in $build/cli or $build" \
        "(build it: meson compile -C $build) or set CHUNKMEANS"

# Work directory: ours to delete if we made it; otherwise only our files are removed.
if [[ -n ${2:-} ]]; then
    work=$2
    mkdir -p "$work"
    made_work=0
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/cm-1gp.XXXXXX")
    made_work=1
fi
in=$work/in.tif
floor_out=$work/tiffcp.tif
cm_out=$work/out.tif
cleanup() {
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "kept: $work"
    elif ((made_work)); then
        rm -rf "$work"
    else
        rm -f "$in" "$floor_out" "$cm_out" "$work"/*.time
    fi
}
trap cleanup EXIT

# Raw pixels plus ~1.5x for the copies; warn rather than fail, deflate usually needs less.
need_kib=$((width * height * 3 * 3 / 2 / 1024))
avail_kib=$(df -Pk "$work" | awk 'NR == 2 { print $4 }')
if ((avail_kib < need_kib)); then
    echo "run_1gp: warning: $work has $((avail_kib / 1024)) MiB free," \
        "may need $((need_kib / 1024)) MiB" >&2
fi

# timed NAME CMD...: runs CMD under /usr/bin/time -v into $work/NAME.time; stops on failure.
timed() {
    local name=$1
    shift
    if ! /usr/bin/time -v -o "$work/$name.time" "$@"; then
        echo "run_1gp: $name failed: $*" >&2
        tail -n 25 "$work/$name.time" | grep -E 'Command|Exit status' >&2 || true
        exit 1
    fi
}
size_of() { stat -c %s "$1"; }

echo "== chunkmeans 1-gigapixel benchmark: ${width}x${height} RGB photo, deflate, 512x512 tiles"
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
echo "host: $(nproc) cores, $mem RAM; work dir: $work"

timed generate "$mkimage" "$in" --width "$width" --height "$height" --bands 3 --pattern photo \
    --compression deflate --tile 512 --quiet
raw=$((width * height * 3))
in_size=$(size_of "$in")
echo "input: $in  $(human "$in_size") ($in_size bytes; raw pixels $(human "$raw"), ratio" \
    "$(awk -v r="$raw" -v s="$in_size" 'BEGIN { printf "%.2f", r / s }'))," \
    "generated in $(wall_s "$work/generate.time") s"

cat "$in" >/dev/null # both tools start from a warm page cache

# tiffcp copies a tiled image through a buffer of the whole image (raw size; -m 0 lifts its
# 256 MiB allocation limit), so its wall time is the floor, not its memory.
timed tiffcp tiffcp -m 0 -c zip "$in" "$floor_out"

cm_cmd=("$chunkmeans" run "$in" "$cm_out" "${cm_args[@]}")
echo "chunkmeans command: ${cm_cmd[*]}"
timed chunkmeans "${cm_cmd[@]}"

floor_wall=$(wall_s "$work/tiffcp.time")
cm_wall=$(wall_s "$work/chunkmeans.time")
echo
printf '%-26s %10s %14s %7s %14s %12s\n' tool "wall s" "peak RSS MiB" "CPU" "vs tiffcp" "output"
printf '%-26s %10s %14s %7s %14s %12s\n' "tiffcp -c zip (floor)*" "$floor_wall" \
    "$(rss_mib "$work/tiffcp.time")" "$(cpu_pct "$work/tiffcp.time")" "1.00x" \
    "$(human "$(size_of "$floor_out")")"
printf '%-26s %10s %14s %7s %14s %12s\n' "chunkmeans run" "$cm_wall" \
    "$(rss_mib "$work/chunkmeans.time")" "$(cpu_pct "$work/chunkmeans.time")" \
    "$(awk -v a="$cm_wall" -v b="$floor_wall" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')" \
    "$(human "$(size_of "$cm_out")")"
echo "* tiffcp holds the whole decoded image in memory for tiled files; single-threaded."
