#!/usr/bin/env bash
# Writes the fuzzers' seed corpora under OUT_DIR (tiff/, jpeg/, png/, model/, options/): small
# TIFFs of every flavour the reader supports, made by cm-mkimage (libtiff), JPEGs and PNGs of
# every kind made by make-seeds.py (Pillow, cjpeg), models written by chunkmeans itself, and
# option values.
# usage: tests/fuzz/make-corpus.sh BUILD_DIR OUT_DIR   (BUILD_DIR: a normal build, not -Dfuzz)
set -euo pipefail
build=$1 out=$2
mk=$build/benchmarks/cm-mkimage cm=$build/chunkmeans
mkdir -p "$out/tiff" "$out/model" "$out/options"
n=0
tiff() { # NAME ARGS...: one small image
    local name=$1
    shift
    "$mk" "$out/tiff/$name.tif" --width 40 --height 24 --quiet "$@"
    n=$((n + 1))
}
for type in u8 u16 i16 f32; do
    for bands in 1 3 4 8; do
        for layout in "--tile 16" "--strip 5" "--strip 0"; do
            for comp in none deflate lzw; do
                planar=contig
                [[ $bands -gt 1 && $comp == deflate ]] && planar=separate
                # shellcheck disable=SC2086 # layout is two words on purpose
                tiff "$type-$bands-${layout// /}-$comp" --type "$type" --bands "$bands" \
                    $layout --compression "$comp" --planar "$planar" --pattern noise
            done
        done
    done
done
tiff u16-nodata --type u16 --nodata 0 --compression zstd
tiff f32-nan --type f32 --nan-fraction 0.2 --compression zstd
tiff rgb-jpeg --compression jpeg --tile 16
tiff palette-rgb --palette --compression packbits
tiff palette-grey --palette --bands 1
tiff msi-alpha --bands 6 --alpha --type u16
tiff bigtiff --bigtiff --tile 16
tiff blocks --pattern blocks
echo "tiff: $n files" >&2

"${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/make-seeds.py" "$out"

"$cm" run "$out/tiff/u8-3---tile16-none.tif" "$out/run.tif" -k 4 -q --model-out "$out/model/rgb.json"
"$cm" run "$out/tiff/msi-alpha.tif" "$out/run.tif" -k 3 -q --scale standard \
    --model-out "$out/model/scaled.json"
"$cm" run "$out/tiff/f32-nan.tif" "$out/run.tif" -k 2 -q --algorithm lloyd \
    --model-out "$out/model/float.json"
rm -f "$out/run.tif"
echo "model: 3 files" >&2

i=0
for v in 256M 1.5GiB 65536 2g 64kb 8 65535 0.001 1e3 2,5,10 300,2 16 4096 -1 nan; do
    printf '%s' "$v" >"$out/options/$i"
    i=$((i + 1))
done
echo "options: $i values" >&2
