#!/usr/bin/env bash
# Valgrind memcheck on end-to-end runs of a small image: every exit must be 0, with no error
# and no leak (--leak-check=full, possible leaks included).
# usage: tests/valgrind.sh CHUNKMEANS MKIMAGE
set -euo pipefail
cm=$1 mk=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
vg() { valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible \
    --error-exitcode=9 "$cm" "$@"; }
"$mk" "$work/rgb.tif" --width 300 --height 200 --tile 64 --quiet
"$mk" "$work/f32.tif" --width 200 --height 100 --strip 7 --type f32 --bands 4 \
    --nan-fraction 0.1 --compression zstd --quiet
vg run "$work/rgb.tif" "$work/out.tif" -k 5 -j2 --labels "$work/labels.tif" \
    --model-out "$work/model.json" --trace "$work/trace.json" -q
vg run "$work/f32.tif" "$work/out2.tif" -k 3 -j2 --algorithm lloyd --scale standard -q
vg run "$work/rgb.tif" "$work/out3.tif" -k 4 -j1 --algorithm histogram --format palette -q
vg info --colors "$work/rgb.tif" >/dev/null
if vg run "$work/missing.tif" "$work/out4.tif" 2>/dev/null; then
    echo "a missing input did not fail" >&2
    exit 1
elif [[ $? -ne 3 ]]; then
    echo "a missing input did not exit 3 (valgrind found an error?)" >&2
    exit 1
fi
echo "valgrind: no error, no leak"
