#!/usr/bin/env bash
# The k-colour filter on a cat picture: installs what is missing, builds, generates a
# photo-like cat (12 megapixels, tiled, deflate) and filters it with k = 2, 5 and 10.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${BUILD:-build}
out=${OUT:-demo}
mkdir -p "$out"

"$build/benchmarks/cm-mkimage" "$out/cat.tif" --width 4000 --height 3000 --pattern cat \
    --compression deflate --quiet
colours() { "$build/chunkmeans" info --colors --progress never "$1" | sed -n 's/^colors: *//p'; }

echo "input:  $out/cat.tif  4000x3000 RGB, $(colours "$out/cat.tif") distinct colours"
for k in 2 5 10; do
    "$build/chunkmeans" run "$out/cat.tif" "$out/cat.k$k.tif" -k "$k" --seed 1 -q
    echo "k=$k:    $out/cat.k$k.tif  $(colours "$out/cat.k$k.tif") distinct colours"
done
