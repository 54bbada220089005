#!/usr/bin/env bash
# The k-colour filter on a photograph: installs what is missing, builds, counts the colours of
# the cat photo Debian ships with scikit-image (chelsea.png, 451 x 300) and recolours it with
# k = 2, 5 and 10 as colour-mapped PNGs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${BUILD:-build}
out=${OUT:-demo}
mkdir -p "$out"

cat_png=$(/usr/bin/python3 -c 'import os, skimage.data as d; print(os.path.join(os.path.dirname(d.__file__), "chelsea.png"))')
cp "$cat_png" "$out/cat.png"
colours() { "$build/chunkmeans" info --colors --progress never "$1" | sed -n 's/^colors: *//p'; }

echo "input:  $out/cat.png  451x300 RGB photo, $(colours "$out/cat.png") distinct colours"
for k in 2 5 10; do
    "$build/chunkmeans" run "$out/cat.png" "$out/cat.k$k.png" -k "$k" -q
    echo "k=$k:    $out/cat.k$k.png  $(colours "$out/cat.k$k.png") distinct colours, $(stat -c %s "$out/cat.k$k.png") bytes"
done
