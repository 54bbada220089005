#!/usr/bin/python3
"""Real-photo inputs of compare.sh: a mosaic of python3-skimage's photographs, each panel
upscaled (bilinear) to its cell with seeded Gaussian noise, written as an 8-bit RGB TIFF (deflate
level 2 as cm-mkimage's, horizontal predictor, 512 x 512 tiles), tile by tile in bounded memory.

usage: real_mosaic.py cached CACHE_DIR WIDTH HEIGHT   prints the path of the image in CACHE_DIR,
                                                      made first if it is not there
       real_mosaic.py write OUT.tif WIDTH HEIGHT      makes the image at OUT.tif
       real_mosaic.py describe                        one line: the recipe and the photos

Deterministic: every tile's noise comes from its own generator keyed by (seed, tile row, tile
column), so the same recipe gives the same pixels whatever the number of threads. A cached image
is named by the hash of its recipe (VERSION, photos, grid, noise, layout, and the versions of
scikit-image and NumPy that make the pixels): a new recipe makes a new file and removes the old
ones of the same size. Files appear only when complete (written to a temporary name, renamed).
"""

import concurrent.futures as cf
import fcntl
import hashlib
import json
import os
import sys
import time
import zlib

import numpy as np

VERSION = 2  # bump when the pixels or the layout change
SEED = 1
SIGMA = 2.0  # noise, in 8-bit levels
GRID = (4, 3)  # columns, rows
TILE = 512
ZLIB_LEVEL = 2  # as cm-mkimage: 3.5 times faster than 6 here, for a file 4 % larger
# Twelve distinct photographs that Debian's python3-skimage ships (nine in colour, three grey,
# used as R = G = B), in grid order.
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket",
          "hubble_deep_field", "immunohistochemistry", "retina", "camera",
          "motorcycle_left", "moon", "motorcycle_right", "brick"]

_T0 = time.monotonic()


