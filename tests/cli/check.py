#!/usr/bin/python3
"""Independent checks of chunkmeans outputs, read with tifffile and numpy (not libtiff
through chunkmeans). Each subcommand exits 1 with a message when its promise does not hold."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tifffile


def read(path):
    """Pixels and first page. Codecs Debian's tifffile cannot decode without imagecodecs (LZW,
    zstd, ...) are first expanded by libtiff's own tiffcp."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        try:
            return page.asarray(), page
        except ValueError as e:
            if "imagecodecs" not in str(e):
                raise
    with tempfile.TemporaryDirectory() as d:
        plain = os.path.join(d, "plain.tif")
        subprocess.run(["tiffcp", "-c", "none", path, plain], check=True)
        with tifffile.TiffFile(plain) as tif:
            return tif.pages[0].asarray(), tif.pages[0]


def fail(msg):
    print("check failed:", msg, file=sys.stderr)
    sys.exit(1)


def colours(a, alpha, opaque_only=False):
    """Distinct tuples of the non-alpha samples (of the pixels with alpha > 0 if asked)."""
    if a.ndim == 2:
        return np.unique(a.reshape(-1))
    if alpha:
        if opaque_only:
            a = a[a[..., -1] != 0]
        a = a[..., :-1]
    return np.unique(a.reshape(-1, a.shape[-1]), axis=0)


def same_shape(a_path, b_path):
    a, pa = read(a_path)
    b, pb = read(b_path)
    if a.shape != b.shape or a.dtype != b.dtype:
        fail(f"{b_path}: shape {b.shape} {b.dtype}, input {a.shape} {a.dtype}")
    if pa.photometric != pb.photometric:
        fail(f"{b_path}: photometric {pb.photometric}, input {pa.photometric}")
    if not pb.is_tiled:
        fail(f"{b_path}: not tiled")


def at_most(path, k, alpha):
    """At most k colours among the pixels that take part (alpha > 0)."""
    a, _ = read(path)
    n = len(colours(a, alpha == "alpha", opaque_only=True))
    if n > int(k) or n < 1:
        fail(f"{path}: {n} distinct colours, expected 1..{k}")
    print(n)


def exactly(path, *want):
    a, _ = read(path)
    got = {tuple(np.atleast_1d(c).tolist()) for c in colours(a, False)}
    want = {tuple(int(v) for v in w.split(",")) for w in want}
    if got != want:
        fail(f"{path}: colours {sorted(got)}, expected {sorted(want)}")


def count(path, alpha):
    a, _ = read(path)
    print(len(colours(a, alpha == "alpha")))


def equal_pixels(*paths):
    first, _ = read(paths[0])
    for p in paths[1:]:
        other, _ = read(p)
        if other.shape != first.shape or not np.array_equal(other, first):
            fail(f"{p} differs from {paths[0]}")


def labels(image_path, labels_path, k, dtype):
    img, _ = read(image_path)
    lab, _ = read(labels_path)
    if lab.dtype != np.dtype(dtype):
        fail(f"{labels_path}: {lab.dtype}, expected {dtype}")
    if lab.shape != img.shape[:2]:
        fail(f"{labels_path}: shape {lab.shape}, image {img.shape[:2]}")
    if lab.max() >= int(k):
        fail(f"{labels_path}: label {lab.max()} >= k={k}")
    pix = img.reshape(lab.size, -1)
    flat = lab.reshape(-1)
    seen = {}
    for label in np.unique(flat):
        cols = np.unique(pix[flat == label], axis=0)
        if len(cols) != 1:
            fail(f"label {label} has {len(cols)} colours")
        seen[int(label)] = tuple(cols[0].tolist())
    if len(set(seen.values())) != len(seen):
        fail("two labels share a colour")


def alpha_kept(in_path, out_path):
    a, _ = read(in_path)
    b, _ = read(out_path)
    if not np.array_equal(a[..., -1], b[..., -1]):
        fail(f"{out_path}: alpha differs from the input")


def model(path, k, bands, pixels):
    m = json.load(open(path))
    if m["k"] != int(k) or m["bands"] != int(bands) or len(m["centroids"]) != int(k):
        fail(f"{path}: k/bands/centroids do not match: {m['k']} {m['bands']}")
    if sum(m["counts"]) != int(pixels) or m["pixels"] != int(pixels):
        fail(f"{path}: counts add up to {sum(m['counts'])}, expected {pixels}")
    for row in m["centroids"]:
        if not all(0 <= v <= 255 for v in row):
            fail(f"{path}: centroid {row} outside 0..255")


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
