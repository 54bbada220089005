"""Builds the corpus of benchmarks/quality.sh: real photographs from Debian packages, converted
to TIFF (what chunkmeans reads), plus images made from them: GDAL GeoTIFFs with nodata, an RGBA
image and two large (>= 50 MP) upscaled ones.

    quality_corpus.py CORPUS_DIR [NAME...]     (default: every image)

Writes, for every image NAME: NAME.tif (the input of chunkmeans and scikit-learn, the reference
of every MSE), NAME.png (the input of Pillow, pngquant and ImageMagick: the colour bands only,
8 or 16 bits) and NAME.json (source, description). Deterministic: the same packages give the
same files. An image already there is kept, so the corpus is built once; a file appears only
when complete (written to a temporary name, then renamed).
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import tifffile

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
MPL = "/usr/share/matplotlib/mpl-data/sample_data"
SKLEARN = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
NODATA_TAG = 42113  # GDAL_NODATA (ASCII)


def load(path, mode):
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def scipy_face():
    import warnings

    import scipy.misc

    with warnings.catch_warnings():  # deprecated in 1.10 (scipy.datasets needs a download)
        warnings.simplefilter("ignore")
        return scipy.misc.face()


def sklearn_sample(name):
    return load(f"{SKLEARN}/{name}", "RGB")


# Plain photographs: name -> (package, path or loader, PIL mode).
PHOTOS = {
    "astronaut": ("python3-skimage", f"{SKIMAGE}/astronaut.png", "RGB"),
    "chelsea": ("python3-skimage", f"{SKIMAGE}/chelsea.png", "RGB"),
    "coffee": ("python3-skimage", f"{SKIMAGE}/coffee.png", "RGB"),
    "motorcycle": ("python3-skimage", f"{SKIMAGE}/motorcycle_left.png", "RGB"),
    "hubble": ("python3-skimage", f"{SKIMAGE}/hubble_deep_field.jpg", "RGB"),
    "ihc": ("python3-skimage", f"{SKIMAGE}/ihc.png", "RGB"),
    "rocket": ("python3-skimage", f"{SKIMAGE}/rocket.jpg", "RGB"),
    "retina": ("python3-skimage", f"{SKIMAGE}/retina.jpg", "RGB"),
    "camera": ("python3-skimage", f"{SKIMAGE}/camera.png", "L"),
    "moon": ("python3-skimage", f"{SKIMAGE}/moon.png", "L"),
    "grace_hopper": ("python3-matplotlib", f"{MPL}/grace_hopper.jpg", "RGB"),
    "face": ("python3-scipy", scipy_face, "RGB"),
    "china": ("python3-sklearn", lambda: sklearn_sample("china.jpg"), "RGB"),
    "flower": ("python3-sklearn", lambda: sklearn_sample("flower.jpg"), "RGB"),
}


def photo(name):
    src = PHOTOS[name][1]
    return src() if callable(src) else load(src, PHOTOS[name][2])


def tmp_name(path):
    d, b = os.path.split(path)
    return os.path.join(d, f".{b}.tmp{os.getpid()}{os.path.splitext(b)[1]}")


def write_tiff(path, a, alpha=False, nodata=None, tile=None):
    """8- or 16-bit, contiguous, deflate TIFF; unassociated alpha last when alpha."""
    kw = dict(compression="zlib", predictor=True, maxworkers=os.cpu_count())
    kw["photometric"] = "minisblack" if a.ndim == 2 else "rgb"
    if alpha:
        kw["extrasamples"] = ["unassalpha"]
    if tile:
        kw["tile"] = (tile, tile)
    if nodata is not None:
        kw["extratags"] = [(NODATA_TAG, "s", 0, str(nodata), True)]
    tmp = tmp_name(path)
    tifffile.imwrite(tmp, a, **kw)
    os.replace(tmp, path)


def write_png(path, colour):
    """The peers' input: the colour bands only (no alpha), 8 bits through Pillow, 16 through
    vips (Pillow writes no 16-bit RGB PNG)."""
    tmp = tmp_name(path)
    if colour.dtype == np.uint8:
        Image.fromarray(colour).save(tmp, compress_level=1)
    else:
        t16 = tmp + ".tif"
        tifffile.imwrite(t16, colour, photometric="rgb" if colour.ndim == 3 else "minisblack")
        subprocess.run(["vips", "copy", t16, tmp + "[compression=1]"], check=True)
        os.remove(t16)
    os.replace(tmp, path)


def geo_rgb(path):
    """python3-gdal: face as an RGB GeoTIFF (UTM 31N, 10 cm pixels) with GDAL_NODATA 0: outside a
    rotated footprint every band is 0 (nodata); inside, red is clipped to 0 where it is below 40,
    so there are valid pixels (0, g, b) with only one band equal to the nodata value."""
    from osgeo import gdal, osr

    gdal.UseExceptions()
    a = photo("face").copy()
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    u = (x - w / 2) * c + (y - h / 2) * s
    v = -(x - w / 2) * s + (y - h / 2) * c
    outside = (np.abs(u) > 0.42 * w) | (np.abs(v) > 0.42 * h)
    red = a[..., 0]
    red[red < 40] = 0
    a[outside] = 0
    tmp = tmp_name(path)
    ds = gdal.GetDriverByName("GTiff").Create(
        tmp, w, h, 3, gdal.GDT_Byte, ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES",
                                       "PHOTOMETRIC=RGB", "INTERLEAVE=PIXEL"])
    ds.SetGeoTransform([500000.0, 0.1, 0.0, 4650000.0, 0.0, -0.1])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(a[..., b])
        band.SetNoDataValue(0)
    ds = None
    os.replace(tmp, path)
    return f"face, rotated footprint outside = 0, red < 40 set to 0; GDAL GTiff, EPSG:32631, nodata 0"


def geo_u16(path):
    """gdal_translate: retina * 257 as a 16-bit GeoTIFF, outside the fundus disc 0 (nodata)."""
    a = photo("retina").astype(np.uint16) * 257
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    a[(x - w / 2) ** 2 + (y - h / 2) ** 2 > (0.46 * min(w, h)) ** 2] = 0
    plain = tmp_name(path) + ".plain.tif"
    tifffile.imwrite(plain, a, photometric="rgb")
    tmp = tmp_name(path)
    subprocess.run(["gdal_translate", "-q", "-a_srs", "EPSG:4326", "-a_ullr", "2.0", "42.0",
                    "2.01", "41.99", "-a_nodata", "0", "-co", "COMPRESS=DEFLATE", "-co",
                    "PREDICTOR=2", "-co", "TILED=YES", plain, tmp], check=True)
    os.remove(plain)
    os.replace(tmp, path)
    return "retina * 257, outside the disc = 0; gdal_translate, EPSG:4326, nodata 0"


def rgba(path):
    """motorcycle_right with unassociated alpha: 0 on the left fifth, then a ramp to 255."""
    a = photo_file(f"{SKIMAGE}/motorcycle_right.png")
    h, w = a.shape[:2]
    ramp = np.clip((np.arange(w) - w / 5) / (0.6 * w), 0, 1)
    alpha = np.broadcast_to(np.round(ramp * 255).astype(np.uint8), (h, w))
    write_tiff(path, np.dstack([a, alpha]), alpha=True)
    return "motorcycle_right, alpha 0 on the left fifth then a ramp to 255 (unassociated)"


def photo_file(p):
    return load(p, "RGB")


def noisy(a, seed):
    """Light triangular noise (-3..3), seeded, so that an upscaled photo is not a few colours."""
    rng = np.random.default_rng(seed)
    out = a.astype(np.int16)
    for y in range(0, a.shape[0], 512):  # by bands of rows: bounded memory
        sl = out[y:y + 512]
        sl += rng.integers(-1, 2, sl.shape, dtype=np.int8)
        sl += rng.integers(-2, 3, sl.shape, dtype=np.int8)
    return np.clip(out, 0, 255).astype(np.uint8)


def large_coffee(path):
    im = Image.fromarray(photo("coffee")).resize((8940, 5960), Image.Resampling.LANCZOS)
    write_tiff(path, noisy(np.asarray(im), 1), tile=512)
    return "coffee upscaled 14.9x (Lanczos) + noise (-3..3, seed 1); tiled 512, deflate"


def large_mosaic(path):
    cw, ch = 4000, 3250
    cells = []
    for p in (f"{SKIMAGE}/astronaut.png", f"{SKIMAGE}/chelsea.png",
              f"{SKIMAGE}/motorcycle_left.png", f"{MPL}/grace_hopper.jpg"):
        with Image.open(p) as im:  # scale to cover the cell, crop the centre
            im = im.convert("RGB")
            f = max(cw / im.width, ch / im.height)
            im = im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)
            x, y = (im.width - cw) // 2, (im.height - ch) // 2
            cells.append(np.asarray(im.crop((x, y, x + cw, y + ch))))
    a = np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:])])
    write_tiff(path, noisy(a, 2), tile=512)
    return "2x2 mosaic of astronaut, chelsea, motorcycle, grace_hopper, each upscaled to 4000x3250 " \
           "(Lanczos, centre crop) + noise (-3..3, seed 2); tiled 512, deflate"


# Made images: name -> (packages, maker). The maker writes NAME.tif and returns a description.
MADE = {
    "geo-rgb-nodata": ("python3-scipy python3-gdal", geo_rgb),
    "geo-u16-nodata": ("python3-skimage gdal-bin", geo_u16),
    "motorcycle-rgba": ("python3-skimage", rgba),
    "large-coffee": ("python3-skimage", large_coffee),
    "large-mosaic": ("python3-skimage python3-matplotlib", large_mosaic),
}
LARGE = ("large-coffee", "large-mosaic")
ALL = list(PHOTOS) + list(MADE)


def read_image(path):
    """(colour bands as H x W x C, valid mask, info) of a TIFF. Valid: alpha (if any) > 0 and
    not every colour band equal to GDAL_NODATA (NaN matches NaN), as rasterio and GDAL read it."""
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        a = page.asarray()
        extra = tuple(page.extrasamples)  # 1: associated alpha, 2: unassociated, 0: other
        tag = page.tags.get(NODATA_TAG)
    if a.ndim == 2:
        a = a[..., None]
    colour = a[..., :a.shape[2] - len(extra)]
    alpha = bool(extra) and extra[0] in (1, 2)
    valid = a[..., colour.shape[2]] > 0 if alpha else np.ones(a.shape[:2], bool)
    nodata = None
    if tag is not None:
        text = str(tag.value).strip("\x00 ")
        nodata = float("nan") if text.lower() == "nan" else float(text)
        same = np.isnan(colour) if math.isnan(nodata) else colour == nodata
        valid &= ~same.all(axis=2)
    info = {"width": a.shape[1], "height": a.shape[0], "colour_bands": int(colour.shape[2]),
            "alpha": alpha, "dtype": str(a.dtype), "nodata": nodata, "valid": int(valid.sum())}
    return colour, valid, info


def peer_input(colour, valid):
    """The colour bands for the tools that take no mask: invalid pixels (nodata, alpha 0) are
    replaced by valid pixels drawn at random (seeded), so that these tools see the colour
    distribution of the valid pixels and spend no colour on the nodata area."""
    if valid.all():
        return colour
    c = colour.shape[2]
    flat = colour.reshape(-1, c).copy()
    src = np.flatnonzero(valid)
    bad = np.flatnonzero(~valid)
    flat[bad] = flat[src[np.random.default_rng(0).integers(0, len(src), len(bad))]]
    return flat.reshape(colour.shape)


def build(d, name):
    tif, png, meta = (os.path.join(d, name + e) for e in (".tif", ".png", ".json"))
    if os.path.exists(meta):
        return False
    if name in PHOTOS:
        write_tiff(tif, photo(name))
        pkg, src = PHOTOS[name][0], PHOTOS[name][1]
        desc = src if isinstance(src, str) else f"{name} (loaded in Python)"
    else:
        pkg, maker = MADE[name]
        desc = maker(tif)
    colour, valid, _ = read_image(tif)
    write_png(png, np.squeeze(peer_input(colour, valid), axis=2) if colour.shape[2] == 1 else
              peer_input(colour, valid))
    with open(meta + ".tmp", "w") as f:
        json.dump({"name": name, "packages": pkg, "source": desc}, f)
    os.replace(meta + ".tmp", meta)
    return True


def main():
    d = sys.argv[1]
    names = sys.argv[2:] or ALL
    os.makedirs(d, exist_ok=True)
    for n in names:
        if n not in ALL:
            sys.exit(f"quality_corpus: unknown image {n} (known: {' '.join(ALL)})")
        if build(d, n):
            print(f"quality_corpus: built {n}", file=sys.stderr)


if __name__ == "__main__":
    main()
