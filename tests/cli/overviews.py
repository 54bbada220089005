#!/usr/bin/python3
"""End-to-end tests of `run --overviews`: the reduced levels of a TIFF output and of its label
map. Every level is checked pixel by pixel against a reference made here with numpy from the
full-resolution label map and image (the most frequent label of each 2x2 block, ties to the
lower label, then to the first pixel in the block's raster order), on blocks written by hand and
on a generated image; GDAL (gdalinfo) must list the levels. Each case takes seconds.
Usage: overviews.py CHUNKMEANS CASE (run by meson test)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tifffile


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


CM = None


def cm(*args, code=0):
    """Runs chunkmeans ARGS, requires exit CODE and no sanitizer report; returns stderr."""
    args = [str(a) for a in args]
    print("$ chunkmeans", " ".join(args), flush=True)
    r = subprocess.run([CM, *args], capture_output=True, text=True, timeout=300)
    expect(not re.search(r"Sanitizer|runtime error:", r.stderr), f"sanitizer report:\n{r.stderr}")
    expect(r.returncode == code, f"chunkmeans {' '.join(args)} exited {r.returncode}, expected "
           f"{code}; stderr: {r.stderr.strip()}")
    return r.stderr


def levels(path):
    """The full image and its reduced levels (NewSubfileType 1), in file order."""
    with tifffile.TiffFile(path) as t:
        pages = list(t.pages)
        for p in pages[1:]:
            expect(p.tags["NewSubfileType"].value == 1,
                   f"{path}: IFD {p.index} is not marked a reduced-resolution image")
        return [p.asarray() for p in pages]


def halve(labels, pixels):
    """The rule, written out: for each 2x2 block (fewer at odd edges), the most frequent label,
    ties to the lower label, and the pixel of the first block member (raster order) with it."""
    h, w = labels.shape
    oh, ow = (h + 1) // 2, (w + 1) // 2
    out_l = np.zeros((oh, ow), labels.dtype)
    out_p = np.zeros((oh, ow) + pixels.shape[2:], pixels.dtype)
    for oy in range(oh):
        for ox in range(ow):
            members = [(y, x) for y in (2 * oy, 2 * oy + 1) for x in (2 * ox, 2 * ox + 1)
                       if y < h and x < w]
            counts = {}
            for y, x in members:
                counts[labels[y, x]] = counts.get(labels[y, x], 0) + 1
            best = min(counts, key=lambda l: (-counts[l], l))
            y, x = next(m for m in members if labels[m] == best)
            out_l[oy, ox] = best
            out_p[oy, ox] = pixels[y, x]
    return out_l, out_p


def check_levels(out, labels, n_levels):
    """OUT's and LABELS' levels are those the rule makes from their full images, N_LEVELS of
    them, each side half the one before (rounded up); every colour is one of the image's."""
    img, lab = levels(out), levels(labels)
    expect(len(img) == n_levels + 1 and len(lab) == n_levels + 1,
           f"{len(img) - 1} and {len(lab) - 1} levels, not {n_levels}")
    colours = set(map(tuple, img[0].reshape(-1, img[0].shape[-1])))
    ref_l, ref_p = lab[0], img[0]
    for n in range(1, n_levels + 1):
        ref_l, ref_p = halve(ref_l, ref_p)
        expect(lab[n].shape == ref_l.shape, f"level {n}: {lab[n].shape}, not {ref_l.shape}")
        bad = np.argwhere(lab[n] != ref_l)
        expect(not len(bad), f"{labels} level {n}: {len(bad)} labels break the rule, first at "
               f"{bad[0] if len(bad) else None}")
        bad = np.argwhere((img[n] != ref_p).any(axis=-1))
        expect(not len(bad), f"{out} level {n}: {len(bad)} pixels break the rule")
        extra = set(map(tuple, img[n].reshape(-1, img[n].shape[-1]))) - colours
        expect(not extra, f"{out} level {n}: colours {sorted(extra)[:3]} are not the image's")


def gdal_overviews(path):
    """The overview sizes gdalinfo lists for band 1."""
    if not shutil.which("gdalinfo"):
        return None
    r = subprocess.run(["gdalinfo", path], capture_output=True, text=True, check=True)
    m = re.search(r"Band 1 .*?\n(?:.*\n)*?\s*Overviews: (.*)", r.stdout)
    return m.group(1).split(", ") if m else []


