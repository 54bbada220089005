#!/usr/bin/python3
"""Mean squared error of a filtered image against its input, streamed by bands of rows.

usage: mse.py IN.tif OUT.tif            OUT: the recoloured image (same size and bands as IN)
       mse.py IN.tif LABELS.tif --labels  LABELS: a one-band class map; each class is
                                          recoloured with its mean colour in IN (the best
                                          colours for that partition)

Prints "mse X" (mean over pixels and bands of squared differences, in sample units: 8-bit
levels here) and, with --labels, "classes N". Memory: a few bands of rows per thread."""

import argparse
import concurrent.futures as cf
import sys
import threading

import numpy as np

from tiffio import Reader, band_rows, log, ncpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("out")
    ap.add_argument("--labels", action="store_true")
    ap.add_argument("--threads", type=int, default=ncpu())
    args = ap.parse_args()

    ra, rb = Reader(args.ref), Reader(args.out)
    h, w = ra.shape[0], ra.shape[1]
    c = ra.rows(0, 1).shape[2]
    hb, wb = rb.shape[0], rb.shape[1]
    cb = rb.rows(0, 1).shape[2]
    if (hb, wb) != (h, w) or (cb != c and not args.labels) or (args.labels and cb != 1):
        sys.exit(f"mse: {args.out}: {wb}x{hb}x{cb}, expected {w}x{h}x{1 if args.labels else c}")
    step = band_rows(ra.chunk_rows, rb.chunk_rows)
    ra.close()
    rb.close()

    local = threading.local()

    def readers():
        if not hasattr(local, "a"):
            local.a, local.b = Reader(args.ref), Reader(args.out)
        return local.a, local.b

    def band(y0):
        a_r, b_r = readers()
        y1 = min(h, y0 + step)
        a = a_r.rows(y0, y1)
        b = b_r.rows(y0, y1)
        if args.labels:
            lab = b[:, :, 0].ravel().astype(np.int64)
            n = np.bincount(lab)
            sums = [np.bincount(lab, weights=a[:, :, k].ravel()) for k in range(c)]
            sq = sum(int(np.dot(col, col)) for col in
                     (a[:, :, k].ravel().astype(np.int64) for k in range(c)))
            return n, sums, sq
        sse = 0.0
        for x0 in range(0, w, 4096):  # bounded temporaries
            d = (a[:, x0:x0 + 4096].astype(np.float64) - b[:, x0:x0 + 4096]).ravel()
            sse += float(np.dot(d, d))
        return sse

    total = 0.0
    n_all, sums_all, sq_all = None, None, 0
    with cf.ThreadPoolExecutor(max(1, args.threads)) as ex:
        for i, r in enumerate(ex.map(band, range(0, h, step))):
            if args.labels:
                n, sums, sq = r
                if n_all is None:
                    n_all, sums_all = np.zeros(0, np.int64), [np.zeros(0) for _ in range(c)]
                m = max(len(n_all), len(n))
                n_all = np.pad(n_all, (0, m - len(n_all))) + np.pad(n, (0, m - len(n)))
                sums_all = [np.pad(s, (0, m - len(s))) + np.pad(t, (0, m - len(t)))
                            for s, t in zip(sums_all, sums)]
                sq_all += sq
            else:
                total += r
            if i % 64 == 63:
                log("mse", f"row {min(h, (i + 1) * step)} of {h}")

    if args.labels:
        used = n_all > 0
        between = sum(float(np.sum(s[used] ** 2 / n_all[used])) for s in sums_all)
        total = sq_all - between
        print(f"classes {int(used.sum())}")
    print(f"mse {total / (h * w * c):.4f}")


if __name__ == "__main__":
    main()
