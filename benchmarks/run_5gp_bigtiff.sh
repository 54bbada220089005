#!/usr/bin/env bash
# A 5-gigapixel output: generates a 100000 x 50000 RGB image of three colour blocks (deflate,
# so it is small on disk and quick to make), runs `chunkmeans run --bigtiff auto` with a label
# map on it, and checks that both outputs are BigTIFFs that tiffinfo reads, with the right size.
#
# usage: benchmarks/run_5gp_bigtiff.sh [BUILD_DIR [WORK_DIR]]
# environment: WIDTH, HEIGHT (default 100000 x 50000), KEEP=1 keeps the files.
set -euo pipefail

build=${1:-build}
width=${WIDTH:-100000}
height=${HEIGHT:-50000}
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/cm-5gp.XXXXXX")}
mkdir -p "$work"
trap '[[ ${KEEP:-0} == 1 ]] && echo "kept: $work" || rm -rf "$work"' EXIT
command -v tiffinfo >/dev/null && [[ -x /usr/bin/time ]] ||
    { echo "run_5gp_bigtiff: needs tiffinfo (libtiff-tools) and /usr/bin/time (time)" >&2; exit 1; }

echo "== ${width}x${height} RGB ($((width * height / 1000000)) megapixels), k = 3, --bigtiff auto"
"$build/benchmarks/cm-mkimage" "$work/in.tif" --width "$width" --height "$height" --bands 3 \
    --pattern blocks --compression deflate --tile 512 --quiet
echo "input: $(stat -c %s "$work/in.tif") bytes"

/usr/bin/time -v -o "$work/run.time" "$build/chunkmeans" run "$work/in.tif" "$work/out.tif" \
    -k 3 --bigtiff auto --labels "$work/labels.tif" --compression deflate -q
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$work/run.time")
rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$work/run.time")
echo "chunkmeans run: wall $wall, peak RSS $rss MiB"

status=0
for f in out labels; do
    if ! tiffinfo "$work/$f.tif" >"$work/$f.info" 2>&1; then
        echo "FAIL: tiffinfo cannot read $f.tif"; status=1; continue
    fi
    magic=$(od -An -tx1 -j2 -N2 "$work/$f.tif" | tr -d ' ')
    size_ok=$(grep -c "Image Width: $width Image Length: $height" "$work/$f.info" || true)
    echo "$f.tif: $(stat -c %s "$work/$f.tif") bytes, $([[ $magic == 2b00 || $magic == 002b ]] \
        && echo BigTIFF || echo "classic TIFF"), tiffinfo reads it, size ok: $size_ok"
    [[ $magic == 2b00 || $magic == 002b ]] && [[ $size_ok == 1 ]] || status=1
done
exit $status
