#!/usr/bin/python3
"""The input matrix of chunkmeans run: every sample type x band layout x planar configuration x
strip/tile layout x codec (JPEG where libtiff allows it), each input made with cm-mkimage
(libtiff), inputs and outputs read back with tifffile (after GDAL's gdal_translate for codecs
Debian's tifffile cannot decode; libtiff's tiffcp mangles planar-separate tiles). Every case must exit 0 and give an output with the input's size,
sample type and bands, at most k colours among the pixels that take part, and masked pixels
(alpha 0, nodata, NaN/Inf) byte-identical to the input. Usage: matrix.py CHUNKMEANS MKIMAGE."""
import concurrent.futures
import itertools
import os
import subprocess
import sys
import tempfile

import numpy as np
import tifffile

K = 4
W, H = 40, 30
cm, mk = sys.argv[1], sys.argv[2]


def read(path, work):
    """Pixels as (height, width, bands) and the nodata value of the file, if any."""
    with tifffile.TiffFile(path) as t:
        page = t.pages[0]
        nodata = page.tags.get(42113)
        try:
            a = page.asarray()
            if a.ndim == 3 and page.planarconfig == 2:
                a = np.moveaxis(a, 0, -1)
        except ValueError:
            plain = os.path.join(work, os.path.basename(path) + ".plain.tif")
            subprocess.run(["gdal_translate", "-q", "-co", "INTERLEAVE=PIXEL", path, plain],
                           check=True)
            a = tifffile.TiffFile(plain).pages[0].asarray()
        if a.ndim == 2:
            a = a[..., None]
        return a, (float(nodata.value) if nodata else None)


def cases():
    for stype, bands, planar, layout, codec in itertools.product(
            ("u8", "u16", "i16", "f32"), (1, 3, 4, 8), ("contig", "separate"),
            ("tile", "strip", "one-strip"), ("none", "deflate", "zstd", "lzw", "jpeg")):
        if codec == "jpeg" and (stype != "u8" or bands not in (1, 3)):
            continue
        if planar == "separate" and bands == 1:
            continue
        yield stype, bands, planar, layout, codec


def run_case(case, work):
    stype, bands, planar, layout, codec = case
    name = "-".join(map(str, case))
    src, out = os.path.join(work, name + ".tif"), os.path.join(work, name + ".out.tif")
    args = [mk, src, "--width", str(W), "--height", str(H), "--bands", str(bands), "--type",
            stype, "--planar", planar, "--compression", codec, "--pattern", "photo", "-q", "-j1"]
    rows = "8" if codec == "jpeg" else "7"  # JPEG strips must be a multiple of 8 rows
    args += {"tile": ["--tile", "16"], "strip": ["--strip", rows], "one-strip": ["--strip", "0"]}[layout]
    if bands == 8:
        args += ["--alpha"] if planar == "separate" else []
    if stype == "f32":
        args += ["--nan-fraction", "0.05"]
    elif stype in ("u16", "i16") and codec != "jpeg":
        args += ["--nodata", "0"]
    made = subprocess.run(args, capture_output=True, text=True)
    if made.returncode:
        return f"{name}: cm-mkimage failed: {made.stderr.strip()}"
    ran = subprocess.run([cm, "run", src, out, "-k", str(K), "-j1", "-q"], capture_output=True,
                         text=True)
    if ran.returncode:
        return f"{name}: exit {ran.returncode}: {ran.stderr.strip()}"
    a, nodata = read(src, work)
    b, _ = read(out, work)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"{name}: output {b.shape} {b.dtype}, input {a.shape} {a.dtype}"
    alpha = bands in (2, 4) or (bands == 8 and planar == "separate")
    colour = a[..., :-1] if alpha else a
    masked = np.zeros(a.shape[:2], bool)
    if alpha:
        masked |= a[..., -1] == 0
    if nodata is not None:
        masked |= (colour == nodata).any(axis=-1) if not np.isnan(nodata) else False
    if a.dtype.kind == "f":
        masked |= ~np.isfinite(colour).all(axis=-1)
    raw_a = np.ascontiguousarray(a).view(np.uint8).reshape(H, W, -1)
    raw_b = np.ascontiguousarray(b).view(np.uint8).reshape(H, W, -1)
    if not np.array_equal(raw_a[masked], raw_b[masked]):
        return f"{name}: masked pixels changed"
    if alpha and not np.array_equal(a[..., -1], b[..., -1]):
        return f"{name}: alpha changed"
    out_colour = (b[..., :-1] if alpha else b)[~masked]
    n = len(np.unique(out_colour.reshape(len(out_colour), -1), axis=0))
    if n > K:
        return f"{name}: {n} colours among valid pixels, k={K}"
    return None


def main():
    all_cases = list(cases())
    with tempfile.TemporaryDirectory() as work:
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            failures = [f for f in pool.map(lambda c: run_case(c, work), all_cases) if f]
    for f in failures:
        print("FAIL", f)
    print(f"{len(all_cases) - len(failures)} of {len(all_cases)} input cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
