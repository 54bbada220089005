#!/bin/bash
# End-to-end tests of the masks (tests/meson.build runs one case per call): nodata read as GDAL
# and rasterio read it (--nodata-match), and associated (premultiplied) alpha. Inputs are made
# with tifffile and GDAL, outputs read back with tifffile and tiffinfo, not with chunkmeans.
# Usage: masks.sh CASE, with CHUNKMEANS, MKIMAGE and PYTHON in the environment.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
enter_work "$1"

# An RGB GeoTIFF with nodata 0: a border of (0, 0, 0), and patches of colours with one or two
# samples at 0 ((200, 0, 0), (0, 150, 0), (0, 0, 120), (180, 0, 90)), among noisy grey.
case_nodata_all_clusters_pixels_with_some_samples_at_nodata() {
    command -v gdal_translate >/dev/null || fail "gdal-bin is not installed (scripts/install-deps.sh)"
    "$PYTHON" - <<'PY' || fail "making the input"
import numpy as np, tifffile
rng = np.random.default_rng(3)
a = rng.integers(60, 120, (240, 320, 3), dtype=np.uint8)
a[:, :, 1] = a[:, :, 0]
for i, c in enumerate([(200, 0, 0), (0, 150, 0), (0, 0, 120), (180, 0, 90)]):
    a[40 + 40 * i:70 + 40 * i, 40:280] = c
a[:16], a[-16:], a[:, :16], a[:, -16:] = 0, 0, 0, 0
tifffile.imwrite("plain.tif", a, photometric="rgb", tile=(64, 64))
PY
    gdal_translate -q -a_srs EPSG:32633 -a_ullr 500000 4600000 503200 4597600 -a_nodata 0 \
        -co TILED=YES -co BLOCKXSIZE=64 -co BLOCKYSIZE=64 plain.tif geo.tif || fail "gdal_translate"
    for j in 1 2; do
        expect 0 cm run geo.tif all.j$j.tif -k 5 --seed 4 -j$j --labels all.lab.j$j.tif -q
        expect 0 cm run geo.tif any.j$j.tif -k 5 --seed 4 -j$j --labels any.lab.j$j.tif -q \
            --nodata-match any
    done
    for f in all all.lab any any.lab; do
        cmp $f.j1.tif $f.j2.tif || fail "$f: -j1 and -j2 outputs differ"
    done
    # fit then apply with the rule: the pixels of run.
    expect 0 cm fit geo.tif -k 5 --seed 4 -o any.json --nodata-match any -q
    expect 0 cm apply any.json geo.tif applied.tif --labels applied.lab.tif --nodata-match any -q
    "$PYTHON" - <<'PY' || fail "the nodata rules"
import numpy as np, tifffile
a = tifffile.imread("geo.tif")
zero = (a == 0)
for rule, masked in (("all", zero.all(axis=-1)), ("any", zero.any(axis=-1))):
    out, lab = tifffile.imread(rule + ".j1.tif"), tifffile.imread(rule + ".lab.j1.tif")
    assert (out[masked] == a[masked]).all(), (rule, "nodata pixels changed")
    assert (lab[masked] == 255).all(), (rule, "nodata pixels not labelled 255")
    assert (lab[~masked] < 5).all(), (rule, "pixels that are data are not labelled")
    colours = np.unique(out[~masked].reshape(-1, 3), axis=0)
    assert len(colours) <= 5, (rule, len(colours), "colours outside the nodata pixels")
# The all rule clusters (200, 0, 0) and its like: they get a label and a centre's colour (the
# patches are far apart: each is a centre, one sample at 0 included); the any rule masks them.
some = zero.any(axis=-1) & ~zero.all(axis=-1)
assert some.sum() == 4 * 30 * 240, some.sum()
lab_all, lab_any = tifffile.imread("all.lab.j1.tif"), tifffile.imread("any.lab.j1.tif")
assert (lab_all[some] < 5).all() and (lab_any[some] == 255).all()
out = tifffile.imread("all.j1.tif")
for y in (50, 90, 130, 170):
    assert len(np.unique(out[y, 40:280], axis=0)) == 1 and out[y, 100].tolist() == a[y, 100].tolist(), y
assert np.array_equal(tifffile.imread("applied.tif"), tifffile.imread("any.j1.tif")), "apply"
assert np.array_equal(tifffile.imread("applied.lab.tif"), lab_any), "apply's labels"
PY
    gdalinfo -json all.j1.tif | grep -q '"noDataValue":0' || fail "OUT does not declare nodata 0"
}

case_nodata_match_usage_errors_exit_2() {
    mk in.tif --width 64 --height 64 --bands 3 --pattern photo --tile 32
    expect 2 cm run in.tif out.tif --nodata-match some
    said "--nodata-match: expected all or any, not 'some'"
    expect 2 cm fit in.tif -o m.json --nodata-match
    expect 2 cm apply m.json in.tif out.tif --nodata-match ALL
    expect 2 cm info in.tif --nodata-match any
    no_outputs out.tif m.json
}

"case_$1"
