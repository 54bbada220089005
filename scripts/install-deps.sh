#!/usr/bin/env bash
# Installs the Debian packages chunkmeans needs to build, test and run its demo (as root, or
# through sudo). Safe to run again. --fuzz adds clang and libFuzzer, and cjpeg for the JPEG
# seeds (tests/fuzz/run.sh). Open MPI (libopenmpi-dev, openmpi-bin) builds the command for mpirun
# and srun, and its tests (meson test --suite mpi).
set -euo pipefail
packages=(build-essential meson ninja-build pkg-config libtiff-dev libzstd-dev libdeflate-dev libjpeg-dev libpng-dev zlib1g-dev libjansson-dev
          libopenmpi-dev openmpi-bin libcmocka-dev libtiff-tools python3-numpy python3-tifffile python3-pil python3-skimage pngcheck gdal-bin python3-gdal time valgrind)
for opt in "$@"; do
    case $opt in
    --fuzz) packages+=(clang libclang-rt-dev libomp-dev libjpeg-turbo-progs) ;;
    *) echo "install-deps.sh: unknown option '$opt'" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
