#!/usr/bin/env bash
# The same `run` as one process and as an MPI job of 1, 2 and 4 ranks on this machine, and the
# job's traffic over a slow network: a private network namespace whose loopback is limited by
# `tc ... tbf` (root only; skipped otherwise). Prints wall times as ratios to the one-process
# run of the same invocation, and checks with cmp that every job wrote its bytes.
#   benchmarks/scale.sh BUILD_DIR [IMAGE]   (default IMAGE: a generated 100 MP TIFF; for real
#   photographs give the mosaic that compare.sh builds, e.g. its real1gp)
set -euo pipefail
build=$(cd "${1:?usage: scale.sh BUILD_DIR [IMAGE]}" && pwd)
cm=$build/chunkmeans
work=$(mktemp -d "${TMPDIR:-/tmp}/scale.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=${2:-}
if [ -z "$img" ]; then
    img=$work/in.tif
    "$build/benchmarks/cm-mkimage" "$img" --width 10000 --height 10000 >/dev/null
fi
img=$(realpath "$img")
wall_s() { # seconds the command took
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
args=(run "$img" out.tif -k 8 --seed 1 -q)
cores=$(nproc)

cd "$work"
t0=$(wall_s "$cm" "${args[@]}"); mv out.tif one.tif
printf '%-34s %8.2f s  1.00\n' "one process, $cores threads" "$t0"
for cfg in "1 $cores" "2 $((cores / 2 > 0 ? cores / 2 : 1))" "4 1"; do
    set -- $cfg
    t=$(wall_s mpirun --bind-to none -n "$1" -x OMP_NUM_THREADS="$2" "$cm" "${args[@]}")
    same=$(cmp -s one.tif out.tif && echo "same bytes" || echo "DIFFERENT BYTES")
    printf '%-34s %8.2f s  %.2f  %s\n' "mpirun -n $1, $2 threads each" "$t" \
        "$(echo "$t / $t0" | bc -l)" "$same"
    rm -f out.tif
done

# The same job's traffic over a slow link: Open MPI's TCP transport on a loopback limited by tbf,
# with an Ethernet MTU (tbf drops any packet larger than its burst, and lo's MTU is 64 KiB).
# Also prints the bytes the ranks sent each other.
if [ "$(id -u)" = 0 ] && command -v tc >/dev/null && unshare -n true 2>/dev/null; then
    for rate in 1gbit 100mbit; do
        read -r t bytes < <(unshare -n bash -c "ip link set lo up mtu 1500 && tc qdisc add dev lo \
            root tbf rate $rate burst 64kb latency 400ms && t0=\$(date +%s.%N) && mpirun \
            --bind-to none -n 2 -x OMP_NUM_THREADS=1 --mca btl tcp,self --mca btl_tcp_if_include \
            lo --mca oob_tcp_if_include lo '$cm' ${args[*]} >/dev/null && \
            echo \"\$(echo \"\$(date +%s.%N) - \$t0\" | bc -l) \$(cat /sys/class/net/lo/statistics/tx_bytes)\"")
        same=$(cmp -s one.tif out.tif && echo "same bytes" || echo "DIFFERENT BYTES")
        printf '%-34s %8.2f s  %.2f  %s, %s MB sent\n' "2 ranks over tcp, lo at $rate" "$t" \
            "$(echo "$t / $t0" | bc -l)" "$same" "$((bytes / 1000000))"
        rm -f out.tif
    done
else
    echo "(the slow-network runs need root, tc and unshare: skipped)"
fi
