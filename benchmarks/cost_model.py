#!/usr/bin/python3
"""The cost model of doc/design-notes.md ("Many ranks"): seconds of a `run` on P nodes, one rank
of CORES threads each, from figures measured on one machine (the defaults are those measured
with benchmarks/scale.sh and `run -v` on the real-photo mosaics, k = 8, 2 cores). Prints the
table of the design notes; change a figure with its option to see what it moves.

  benchmarks/cost_model.py [--remap-px-core 38.7e6] [--out-bytes-gp 33.5e6] ..."""
import argparse


def seconds(a, n_px, tile, P, B, alpha, parallel):
    """One run: sample read and exchange, rank 0's fit, and the remap bounded below by rank
    0's share of the writing."""
    C = n_px / (tile * tile)
    E = a.out_bytes_gp * n_px / 1e9
    share = (P - 1) / P
    remap = n_px / (P * a.cores * a.remap_px_core)
    if parallel:
        writer = 2 * C * share * alpha + E / P / a.disk
    else:
        writer = E * share / B + C * share * alpha + E / a.disk
    sample = a.sample_core_s / (P * a.cores) + (a.sample_bytes / B if P > 1 else 0)
    return sample + a.fit_s + max(remap, writer)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cores", type=int, default=32, help="cores per node")
    p.add_argument("--remap-px-core", type=float, default=38.7e6,
                   help="pixels a core decodes, assigns and encodes per second")
    p.add_argument("--out-bytes-gp", type=float, default=33.5e6, help="output bytes per GP")
    p.add_argument("--sample-core-s", type=float, default=2.34,
                   help="core-seconds to read the sample's chunks")
    p.add_argument("--sample-bytes", type=float, default=29 * 2**20,
                   help="bytes of the sample every rank receives")
    p.add_argument("--fit-s", type=float, default=0.30, help="rank 0's fit, seconds")
    p.add_argument("--disk", type=float, default=1e9, help="bytes per second a node writes")
    a = p.parse_args()
    nets = {"10 GbE": (1.25e9, 20e-6), "100 Gb/s InfiniBand": (12.5e9, 2e-6)}
    print("| image, tiles, network | 1 node | 16 nodes gather / parallel | "
          "64 nodes gather / parallel |")
    print("|---|---:|---:|---:|")
    for gp, tile, net in ((1, 512, "10 GbE"), (100, 512, "10 GbE"), (100, 2048, "10 GbE"),
                          (100, 512, "100 Gb/s InfiniBand")):
        B, alpha = nets[net]
        n = gp * 1e9
        cells = [f"{seconds(a, n, tile, 1, B, alpha, False):.1f}"]
        for P in (16, 64):
            g, q = (seconds(a, n, tile, P, B, alpha, par) for par in (False, True))
            cells.append(f"{g:.2f} / {q:.2f}" if gp == 1 else f"{g:.1f} / {q:.1f}")
        print(f"| {gp} GP, {tile}, {net} (α = {alpha * 1e6:g} µs) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
