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
    command -v gdal_translate >/dev/null || fail "gdal-bin is not installed"
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
    assert len(np.unique(out[y, 40:280], axis=0)) == 1, y
    assert out[y, 100].tolist() == a[y, 100].tolist(), y
assert np.array_equal(tifffile.imread("applied.tif"), tifffile.imread("any.j1.tif")), "apply"
assert np.array_equal(tifffile.imread("applied.lab.tif"), lab_any), "apply's labels"
PY
    gdalinfo -json all.j1.tif | grep -q '"noDataValue":0' || fail "OUT does not declare nodata 0"
}

# RGBA of associated (premultiplied) alpha: red (200, 40, 100) opaque, at alpha 128 and at 64
# (stored premultiplied: (100, 20, 50) and (50, 10, 25)), an opaque dark red (100, 20, 50) whose
# samples are those of the half-transparent red, an opaque blue and a transparent border.
case_associated_alpha_gives_one_label_to_a_colour_at_any_alpha() {
    "$PYTHON" - <<'PY' || fail "making the inputs"
import numpy as np, tifffile
a = np.zeros((96, 160, 4), np.uint8)
a[8:88, 8:40] = (200, 40, 100, 255)
a[8:88, 40:72] = (100, 20, 50, 128)
a[8:88, 72:88] = (50, 10, 25, 64)
a[8:88, 88:120] = (100, 20, 50, 255)
a[8:88, 120:152] = (20, 60, 220, 255)
tifffile.imwrite("assoc.tif", a, photometric="rgb", extrasamples=["assocalpha"], tile=(32, 32))
tifffile.imwrite("unassoc.tif", a, photometric="rgb", extrasamples=["unassalpha"], tile=(32, 32))
PY
    tiffinfo assoc.tif 2>/dev/null | grep -q "Extra Samples: 1<assoc-alpha>" || fail "IN's alpha"
    expect 0 cm run assoc.tif j1.tif -k 3 --seed 5 -j1 --labels j1.lab.tif --model-out j1.json -q
    expect 0 cm run assoc.tif j2.tif -k 3 --seed 5 -j2 --labels j2.lab.tif -q
    cmp j1.tif j2.tif || fail "-j1 and -j2 outputs differ"
    cmp j1.lab.tif j2.lab.tif || fail "-j1 and -j2 label maps differ"
    # The exact modes key the histogram and the colour cache on the colour: they agree.
    expect 0 cm run assoc.tif hist.tif -k 3 --seed 5 --algorithm histogram --color-cache on -q
    expect 0 cm run assoc.tif lloyd.tif -k 3 --seed 5 --algorithm lloyd --color-cache off -q
    cmp hist.tif lloyd.tif || fail "histogram and lloyd outputs differ"
    expect 0 cm apply j1.json assoc.tif applied.tif --labels applied.lab.tif -q
    cmp applied.tif j1.tif || fail "apply differs from run"
    cmp applied.lab.tif j1.lab.tif || fail "apply's label map differs from run's"
    expect 0 cm run assoc.tif pal.tif -k 3 --seed 5 --format palette -q
    expect 0 cm run unassoc.tif un.tif -k 4 --seed 5 --labels un.lab.tif -q
    tiffinfo j1.tif 2>/dev/null | grep -q "Extra Samples: 1<assoc-alpha>" || fail "OUT's alpha kind"
    "$PYTHON" - <<'PY' || fail "associated alpha"
import numpy as np, tifffile
a, out, lab = (tifffile.imread(f) for f in ("assoc.tif", "j1.tif", "j1.lab.tif"))
red = lab[8:88, 8:88]
assert (red == red[0, 0]).all(), ("red at alpha 255, 128 and 64 has labels", np.unique(red))
dark, blue = lab[8:88, 88:120], lab[8:88, 120:152]
assert (dark == dark[0, 0]).all() and (blue == blue[0, 0]).all()
assert len({red[0, 0], dark[0, 0], blue[0, 0]}) == 3, "three colours, three labels"
assert (lab[:8] == 255).all() and (out[:8] == a[:8]).all(), "transparent pixels"
assert (out[..., 3] == a[..., 3]).all(), "alpha changed"
c = out[20, 20, :3].astype(float)  # the centre of red, as the opaque pixels hold it
for x, alpha in ((50, 128), (80, 64)):
    want = np.clip(np.rint(c * alpha / 255), 0, 255)
    assert (out[8:88, x, :3] == want).all(), (alpha, out[20, x].tolist(), want.tolist())
# The palette output has no alpha: every red pixel has red's index, the map its colour.
with tifffile.TiffFile("pal.tif") as t:
    idx, cmap = t.pages[0].asarray(), t.pages[0].colormap
assert (idx[8:88, 8:88] == idx[20, 20]).all()
assert (cmap[:, idx[20, 20]] // 257).tolist() == c.tolist()
# Read as unassociated (k 4), the half-transparent red has the dark red's samples: its colour.
un = tifffile.imread("un.lab.tif")
assert un[20, 50] == un[20, 100] and un[20, 50] != un[20, 20], "unassociated alpha"
PY
}

# A float image whose GDAL_NODATA is nan (as GDAL writes float rasters): apply gives the pixels
# of run (a NaN nodata is the same nodata as the planned one), by either rule.
case_nan_nodata_apply_gives_the_pixels_of_run() {
    mk in.tif --width 200 --height 150 --bands 3 --type f32 --nodata nan --tile 64
    for rule in all any; do
        expect 0 cm run in.tif run.$rule.tif -k 4 --seed 2 --nodata-match $rule \
            --labels run.$rule.lab.tif --model-out $rule.json -q
        expect 0 cm apply $rule.json in.tif apply.$rule.tif --labels apply.$rule.lab.tif \
            --nodata-match $rule -q
        cmp run.$rule.tif apply.$rule.tif || fail "$rule: apply differs from run"
        cmp run.$rule.lab.tif apply.$rule.lab.tif || fail "$rule: apply's labels differ"
    done
    "$PYTHON" - <<'PY' || fail "NaN pixels"
import numpy as np, tifffile
a, lab = tifffile.imread("in.tif"), tifffile.imread("run.all.lab.tif")
nan = np.isnan(a).any(axis=-1)
assert nan.any() and (lab[nan] == 255).all() and (lab[~nan] < 4).all()
PY
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
