#!/usr/bin/python3
"""Real-photo inputs of compare.sh: a mosaic of python3-skimage's photographs, each panel
upscaled (bilinear) to its cell with seeded Gaussian noise, written as an 8-bit RGB TIFF (deflate
level 2 as cm-mkimage's, horizontal predictor, 512 x 512 tiles), tile by tile in bounded memory;
or the same pixels as a PNG or a JPEG, a row of tiles at a time.

usage: real_mosaic.py cached CACHE_DIR WIDTH HEIGHT [FORMAT]
                                        prints the path of the image in CACHE_DIR, made first
                                        if it is not there
       real_mosaic.py write OUT WIDTH HEIGHT   makes the image at OUT (the format from its
                                        extension: .tif, .png, .jpg)
       real_mosaic.py describe [FORMAT]  one line: the recipe and the photos
FORMAT: tif (default), png or jpeg.
  png: 8-bit RGB, non-interlaced, as an encoder with default settings writes a photo: every row
       takes the filter whose bytes have the least sum of absolute values (libpng's heuristic;
       the first row of each row of tiles takes Sub, since its tile row is made alone), zlib
       level 6. Each row of tiles is deflated on its own thread and the pieces are joined into
       one zlib stream (ended by a sync flush, as pigz does), in IDAT chunks of 1 MiB.
  jpeg: PPM rows piped into libjpeg-turbo's cjpeg -quality 90 (baseline, 4:2:0 chroma), which
       streams: memory does not grow with the image.

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
import struct
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
# PNG: zlib's and libpng's default level. A photo PNG is written at 6 by nearly every tool, and
# its inflate speed is what the benchmark meets; the cost is the time to make it (about 10 MB/s
# a core on these noisy rows, once, into the cache).
PNG_ZLIB_LEVEL = 6
PNG_IDAT = 1 << 20  # bytes of zlib stream per IDAT chunk
PNG_SLICE = 8  # rows filtered at a time: a dozen int16 temporaries of 2 MB at 40000 columns
JPEG_QUALITY = 90
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


def cjpeg_version():
    import subprocess

    try:
        r = subprocess.run(["cjpeg", "-version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return (r.stderr or r.stdout).strip().splitlines()[0]


def recipe(width, height, fmt="tif"):
    import skimage

    r = {
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
    # The TIFF recipe has no "format" key: its hash, and so the name of files already cached,
    # stays what it was before the other formats came.
    if fmt == "png":
        r["format"] = "png"
        r["layout"] = (f"8-bit RGB PNG, non-interlaced, adaptive filter per row (least sum of "
                       f"absolute values; Sub on the first row of each {TILE}-row band), zlib "
                       f"level {PNG_ZLIB_LEVEL}, bands deflated apart and joined (sync flush), "
                       f"IDAT chunks of {PNG_IDAT} bytes")
        r["zlib"] = zlib.ZLIB_RUNTIME_VERSION
    elif fmt == "jpeg":
        r["format"] = "jpeg"
        r["layout"] = f"8-bit RGB JPEG, PPM rows into cjpeg -quality {JPEG_QUALITY} (baseline, 4:2:0)"
        r["cjpeg"] = cjpeg_version()  # the bytes depend on the encoder
    return r


def describe(fmt="tif"):
    r = recipe(0, 0, "tif")  # cjpeg's version is not needed to say what the image is
    layout = {"tif": f"deflate + predictor, {TILE} tiles",
              "png": f"PNG, adaptive filters, zlib level {PNG_ZLIB_LEVEL}",
              "jpeg": f"JPEG, cjpeg -quality {JPEG_QUALITY}"}[fmt]
    return (f"{GRID[0]} x {GRID[1]} real photographs from {r['source']}: "
            f"{', '.join(PHOTOS)}; each upscaled (bilinear) to its cell, noise sigma {SIGMA} "
            f"(seed {SEED}); {layout}")


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

    def band(self, ty):
        """The pixels of tile row ty, the whole width: the same pixels as the TIFF's tiles."""
        out = np.empty((min(self.h, (ty + 1) * TILE) - ty * TILE, self.w, 3), np.uint8)
        for tx in range(self.tiles_x):  # filled in place: one band, not a list and its copy
            out[:, tx * TILE:(tx + 1) * TILE] = self.tile(ty, tx)
        return out

    def encoded(self, idx):
        """Tile idx (row-major) as stored: padded to a whole tile, horizontal predictor, zlib."""
        ty, tx = divmod(idx, self.tiles_x)
        t = self.tile(ty, tx)
        full = np.zeros((TILE, TILE, 3), np.uint8)
        full[:t.shape[0], :t.shape[1]] = t
        d = full.copy()
        d[:, 1:] -= full[:, :-1]  # wraps modulo 256, as TIFF's predictor 2
        return zlib.compress(d.tobytes(), ZLIB_LEVEL)


