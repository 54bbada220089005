#!/usr/bin/env bash
# Runs every libFuzzer target (or those named) for SECONDS each, starting from the seed corpus
# that make-corpus.sh writes, and prints one line per target: executions per second, coverage
# (edges) and corpus size. Exits 1 if any target found a crash; its input is kept under
# build-fuzz/crashes/TARGET/ (add it to tests/fuzz/regressions/TARGET/ once fixed).
# usage: tests/fuzz/run.sh SECONDS [TARGET...]     (targets: tiff jpeg png model options)
# environment: BUILD (default build-fuzz), JOBS (parallel fuzzing processes per target: 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
((${#targets[@]})) || targets=(tiff jpeg png model options)
build=${BUILD:-build-fuzz}
jobs=${JOBS:-1}

scripts/install-deps.sh --fuzz
if [[ ! -f $build/build.ninja ]]; then
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized -Dwerror=true -Dtests=false >/dev/null
fi
ninja -C "$build" >/dev/null
seeds=$build/seeds
for t in "${targets[@]}"; do # seeds written before a target existed lack its folder
    [[ -d $seeds/$t ]] || { tests/fuzz/make-corpus.sh "$build" "$seeds"; break; }
done

export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
report=()
for t in "${targets[@]}"; do
    exe=$build/tests/fuzz/fuzz_$t
    [[ -x $exe ]] || { echo "run.sh: no fuzz target '$t'" >&2; exit 2; }
    corpus=$build/corpus/$t crashes=$build/crashes/$t log=$build/fuzz-$t.log
    mkdir -p "$corpus" "$crashes"
    args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/")
    [[ -f tests/fuzz/$t.dict ]] && args+=(-dict="tests/fuzz/$t.dict")
    [[ $t == options ]] && args+=(-close_fd_mask=2) # the parsers explain every refusal on stderr
    ((jobs > 1)) && args+=(-fork="$jobs")
    echo "fuzzing $t for $seconds s ..." >&2
    if ! "$exe" "${args[@]}" "$corpus" "$seeds/$t" >"$log" 2>&1; then
        status=1
        echo "run.sh: fuzz_$t FAILED; see $log and $crashes/" >&2
        grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 >&2
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    files=$(find "$corpus" -type f | wc -l)
    report+=("$(printf '%-8s %10s %10s %8s %8s %8s' "$t" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "$files")")
done
printf '%-8s %10s %10s %8s %8s %8s\n' target execs exec/s edges features corpus
printf '%s\n' "${report[@]}"
exit $status
