#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and runs the whole test suite
# (unit tests of every module and the end-to-end tests of the command).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
meson test -C "${BUILD:-build}" --print-errorlogs
