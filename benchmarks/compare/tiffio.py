"""Shared helpers of the comparison scripts: streaming TIFF reads by bands of rows through
tifffile's zarr store, a tiled deflate writer fed one band of rows at a time, and logging.
Debian 12's tifffile (2023.2.3) decodes deflate itself (zlib), without imagecodecs."""

import math
import os
import sys
import time

import numpy as np
import tifffile

_T0 = time.monotonic()


def log(tool, msg):
    """A progress line on stderr, with seconds since the script started."""
    print(f"{tool}: [{time.monotonic() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def ncpu():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class Reader:
    """Random access by bands of rows to the first image of a TIFF (tiled or striped), with its
    own file handle: make one per thread."""

    def __init__(self, path):
        import zarr  # Debian: python3-zarr

        self.tif = tifffile.TiffFile(path)
        page = self.tif.pages[0]
        self.page = page
        self.store = page.aszarr()
        self.z = zarr.open(self.store, mode="r")
        self.shape = self.z.shape  # (H, W) or (H, W, C)
        self.chunk_rows = self.z.chunks[0]

    def rows(self, y0, y1):
        a = self.z[y0:y1]
        return a if a.ndim == 3 else a[:, :, None]

    def close(self):
        self.store.close()
        self.tif.close()


def band_rows(*chunk_rows, cap=4096, fallback=512):
    """Rows per band: a multiple of every file's chunk height, so no chunk is decoded twice."""
    n = 1
    for c in chunk_rows:
        n = n * c // math.gcd(n, c)
    if n > cap:
        return fallback
    return n * max(1, fallback // n)


def write_tiled(path, height, width, bands, row_bands, tile=512, workers=None):
    """Writes a tiled, deflate (zlib, horizontal predictor) TIFF from row_bands, an iterator of
    uint8 arrays of tile rows x width x bands (the last one may be shorter), one at a time."""
    workers = workers or ncpu()

    def tiles():
        for band in row_bands:
            for x0 in range(0, width, tile):
                t = band[:, x0:x0 + tile]
                if t.shape[0] != tile or t.shape[1] != tile:
                    full = np.zeros((tile, tile, bands), np.uint8)
                    full[:t.shape[0], :t.shape[1]] = t
                    t = full
                yield np.ascontiguousarray(t)

    raw = height * width * bands
    tifffile.imwrite(path, tiles(), shape=(height, width, bands), dtype=np.uint8,
                     tile=(tile, tile), compression="zlib", predictor=True,
                     photometric="rgb" if bands == 3 else "minisblack",
                     planarconfig="contig", bigtiff=raw > 2**32 - 2**25, maxworkers=workers)
