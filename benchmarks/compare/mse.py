#!/usr/bin/python3
"""Mean squared error of a filtered image against its input, by bands of rows.

usage: mse.py IN OUT            OUT: the recoloured image (same size and bands as IN)
       mse.py IN LABELS.tif --labels  LABELS: a one-band class map; each class is
                                          recoloured with its mean colour in IN (the best
                                          colours for that partition)

IN and OUT are TIFF, PNG or JPEG (told by their first bytes); a palette PNG is scored by its
colours. TIFFs are streamed by bands of rows on all threads; a PNG or JPEG of up to
--in-memory-max-mp megapixels (default 100) is decoded whole by Pillow, a larger one
streamed in order (compare/readers.py), and then the bands are read one after the other.

Prints "mse X" (mean over pixels and bands of squared differences, in sample units: 8-bit
levels here) and, with --labels, "classes N". Memory: a few bands of rows per thread, plus
the decoded pixels of an in-memory PNG or JPEG."""

import argparse
import concurrent.futures as cf
import sys
import threading

import numpy as np

from readers import open_image
from tiffio import Reader, band_rows, log, ncpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("out")
    ap.add_argument("--labels", action="store_true")
    ap.add_argument("--threads", type=int, default=ncpu())
    ap.add_argument("--in-memory-max-mp", type=float, default=100)
    args = ap.parse_args()

    try:
        ra = open_image(args.ref, args.in_memory_max_mp)
        rb = open_image(args.out, args.in_memory_max_mp)
    except (OSError, ValueError) as e:
        sys.exit(f"mse: {e}")
    sequential = getattr(ra, "sequential", False) or getattr(rb, "sequential", False)

    def nbands(r):  # a TIFF's as before: from a row, which says what tifffile decodes
        return r.rows(0, 1).shape[2] if isinstance(r, Reader) else r.shape[2]

    h, w = ra.shape[0], ra.shape[1]
    c = nbands(ra)
    hb, wb = rb.shape[0], rb.shape[1]
    cb = nbands(rb)
    if (hb, wb) != (h, w) or (cb != c and not args.labels) or (args.labels and cb != 1):
        sys.exit(f"mse: {args.out}: {wb}x{hb}x{cb}, expected {w}x{h}x{1 if args.labels else c}")
    step = band_rows(ra.chunk_rows, rb.chunk_rows)

    # A TIFF is opened again in every thread (a file handle each); an image held in memory
    # is shared; a streamed one is read in order on this thread.
    def opener(path, r):
        if isinstance(r, Reader):
            r.close()
            return lambda: Reader(path)
        return lambda: r

    open_a, open_b = opener(args.ref, ra), opener(args.out, rb)
    local = threading.local()

    def readers():
        if not hasattr(local, "a"):
            local.a, local.b = open_a(), open_b()
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
    with cf.ThreadPoolExecutor(1 if sequential else max(1, args.threads)) as ex:
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