def log(msg):
    print(f"real_mosaic: [{time.monotonic() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def load_photo(name):
    import skimage.data as d

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = d.stereo_motorcycle()
        im = left if name == "motorcycle_left" else right
    else:
        im = getattr(d, name)()
    if im.ndim == 2:
        im = np.stack([im] * 3, axis=-1)
    im = im[:, :, :3]
    assert im.dtype == np.uint8, f"{name}: {im.dtype}"
    return im.astype(np.float32)


def recipe(width, height):
    import skimage

    return {
        "generator": "benchmarks/compare/real_mosaic.py",
        "version": VERSION,
        "width": width,
        "height": height,
        "photos": PHOTOS,
        "source": f"python3-skimage {skimage.__version__} (skimage.data)",
        "grid": f"{GRID[0]}x{GRID[1]}",
        "resize": "bilinear, pixel centres, edges clamped",
        "noise": f"gaussian sigma {SIGMA}, seed {SEED}, per tile",
        "layout": f"8-bit RGB, deflate level {ZLIB_LEVEL}, horizontal predictor, {TILE}x{TILE} tiles",
        "numpy": np.__version__,
    }


def describe():
    r = recipe(0, 0)
    return (f"{GRID[0]} x {GRID[1]} real photographs from {r['source']}: "
            f"{', '.join(PHOTOS)}; each upscaled (bilinear) to its cell, noise sigma {SIGMA} "
            f"(seed {SEED}); deflate + predictor, {TILE} tiles")


def edges(n, parts):
    return [i * n // parts for i in range(parts + 1)]


def coords(lo, hi, c0, c1, n_src):
    """Source coordinates of cell pixels lo..hi-1 (cell c0..c1 maps onto n_src samples): the
    lower index, the upper one and the weight of the upper one."""
    s = (np.arange(lo, hi, dtype=np.float64) - c0 + 0.5) * (n_src / (c1 - c0)) - 0.5
    s = np.clip(s, 0, n_src - 1)
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, (s - i0).astype(np.float32)


class Mosaic:
    def __init__(self, width, height):
        self.w, self.h = width, height
        self.photos = [load_photo(n) for n in PHOTOS]
        self.xe, self.ye = edges(width, GRID[0]), edges(height, GRID[1])
        self.tiles_x = -(-width // TILE)
        self.tiles_y = -(-height // TILE)

    def tile(self, ty, tx):
        """The pixels of tile (ty, tx), cut to the image."""
        y0, x0 = ty * TILE, tx * TILE
        y1, x1 = min(self.h, y0 + TILE), min(self.w, x0 + TILE)
        out = np.empty((y1 - y0, x1 - x0, 3), np.float32)
        for r in range(GRID[1]):
            ya, yb = max(y0, self.ye[r]), min(y1, self.ye[r + 1])
            if ya >= yb:
                continue
            for c in range(GRID[0]):
                xa, xb = max(x0, self.xe[c]), min(x1, self.xe[c + 1])
                if xa >= xb:
                    continue
                p = self.photos[r * GRID[0] + c]
                iy0, iy1, wy = coords(ya, yb, self.ye[r], self.ye[r + 1], p.shape[0])
                ix0, ix1, wx = coords(xa, xb, self.xe[c], self.xe[c + 1], p.shape[1])
                lo, hi = ix0[0], ix1[-1] + 1  # only the source columns this piece needs
                q = p[:, lo:hi]
                wy = wy[:, None, None]
                rows = q[iy0] * (1 - wy) + q[iy1] * wy
                wx = wx[None, :, None]
                out[ya - y0:yb - y0, xa - x0:xb - x0] = (rows[:, ix0 - lo] * (1 - wx) +
                                                         rows[:, ix1 - lo] * wx)
        rng = np.random.default_rng([SEED, ty, tx])
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(SIGMA)
        np.rint(out, out=out)
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)

    def encoded(self, idx):
        """Tile idx (row-major) as stored: padded to a whole tile, horizontal predictor, zlib."""
        ty, tx = divmod(idx, self.tiles_x)
        t = self.tile(ty, tx)
        full = np.zeros((TILE, TILE, 3), np.uint8)
        full[:t.shape[0], :t.shape[1]] = t
        d = full.copy()
        d[:, 1:] -= full[:, :-1]  # wraps modulo 256, as TIFF's predictor 2
        return zlib.compress(d.tobytes(), ZLIB_LEVEL)


def write(path, width, height, threads=None, description=""):
    import tifffile

    m = Mosaic(width, height)
    n = m.tiles_x * m.tiles_y
    threads = threads or len(os.sched_getaffinity(0))
    log(f"{width}x{height}: {n} tiles on {threads} threads -> {path}")

    def tiles():  # in order, at most 4 per thread in flight
        with cf.ThreadPoolExecutor(threads) as ex:
            window = []
            for i in range(n):
                window.append(ex.submit(m.encoded, i))
                if len(window) >= 4 * threads:
                    yield window.pop(0).result()
                if i % 500 == 499:
                    log(f"tile {i + 1} of {n}")
            for f in window:
                yield f.result()

    tifffile.imwrite(path, tiles(), shape=(height, width, 3), dtype=np.uint8,
                     tile=(TILE, TILE), compression="zlib", predictor=True,
                     photometric="rgb", planarconfig="contig", metadata=None,
                     description=description or None,
                     bigtiff=height * width * 3 > 2**32 - 2**25)
    log(f"done, {os.path.getsize(path) / 2**20:.1f} MiB")


def tmp_name(path):
    d, b = os.path.split(path)
    return os.path.join(d, f".{b}.tmp{os.getpid()}")


def cached(cache_dir, width, height):
    r = recipe(width, height)
    key = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:12]
    stem = f"mosaic-{width}x{height}"
    tif = os.path.join(cache_dir, f"{stem}-{key}.tif")
    side = tif[:-4] + ".json"
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, f".{stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run makes it; a second one waits, then reuses it
        try:
            with open(side) as f:
                if json.load(f).get("bytes") == os.path.getsize(tif):
                    return tif
        except (OSError, ValueError):
            pass
        t0 = time.monotonic()
        tmp = tmp_name(tif)
        try:
            write(tmp, width, height, description=json.dumps(r, sort_keys=True))
            os.rename(tmp, tif)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        r["bytes"] = os.path.getsize(tif)
        r["seconds"] = round(time.monotonic() - t0, 1)
        with open(tmp_name(side), "w") as f:
            json.dump(r, f, indent=1, sort_keys=True)
        os.rename(tmp_name(side), side)
        for old in os.listdir(cache_dir):  # earlier recipes of this size
            if old.startswith(stem + "-") and not old.startswith(f"{stem}-{key}."):
                log(f"removing {old} (an earlier recipe)")
                os.unlink(os.path.join(cache_dir, old))
        return tif


def main():
    a = sys.argv[1:]
    if a[:1] == ["describe"] and len(a) == 1:
        print(describe())
    elif a[:1] in (["cached"], ["write"]) and len(a) == 4:
        w, h = int(a[2]), int(a[3])
        if w < 1 or h < 1:
            sys.exit("real_mosaic: WIDTH and HEIGHT must be positive")
        if a[0] == "cached":
            print(cached(a[1], w, h))
        else:
            write(a[1], w, h, description=json.dumps(recipe(w, h), sort_keys=True))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
