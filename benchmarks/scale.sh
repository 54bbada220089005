#!/usr/bin/env bash
# The same `run` as one process and as an MPI job of 1, 2 and 4 ranks on this machine, with
# rank 0 writing every tile (--mpi-write gather) or each rank its own (parallel); then the job's
# traffic over a slow network: a private network namespace whose loopback is limited by
# `tc ... tbf` (root only; skipped otherwise). Prints the median wall time of REPS runs (the
# configurations take turns, so that a slow spell of a shared machine falls on all of them) as
# a ratio to the one-process run, and checks with cmp that every job wrote the same bytes.
#   benchmarks/scale.sh BUILD_DIR [IMAGE]   (default IMAGE: a generated 100 MP TIFF; for real
#   photographs give the mosaic that compare.sh builds, e.g. its real1gp)   REPS=3 by default
set -euo pipefail
build=$(cd "${1:?usage: scale.sh BUILD_DIR [IMAGE]}" && pwd)
cm=$build/chunkmeans
reps=${REPS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/scale.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=${2:-}
if [ -z "$img" ]; then
    img=$work/in.tif
    "$build/benchmarks/cm-mkimage" "$img" --width 10000 --height 10000 >/dev/null
fi
img=$(realpath "$img")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
args=(run "$img" out.tif -k 8 --seed 1 -q)
cores=$(nproc)
half=$((cores / 2 > 0 ? cores / 2 : 1))
slow=false
if [ "$(id -u)" = 0 ] && command -v tc >/dev/null && unshare -n true 2>/dev/null; then
    slow=true
fi

# Each configuration: a label and the command, run in $work; "tcp RATE WRITE" runs 2 ranks of
# one thread over Open MPI's TCP transport on a loopback limited to RATE (with an Ethernet MTU:
# tbf drops any packet larger than its burst, and lo's MTU is 64 KiB), and records the bytes
# the loopback carried (the namespace's own counters) in $work/bytes.
labels=() cmds=()
add() { labels+=("$1"); cmds+=("$2"); }
add "one process, $cores threads" "$cm ${args[*]}"
for cfg in "1 $cores" "2 $half" "4 1"; do
    set -- $cfg
    for mode in gather parallel; do
        [ "$1" = 1 ] && [ $mode = parallel ] && continue
        add "mpirun -n $1 x $2 threads, $mode" \
            "mpirun --bind-to none -n $1 -x OMP_NUM_THREADS=$2 $cm ${args[*]} --mpi-write $mode"
    done
done
if $slow; then
    for rate in 1gbit 100mbit; do
        for mode in gather parallel; do
            add "2 ranks over tcp at $rate, $mode" "tcp $rate $mode"
        done
    done
fi

tcp() { # RATE MODE
    unshare -n bash -c "ip link set lo up mtu 1500 && tc qdisc add dev lo root tbf rate $1 \
        burst 64kb latency 400ms && mpirun --bind-to none -n 2 -x OMP_NUM_THREADS=1 \
        --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
        $cm ${args[*]} --mpi-write $2 >/dev/null && awk '/lo:/ { print \$10 }' /proc/net/dev \
        > $work/bytes"
}

cd "$work"
declare -A times mb same
for ((r = 0; r < reps; r++)); do
    for i in "${!cmds[@]}"; do
        rm -f out.tif bytes
        t0=$(date +%s.%N)
        if [[ ${cmds[$i]} == tcp* ]]; then tcp ${cmds[$i]#tcp }; else ${cmds[$i]} >/dev/null; fi
        t1=$(date +%s.%N)
        times[$i]="${times[$i]:-} $(echo "$t1 - $t0" | bc -l)"
        [ -f bytes ] && mb[$i]=$(($(cat bytes) / 1000000))
        if [ "$i" = 0 ]; then
            mv out.tif one.tif
        elif ! cmp -s one.tif out.tif; then
            same[$i]="DIFFERENT BYTES"
        fi
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(echo "${times[0]}" | median)
printf '%-40s %9s %6s\n' "median of $reps runs" "seconds" "ratio"
for i in "${!cmds[@]}"; do
    t=$(echo "${times[$i]}" | median)
    note=${same[$i]:-$([ "$i" = 0 ] && echo "" || echo "same bytes")}
    [ -n "${mb[$i]:-}" ] && note="$note, ${mb[$i]} MB over lo"
    printf '%-40s %9.2f %6.2f  %s\n' "${labels[$i]}" "$t" "$(echo "$t / $base" | bc -l)" "$note"
done
$slow || echo "(the slow-network runs need root, tc and unshare: skipped)"