def in_order(n, threads, fn):
    """fn(0), fn(1), ... fn(n - 1), computed on `threads` threads, yielded in order, with at
    most threads + 1 results made and not yet taken (a row of tiles of the 1-gigapixel image
    is 61 MB)."""
    with cf.ThreadPoolExecutor(threads) as ex:
        window = []
        for i in range(n):
            window.append(ex.submit(fn, i))
            if len(window) > threads:
                yield window.pop(0).result()
        for f in window:
            yield f.result()


def adler32_combine(a1, a2, len2):
    """The Adler-32 of A + B from those of A (a1) and B (a2) and B's length (zlib's
    adler32_combine, which Python's zlib does not offer)."""
    base = 65521
    s1 = ((a1 & 0xFFFF) + (a2 & 0xFFFF) - 1) % base
    s2 = ((a1 >> 16) + (a2 >> 16) + (len2 % base) * ((a1 & 0xFFFF) - 1)) % base
    return s1 | (s2 << 16)


def png_filter_rows(x, prev):
    """x: int16 rows (n, 3 * width) of 8-bit RGB; prev: the row above the first one, or None
    (the first row then takes Sub, which needs none). Returns the filtered rows as PNG stores
    them: uint8 (n, 1 + 3 * width), the filter type first."""
    n, m = x.shape
    up = np.empty_like(x)
    up[1:] = x[:-1]
    up[0] = 0 if prev is None else prev
    left = np.zeros_like(x)
    left[:, 3:] = x[:, :-3]
    ul = np.zeros_like(x)
    ul[:, 3:] = up[:, :-3]
    p = left + up - ul
    pa, pb, pc = np.abs(up - ul), np.abs(left - ul), np.abs(p - ul)  # |p-a|, |p-b|, |p-c|
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    cands = [x, x - left, x - up, x - ((left + up) >> 1), x - paeth]  # None Sub Up Average Paeth
    cost = np.empty((5, n), np.int64)
    for f, d in enumerate(cands):
        d &= 255  # the byte PNG stores, then its cost as a signed byte
        cost[f] = np.abs(np.where(d > 127, d - 256, d)).sum(axis=1)
    choice = cost.argmin(axis=0)
    if prev is None:
        choice[0] = 1
    out = np.empty((n, m + 1), np.uint8)
    out[:, 0] = choice
    for f, d in enumerate(cands):
        rows = choice == f
        if rows.any():
            out[rows, 1:] = d[rows]
    return out