def smooth_image(h, w, seed):
    r = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    a = np.stack([x, y, (1 - x) * y + 0.3 * np.sin(9 * x)], axis=-1) + r.normal(0, 0.08, (h, w, 3))
    return np.clip(a * 255, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Cases

def case_known_blocks():
    """An image made of 2x2 blocks of four known colours (the model's centres, so the labels
    are known): three alike, two pairs (the lower label wins), all different (the lowest), a
    pair and two singles, and odd edges; level 1 of the image and of the label map is what the
    rule says, block by block."""
    centres = [[10, 10, 10], [200, 40, 40], [40, 200, 40], [40, 40, 200]]
    with open("init.json", "w") as f:
        json.dump({"colors": centres}, f)
    patterns = [[2, 2, 2, 1], [3, 1, 1, 3], [3, 2, 1, 0], [3, 3, 0, 2], [2, 0, 3, 0], [1, 1, 1, 1],
                [0, 3, 3, 0], [2, 3, 3, 2]]
    expected = [2, 1, 0, 3, 0, 1, 0, 2]
    h, w = 34, 37  # 17 x 19 blocks, the last row and column cut in half
    labels = np.zeros((h, w), np.uint8)
    want = np.zeros(((h + 1) // 2, (w + 1) // 2), np.uint8)
    for by in range(want.shape[0]):
        for bx in range(want.shape[1]):
            i = (by * want.shape[1] + bx) % len(patterns)
            block = np.array(patterns[i]).reshape(2, 2)
            labels[2 * by:2 * by + 2, 2 * bx:2 * bx + 2] = block[:h - 2 * by, :w - 2 * bx]
            want[by, bx] = expected[i] if 2 * by + 1 < h and 2 * bx + 1 < w else 255
    tifffile.imwrite("blocks.tif", np.array(centres, np.uint8)[labels], photometric="rgb")
    cm("run", "blocks.tif", "out.tif", "--init", "init.json", "--max-iter", 1, "--tile", 16,
       "--overviews", 1, "--labels", "labels.tif", "-q")
    lab = levels("labels.tif")
    expect(np.array_equal(lab[0], labels), "the label map is not the blocks' labels")
    whole = want != 255  # blocks cut by the edge follow the rule on what is left
    bad = np.argwhere((lab[1] != want) & whole)
    expect(not len(bad), f"level 1: blocks {bad[:4].tolist()} break the rule")
    check_levels("out.tif", "labels.tif", 1)


def case_generated_image():
    """A generated photo-like image of odd sides in tiles of 16 (so many chunks and tiles, and
    levels that end in clipped tiles): every level of the image and label map follows the rule,
    down to one tile (auto), GDAL lists them, and nothing is left beside the outputs."""
    tifffile.imwrite("in.tif", smooth_image(203, 151, seed=3), photometric="rgb",
                     tile=(16, 16), compression="zlib")
    cm("run", "in.tif", "out.tif", "-k", 7, "--seed", 2, "--tile", 16, "--overviews", "auto",
       "--labels", "labels.tif", "-q")
    check_levels("out.tif", "labels.tif", 4)  # 203 -> 102 -> 51 -> 26 -> 13: one tile
    got = gdal_overviews("out.tif")
    expect(got is None or got == ["76x102", "38x51", "19x26", "10x13"],
           f"gdalinfo lists overviews {got}")
    expect(sorted(os.listdir(".")) == ["in.tif", "labels.tif", "out.tif"],
           f"left behind: {sorted(os.listdir('.'))}")


def case_masked_pixels():
    """Pixels outside the data (nodata) and an alpha band: the levels hold whole pixels, masked
    ones being a category of their own (the label map's masked value), and follow the rule."""
    data = smooth_image(101, 90, seed=10)
    data[20:61, 30:77] = 0  # nodata, with ragged edges against the 2x2 blocks
    data[::7, ::5] = 0
    tifffile.imwrite("nd.tif", data, photometric="rgb", tile=(16, 16))
    cm("run", "nd.tif", "nd_out.tif", "-k", 4, "--seed", 3, "--tile", 16, "--nodata", 0,
       "--overviews", 3, "--labels", "nd_l.tif", "-q")
    lab = levels("nd_l.tif")[0]
    expect((lab == lab.max()).sum() >= 41 * 47, "the nodata pixels are not masked in the labels")
    check_levels("nd_out.tif", "nd_l.tif", 3)
    rgba = np.dstack([smooth_image(77, 93, seed=11),
                      np.tile(np.arange(93, dtype=np.uint8) * 2, (77, 1))])
    tifffile.imwrite("a.tif", rgba, photometric="rgb", extrasamples=[2], tile=(16, 16))
    cm("run", "a.tif", "a_out.tif", "-k", 4, "--seed", 3, "--tile", 16, "--overviews", 2,
       "--labels", "a_l.tif", "-q")
    check_levels("a_out.tif", "a_l.tif", 2)


def case_same_bytes_for_any_threads_and_memory():
    """-j1, -j2 and a small --memory write the same bytes with overviews; a palette output and
    an ordered dither keep their levels' colours among the k."""
    tifffile.imwrite("in.tif", smooth_image(150, 170, seed=4), photometric="rgb")
    outs = []
    for i, opts in enumerate((["-j1"], ["-j2"], ["-j2", "--memory", "2M"])):
        outs.append(f"o{i}.tif")
        cm("run", "in.tif", outs[-1], "-k", 5, "--seed", 1, "--tile", 32, "--overviews", 2,
           "--labels", f"l{i}.tif", "-q", *opts)
    for i in (1, 2):
        for a, b in ((outs[0], outs[i]), ("l0.tif", f"l{i}.tif")):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                expect(fa.read() == fb.read(), f"{a} and {b} differ")
    cm("run", "in.tif", "pal.tif", "-k", 5, "--seed", 1, "--tile", 32, "--overviews", 2,
       "--format", "palette", "--labels", "pal_l.tif", "-q")
    pal = levels("pal.tif")
    lab = levels("pal_l.tif")
    for n in range(3):
        expect(np.array_equal(pal[n], lab[n]), f"palette level {n} is not the label map's")
        expect(pal[n].max() < 5, f"palette level {n} holds index {pal[n].max()}")
    cm("run", "in.tif", "dith.tif", "-k", 5, "--seed", 1, "--tile", 32, "--overviews", 2,
       "--dither", "ordered", "--labels", "dith_l.tif", "-q")
    check_levels("dith.tif", "dith_l.tif", 2)


def cog_errors(path):
    """What GDAL's COG validator (python3-gdal's osgeo_utils) finds wrong with PATH, with the
    full check of every tile's leader and trailer; without it, whether gdalinfo says
    LAYOUT=COG."""
    try:
        from osgeo_utils.samples import validate_cloud_optimized_geotiff as v
    except ImportError:
        r = subprocess.run(["gdalinfo", path], capture_output=True, text=True, check=True)
        return [] if "LAYOUT=COG" in r.stdout else ["gdalinfo does not say LAYOUT=COG"]
    return v.validate(path, full_check=True)[1]  # warnings, errors, details


def geotiff(path, data):
    """DATA as a tiled GeoTIFF: 30 m pixels, origin (500000, 4200000), EPSG:32633."""
    tags = [(33550, "d", 3, (30.0, 30.0, 0.0), False),
            (33922, "d", 6, (0, 0, 0, 500000.0, 4200000.0, 0), False),
            (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633),
             False)]
    tifffile.imwrite(path, data, photometric="rgb", tile=(16, 16), extratags=tags)


def case_cog_layout():
    """--cog (with --overviews auto) writes an image and label map that GDAL's COG validator
    accepts, tiles' leaders and trailers included, whose levels are those of the plain
    --overviews output pixel for pixel, with the input's georeferencing; the same bytes for -j1
    and -j2."""
    geotiff("in.tif", smooth_image(203, 151, seed=7))
    for j in (1, 2):
        cm("run", "in.tif", f"cog{j}.tif", "-k", 6, "--seed", 2, "--tile", 16, "--cog",
           "--labels", f"cog{j}_l.tif", f"-j{j}", "-q")
    cm("run", "in.tif", "plain.tif", "-k", 6, "--seed", 2, "--tile", 16, "--overviews", "auto",
       "--labels", "plain_l.tif", "-q")
    for cog, plain in (("cog1.tif", "plain.tif"), ("cog1_l.tif", "plain_l.tif")):
        errors = cog_errors(cog)
        expect(not errors, f"{cog}: {errors}")
        a, b = levels(cog), levels(plain)
        expect(len(a) == len(b) == 5 and all(np.array_equal(x, y) for x, y in zip(a, b)),
               f"{cog}'s levels are not those of {plain}")
    for a, b in (("cog1.tif", "cog2.tif"), ("cog1_l.tif", "cog2_l.tif")):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            expect(fa.read() == fb.read(), f"{a} and {b} differ")
    if shutil.which("gdalinfo"):
        r = subprocess.run(["gdalinfo", "cog1.tif"], capture_output=True, text=True, check=True)
        expect("Origin = (500000.000000000000000,4200000.000000000000000)" in r.stdout and
               "Pixel Size = (30.000000000000000,-30.000000000000000)" in r.stdout and
               "32633" in r.stdout, f"cog1.tif lost its georeferencing:\n{r.stdout}")


def png(path):
    from PIL import Image
    im = Image.open(path)
    expect(im.format == "PNG", f"{path} is a {im.format}")
    return np.asarray(im.convert("RGB"))


def sampled(level, pw, ph):
    """The preview of PW x PH taken from LEVEL: the pixel under each preview pixel's centre."""
    lh, lw = level.shape[:2]
    ys = (2 * np.arange(ph) + 1) * lh // (2 * ph)
    xs = (2 * np.arange(pw) + 1) * lw // (2 * pw)
    return level[ys][:, xs]


def case_preview():
    """--preview P.png: a PNG whose longest side is 1024 (never enlarged), sampled from the
    coarsest level at least that large (the rule's level 1 of a 2600-wide image), the same with
    or without --overviews; one per k of a list; a small image's preview is the image; not a
    .png exits 2 and writes nothing."""
    tifffile.imwrite("wide.tif", smooth_image(300, 2600, seed=8), photometric="rgb",
                     tile=(32, 32), compression="zlib")
    cm("run", "wide.tif", "a.tif", "-k", 6, "--seed", 1, "--tile", 32, "--overviews", 1,
       "--labels", "a_l.tif", "--preview", "a.png", "-q")
    cm("run", "wide.tif", "b.tif", "-k", 6, "--seed", 1, "--tile", 32, "--preview", "b.png",
       "-q")
    lv = levels("a.tif")
    ref_l, ref_p = halve(levels("a_l.tif")[0], lv[0])
    expect(np.array_equal(ref_p, lv[1]), "a.tif's level 1 breaks the rule")
    a, b = png("a.png"), png("b.png")
    expect(a.shape == (118, 1024, 3), f"a.png is {a.shape}, not 1024 x 118")
    expect(np.array_equal(a, sampled(ref_p, 1024, 118)), "a.png is not sampled from level 1")
    expect(np.array_equal(a, b), "the preview differs without --overviews")
    tifffile.imwrite("small.tif", smooth_image(70, 90, seed=9), photometric="rgb")
    cm("run", "small.tif", "s.tif", "-k", "2,5", "--seed", 1, "--preview", "s.png", "-q")
    for k in (2, 5):
        got, want = png(f"s.k{k}.png"), tifffile.imread(f"s.k{k}.tif")
        expect(np.array_equal(got, want), f"s.k{k}.png is not the image s.k{k}.tif")
    before = sorted(os.listdir("."))
    err = cm("run", "small.tif", "x.tif", "--preview", "x.jpg", code=2)
    expect("PNG" in err, f"a .jpg preview: {err}")
    expect(sorted(os.listdir(".")) == before, "a refused run left files")


def case_refusals():
    """--overviews with a PNG output, a bad level count or too small a budget exits 2 and
    writes nothing."""
    tifffile.imwrite("in.tif", smooth_image(60, 80, seed=5), photometric="rgb")
    err = cm("run", "in.tif", "out.png", "--overviews", "auto", code=2)
    expect("TIFF" in err, f"PNG output: {err}")
    err = cm("run", "in.tif", "out.png", "--cog", code=2)
    expect("TIFF" in err, f"PNG output: {err}")
    cm("run", "in.tif", "out.tif", "--overviews", "many", code=2)
    cm("run", "in.tif", "out.tif", "--overviews", 0, code=2)
    tifffile.imwrite("wide.tif", smooth_image(16, 40000, seed=6), photometric="rgb")
    err = cm("run", "wide.tif", "out.tif", "--overviews", 3, "--memory", "1M", code=2)
    expect("--memory" in err, f"small budget: {err}")
    expect(sorted(os.listdir(".")) == ["in.tif", "wide.tif"], f"left: {os.listdir('.')}")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


def main():
    global CM
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit("usage: overviews.py CHUNKMEANS CASE, CASE one of: " + " ".join(CASES))
    CM = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix=f"cm-overviews-{sys.argv[2]}.")
    os.chdir(work)
    try:
        CASES[sys.argv[2]]()
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        os.chdir("/")
        if os.environ.get("OVERVIEWS_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
