#!/usr/bin/env bash
# Quality of chunkmeans's k colours against other quantisers, on real photographs and rasters
# from Debian packages: the MSE of every tool as a ratio to scikit-learn KMeans(n_init=3), with
# its time and peak memory, for k in KS. See "quality.sh" in benchmarks/README.md.
#
# usage: benchmarks/quality.sh BUILD_DIR_OR_BINARY [WORK_DIR]
#   BUILD_DIR_OR_BINARY  a build directory (its chunkmeans is used) or a chunkmeans binary
#   WORK_DIR             corpus, cache and results (default ${XDG_CACHE_HOME:-~/.cache}/chunkmeans-quality)
# environment (all optional):
#   KS="2 5 8 10 16"   values of k
#   CM_ARGS="..."      extra arguments of the default chunkmeans run (e.g. "--seed 1")
#   BASE=/path/to/chunkmeans BASE_NAME=label BASE_ARGS="..."  another chunkmeans binary, timed
#                      and scored in the same run in a column of its own (BASE_ARGS: CM_ARGS)
#   SKIP="pillow pngquant imagemagick lloyd histogram minibatch large"  columns to leave out,
#                      or "large": the >= 50 MP images
#   ONLY="coffee chelsea"  a subset of the images (names as printed)
#   LARGE_PEERS="sklearn pngquant imagemagick"  the peers run on the >= 50 MP images ("all" adds
#                      Pillow: 1.5 to 7 minutes a k on these)
#   LLOYD_MAX_MP=20    --algorithm lloyd only on images up to this size
#   TIMEOUT=1800       seconds after which one run of one tool counts as failed
# Results of scikit-learn, Pillow, pngquant and ImageMagick are cached in WORK_DIR/cache by
# (input files' hashes, k, tool version, recipe): a rerun after a rebuild runs only chunkmeans.
# Run as root on Debian 12, it installs the Debian packages it needs when they are missing.
set -eu

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3 # Debian's python: the packages below are its modules
say() { echo "quality: $*" >&2; }
die() {
    say "$*"
    exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 BUILD_DIR_OR_BINARY [WORK_DIR]"
if [[ -d $1 ]]; then cm=$1/chunkmeans; else cm=$1; fi
[[ -x $cm && ! -d $cm ]] || die "no chunkmeans binary at $cm"
work=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/chunkmeans-quality}
if [[ -n ${BASE:-} ]]; then [[ -x $BASE && ! -d $BASE ]] || die "BASE=$BASE is not an executable"; fi

# Debian packages: install only the missing ones (dpkg -s), as root.
need=(pngquant imagemagick python3-numpy python3-sklearn python3-skimage python3-pil
    python3-tifffile python3-scipy python3-matplotlib gdal-bin python3-gdal libvips-tools time)
missing=()
for p in "${need[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} (run as root, or apt-get install them)"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; } ||
        say "apt-get failed: the columns of the missing tools will say so"
fi

mkdir -p "$work/bin"
work=$(cd "$work" && pwd)
# Copies of the binaries, so that a rebuild during the run does not mix two versions.
cp "$cm" "$work/bin/chunkmeans"
base=()
if [[ -n ${BASE:-} ]]; then
    cp "$BASE" "$work/bin/chunkmeans-base"
    base=("$work/bin/chunkmeans-base")
fi

echo "== chunkmeans quality: $cm ($("$work/bin/chunkmeans" --version 2>/dev/null | head -n 1))"
[[ -n ${BASE:-} ]] && echo "== ${BASE_NAME:-base}: $BASE ($("${base[0]}" --version 2>/dev/null | head -n 1))"
echo "host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); work dir: $work"
echo "k: ${KS:-2 5 8 10 16}; chunkmeans default: run -k K -q ${CM_ARGS:-}"

# The corpus: built once (a few minutes), then reused.
"$py" "$here/quality_corpus.py" "$work/corpus"

# Debian's ImageMagick policy caps images at 128 MP and memory at 256 MiB: its run reads
# compare.sh's more generous policy on top (MAGICK_CONFIGURE_PATH, this run only).
MAGICK_POLICY_DIR=$here/compare/imagemagick exec "$py" "$here/quality.py" bench "$work" \
    "$work/bin/chunkmeans" "${base[@]}"