def png_chunk(f, kind, data):
    f.write(struct.pack(">I", len(data)))
    f.write(kind)
    f.write(data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def write_png(path, m, threads, description):
    """The mosaic as a PNG: each row of tiles filtered and deflated (raw deflate, ending with a
    sync flush, the last one with Z_FINISH) on its own thread, the pieces joined into one zlib
    stream behind the 2-byte header, with the Adler-32 of the whole combined from the pieces'."""
    last = m.tiles_y - 1

    def encode(ty):
        rows = m.band(ty).reshape(-1, m.w * 3)
        co = zlib.compressobj(PNG_ZLIB_LEVEL, zlib.DEFLATED, -15)
        out, adler, length, prev = [], 1, 0, None
        for y0 in range(0, rows.shape[0], PNG_SLICE):
            x = rows[y0:y0 + PNG_SLICE].astype(np.int16)
            b = png_filter_rows(x, prev).tobytes()
            prev = x[-1]
            adler = zlib.adler32(b, adler)
            length += len(b)
            out.append(co.compress(b))
        out.append(co.flush(zlib.Z_FINISH if ty == last else zlib.Z_SYNC_FLUSH))
        return out, adler, length  # pieces, not joined: no second copy of the band's stream

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", m.w, m.h, 8, 2, 0, 0, 0))
        if description:
            png_chunk(f, b"tEXt", b"Description\0" + description.encode("latin-1", "replace"))
        pending = bytearray(b"\x78\x9c")  # zlib header: deflate, 32 KiB window, level 6
        adler = 1
        for ty, (pieces, a, n) in enumerate(in_order(m.tiles_y, threads, encode)):
            adler = adler32_combine(adler, a, n)
            for z in pieces:
                pending += z
                while len(pending) >= PNG_IDAT:
                    png_chunk(f, b"IDAT", bytes(pending[:PNG_IDAT]))
                    del pending[:PNG_IDAT]
            if ty % 8 == 7:
                log(f"row of tiles {ty + 1} of {m.tiles_y}")
        pending += struct.pack(">I", adler)
        for i in range(0, len(pending), PNG_IDAT):
            png_chunk(f, b"IDAT", bytes(pending[i:i + PNG_IDAT]))
        png_chunk(f, b"IEND", b"")


def write_jpeg(path, m, threads):
    """The mosaic as a JPEG: binary PPM rows, a row of tiles at a time, into cjpeg's stdin.
    Baseline cjpeg compresses as the rows come, so neither side holds the image."""
    import subprocess

    if cjpeg_version() is None:
        sys.exit("real_mosaic: no cjpeg (Debian: apt-get install libjpeg-turbo-progs)")
    p = subprocess.Popen(["cjpeg", "-quality", str(JPEG_QUALITY), "-outfile", path],
                         stdin=subprocess.PIPE)
    try:
        p.stdin.write(b"P6\n%d %d\n255\n" % (m.w, m.h))
        for ty, band in enumerate(in_order(m.tiles_y, threads, m.band)):
            p.stdin.write(band.tobytes())
            if ty % 8 == 7:
                log(f"row of tiles {ty + 1} of {m.tiles_y}")
        p.stdin.close()
    except BrokenPipeError:
        pass
    finally:
        rc = p.wait()
    if rc != 0:
        sys.exit(f"real_mosaic: cjpeg exited {rc}")


def fmt_of(path):
    ext = os.path.splitext(path)[1].lower()
    return {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(ext, "tif")


def write(path, width, height, threads=None, description="", fmt="tif"):
    import tifffile

    if fmt == "jpeg" and max(width, height) > 65500 or fmt == "png" and max(width, height) >= 2**31:
        sys.exit(f"real_mosaic: {width}x{height} is too large for {fmt}")
    m = Mosaic(width, height)
    n = m.tiles_x * m.tiles_y
    threads = threads or len(os.sched_getaffinity(0))
    log(f"{width}x{height} {fmt}: {n} tiles on {threads} threads -> {path}")
    if fmt != "tif":
        if fmt == "png":
            write_png(path, m, threads, description)
        else:
            write_jpeg(path, m, threads)
        log(f"done, {os.path.getsize(path) / 2**20:.1f} MiB")
        return

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


def cached(cache_dir, width, height, fmt="tif"):
    r = recipe(width, height, fmt)
    key = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:12]
    # mosaic-WxH-KEY.tif as before; mosaic-png-WxH-KEY.png and mosaic-jpeg-WxH-KEY.jpg, whose
    # stems do not start with a TIFF's, so that no format removes another's files.
    stem = f"mosaic-{width}x{height}" if fmt == "tif" else f"mosaic-{fmt}-{width}x{height}"
    ext = {"tif": ".tif", "png": ".png", "jpeg": ".jpg"}[fmt]
    tif = os.path.join(cache_dir, f"{stem}-{key}{ext}")
    side = tif[:-len(ext)] + ".json"
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
            write(tmp, width, height, description=json.dumps(r, sort_keys=True), fmt=fmt)
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
    if a[:1] == ["describe"] and len(a) <= 2 and a[1:2] in ([], ["tif"], ["png"], ["jpeg"]):
        print(describe(*a[1:]))
    elif (a[:1] == ["cached"] and len(a) in (4, 5) and a[4:] in ([], ["tif"], ["png"], ["jpeg"])
          or a[:1] == ["write"] and len(a) == 4):
        w, h = int(a[2]), int(a[3])
        if w < 1 or h < 1:
            sys.exit("real_mosaic: WIDTH and HEIGHT must be positive")
        if a[0] == "cached":
            print(cached(a[1], w, h, *a[4:]))
        else:
            fmt = fmt_of(a[1])
            write(a[1], w, h, fmt=fmt,
                  description=json.dumps(recipe(w, h, fmt), sort_keys=True))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
