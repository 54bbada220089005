#!/usr/bin/env bash
# Configures (once) and compiles chunkmeans into ${BUILD:-build}; extra arguments go to
# `meson setup` (for example -Db_sanitize=address,undefined).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dwerror=true "$@" >/dev/null
fi
meson compile -C "$build" >/dev/null
