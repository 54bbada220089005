#!/usr/bin/env bash
# End-to-end tests of the chunkmeans command: every case generates its own TIFFs (with
# cm-mkimage, which writes them with libtiff) and checks outputs with independent readers
# (tiffinfo, and tifffile through check.py). Usage: e2e.sh CASE (run by meson test).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
enter_work e2e

case_output_has_input_shape() {
    mk in.tif --width 700 --height 500 --bands 3 --pattern photo --tile 256 --compression deflate
    expect 0 cm run in.tif out.tif -k 6 -q
    check same-shape in.tif out.tif
    check at-most out.tif 6 noalpha
    tiffinfo out.tif >info.txt 2>&1 || fail "tiffinfo cannot read out.tif"
    grep -q "Image Width: 700 Image Length: 500" info.txt || fail "tiffinfo size"
    grep -q "Samples/Pixel: 3" info.txt || fail "tiffinfo samples"
    grep -q "Bits/Sample: 8" info.txt || fail "tiffinfo bits"
    grep -q "Compression Scheme: AdobeDeflate" info.txt || fail "tiffinfo compression"
    grep -q "Tile Width: 512 Tile Length: 512" info.txt || fail "output tiles are not 512x512"
    expect 0 cm run in.tif out1024.tif -k 6 -q --tile 1024
    tiffinfo out1024.tif 2>/dev/null | grep -q "Tile Width: 1024 Tile Length: 1024" || fail "--tile 1024"
    check equal-pixels out.tif out1024.tif
    expect 2 cm run in.tif bad.tif --tile 100
    no_outputs bad.tif
}

case_grey_and_rgba() {
    mk grey.tif --width 300 --height 200 --bands 1 --pattern photo --tile 64
    expect 0 cm run grey.tif grey.out.tif -k 4 -q
    check same-shape grey.tif grey.out.tif
    check at-most grey.out.tif 4 noalpha
    mk rgba.tif --width 300 --height 200 --bands 4 --pattern photo --tile 64
    expect 0 cm run rgba.tif rgba.out.tif -k 5 -q
    check same-shape rgba.tif rgba.out.tif
    check at-most rgba.out.tif 5 alpha
    check alpha-kept rgba.tif rgba.out.tif
}

case_three_blocks_give_their_colours() {
    mk rgb.tif --width 300 --height 120 --bands 3 --pattern blocks --tile 64
    expect 0 cm run rgb.tif rgb.out.tif -k 3 -q
    check exactly rgb.out.tif 220,40,40 40,200,60 30,60,220
    mk grey.tif --width 301 --height 77 --bands 1 --pattern blocks --strip 5
    expect 0 cm run grey.tif grey.out.tif -k 3 -q
    check exactly grey.out.tif 20 128 235
}

case_same_seed_same_bytes_any_threads() {
    mk in.tif --width 900 --height 600 --bands 3 --pattern photo --tile 128
    expect 0 cm run in.tif j1.tif --seed 7 -j1 -k 8 -q
    expect 0 cm run in.tif j2.tif --seed 7 -j2 -k 8 -q
    expect 0 cm run in.tif j3.tif --seed 7 -j3 -k 8 -q --memory 2M
    cmp j1.tif j2.tif || fail "-j1 and -j2 outputs differ"
    cmp j1.tif j3.tif || fail "-j1 and -j3 --memory 2M outputs differ"
    expect 0 cm run in.tif s8.tif --seed 8 -j2 -k 8 -q
    ! cmp -s j1.tif s8.tif || fail "seeds 7 and 8 gave the same output"
}

case_labels_match_colours() {
    mk in.tif --width 400 --height 300 --bands 3 --pattern photo --tile 128
    expect 0 cm run in.tif out.tif -k 7 --labels lab.tif -q
    check labels out.tif lab.tif 7 uint8
    mk noise.tif --width 200 --height 150 --bands 3 --pattern noise --tile 64
    expect 0 cm run noise.tif noise.out.tif -k 300 --labels noise.lab.tif -q --max-iter 20
    check labels noise.out.tif noise.lab.tif 300 uint16
}

case_striped_and_tiled_give_the_same_result() {
    mk t256.tif --width 1100 --height 700 --bands 3 --pattern photo --tile 256
    mk t512.tif --width 1100 --height 700 --bands 3 --pattern photo --tile 512 --compression lzw
    mk s1.tif --width 1100 --height 700 --bands 3 --pattern photo --strip 1
    mk s7.tif --width 1100 --height 700 --bands 3 --pattern photo --strip 7 --compression zstd
    check equal-pixels t256.tif t512.tif s1.tif s7.tif
    for f in t256 t512 s1 s7; do expect 0 cm run $f.tif $f.out.tif -k 6 --seed 3 -q; done
    check equal-pixels t256.out.tif t512.out.tif s1.out.tif s7.out.tif
}

case_codecs_and_bigtiff() {
    for c in none lzw deflate zstd packbits jpeg; do
        mk in.$c.tif --width 200 --height 130 --bands 3 --pattern photo --tile 64 --compression $c
        expect 0 cm run in.$c.tif out.$c.tif -k 4 -q --compression deflate
        check same-shape in.$c.tif out.$c.tif
        check at-most out.$c.tif 4 noalpha
    done
    expect 0 cm run in.none.tif out.zstd.tif -k 4 -q --compression zstd
    tiffinfo out.zstd.tif 2>/dev/null | grep -q "Compression Scheme: ZSTD" || fail "zstd output"
    expect 0 cm run in.jpeg.tif out.jpeg.tif -k 4 --compression jpeg
    grep -q "lossy" err.txt || fail "no warning that JPEG output is lossy"
    expect 0 cm run in.jpeg.tif out.default.tif -k 4 -q
    tiffinfo out.default.tif 2>/dev/null | grep -q "Compression Scheme: AdobeDeflate" \
        || fail "a JPEG input does not default to a lossless output"
    check at-most out.default.tif 4 noalpha
    mk big.tif --width 200 --height 130 --bands 3 --pattern photo --tile 64 --bigtiff
    expect 0 cm info big.tif
    grep -q "BigTIFF" out.txt || fail "info does not report BigTIFF"
    expect 0 cm run big.tif big.out.tif -k 4 -q --bigtiff always
    tiffinfo big.out.tif >/dev/null 2>&1 || fail "tiffinfo cannot read a BigTIFF output"
    "$PYTHON" -c "import tifffile,sys; sys.exit(0 if tifffile.TiffFile('big.out.tif').is_bigtiff else 1)" \
        || fail "--bigtiff always did not write a BigTIFF"
}

case_truncated_input_exits_3() {
    mk in.tif --width 600 --height 400 --bands 3 --pattern photo --tile 64 --compression deflate
    truncate -s $(( $(stat -c %s in.tif) / 2 )) in.tif
    expect 3 cm run in.tif out.tif -k 4 --labels lab.tif --model-out m.json
    grep -q "in.tif" err.txt || fail "message does not name the file: $(cat err.txt)"
    no_outputs out.tif lab.tif m.json
}

case_not_a_tiff_exits_3() {
    echo "this is not an image" >in.tif
    expect 3 cm run in.tif out.tif
    grep -q "in.tif" err.txt || fail "message does not name the file"
    no_outputs out.tif
    : >empty.tif
    expect 3 cm run empty.tif out.tif
    no_outputs out.tif
    expect 3 cm run missing.tif out.tif
    grep -q "missing.tif" err.txt || fail "message does not name the missing file"
    expect 3 cm info in.tif
}

case_unsupported_layout_exits_3() {
    "$PYTHON" - <<'PY' || fail "making unsupported inputs"
import numpy as np, tifffile
tifffile.imwrite("bilevel.tif", np.zeros((32, 32), bool))
tifffile.imwrite("complex.tif", np.zeros((32, 32), np.complex64))
PY
    expect 3 cm run bilevel.tif out.tif
    grep -q "1-bit" err.txt || fail "1-bit message: $(cat err.txt)"
    expect 3 cm run complex.tif out.tif
    grep -q "complex.tif" err.txt || fail "complex message: $(cat err.txt)"
    no_outputs out.tif
}

case_usage_errors_exit_2() {
    mk in.tif --width 64 --height 64 --bands 3 --pattern photo --tile 32
    expect 2 cm
    expect 2 cm run in.tif
    expect 2 cm run in.tif out.tif --no-such-option
    expect 2 cm run in.tif out.tif -k 0
    grep -q -- "-k" err.txt || fail "-k message"
    expect 2 cm run in.tif out.tif --memory lots
    expect 2 cm run in.tif out.tif --compression lzma
    expect 2 cm run in.tif out.tif --colorspace xyz
    grep -q -- "--colorspace" err.txt || fail "--colorspace xyz message"
    expect 2 cm run in.tif out.tif --init ''
    grep -q -- "--init" err.txt || fail "--init '' message"
    expect 2 cm run in.tif out.tif --algorithm fastest
    expect 2 cm run in.tif out.tif --format palette -k 300
    grep -q "palette" err.txt || fail "--format palette -k 300 message"
    expect 2 cm run in.tif out.tif --memory 1K
    grep -q -- "--memory" err.txt || fail "budget message does not give the --memory that works"
    expect 2 cm run in.tif in.tif
    check equal-pixels in.tif in.tif
    ln -s in.tif link.tif
    expect 2 cm run in.tif link.tif
    expect 2 cm frobnicate
    no_outputs out.tif
}

case_unwritable_output_exits_1() {
    mk in.tif --width 64 --height 64 --bands 3 --pattern photo --tile 32
    expect 1 cm run in.tif no/such/dir/out.tif
    grep -q "no/such/dir/out.tif" err.txt || fail "message does not name the output"
}

case_model_json() {
    mk in.tif --width 300 --height 200 --bands 4 --pattern photo --tile 64
    expect 0 cm run in.tif out.tif -k 5 --model-out m.json -q
    "$PYTHON" -c "
import numpy as np, tifffile
a = tifffile.imread('in.tif'); print(int((a[..., 3] != 0).sum()))" >valid.txt || fail "count"
    check model m.json 5 4 "$(cat valid.txt)"
}

case_info_counts_colours_exactly() {
    mk in.tif --width 500 --height 300 --bands 3 --pattern photo --tile 128
    expect 0 cm info in.tif --colors
    got=$(sed -n 's/^colors: *//p' out.txt)
    want=$("$PYTHON" "$here/check.py" count in.tif noalpha)
    [ "$got" = "$want" ] || fail "info --colors says $got, tifffile counts $want"
    mk rgba.tif --width 300 --height 100 --bands 4 --pattern noise --strip 3
    expect 0 cm info rgba.tif --colors -j1
    got=$(sed -n 's/^colors: *//p' out.txt)
    want=$("$PYTHON" "$here/check.py" count rgba.tif alpha)
    [ "$got" = "$want" ] || fail "info --colors on RGBA says $got, tifffile counts $want"
}

case_help_and_version() {
    expect 0 cm --version
    grep -q "^chunkmeans [0-9]" out.txt || fail "--version"
    expect 0 cm --help
    grep -q "chunkmeans run" out.txt || fail "--help"
    expect 0 cm run --help
    for opt in --clusters --seed --threads --memory --max-iter --tol --batch --labels \
               --model-out --compression --progress --quiet; do
        grep -q -- "$opt" out.txt || fail "run --help does not mention $opt"
    done
}

case_progress_on_request() {
    mk in.tif --width 600 --height 400 --bands 3 --pattern photo --tile 64
    expect 0 cm run in.tif out.tif -k 4 --progress always
    grep -q "remap" err.txt || fail "no progress on stderr with --progress always"
    expect 0 cm run in.tif out2.tif -k 4
    ! grep -q "remap \[" err.txt || fail "progress drawn although stderr is not a terminal"
}

case_geotiff_tags_survive() {
    command -v gdal_translate >/dev/null || fail "gdal-bin is not installed (scripts/install-deps.sh)"
    mk plain.tif --width 640 --height 480 --bands 3 --pattern photo --tile 128
    gdal_translate -q -a_srs EPSG:32633 -a_ullr 500000 4600000 506400 4595200 -a_nodata 0 \
        -co TILED=YES -co COMPRESS=DEFLATE plain.tif geo.tif || fail "gdal_translate"
    expect 0 cm run geo.tif out.tif -k 5 --labels lab.tif -q
    for f in geo out lab; do gdalinfo -json $f.tif >$f.json || fail "gdalinfo $f.tif"; done
    "$PYTHON" - <<'PY' || fail "georeferencing differs"
import json
g, o, l = (json.load(open(f + ".json")) for f in ("geo", "out", "lab"))
for name, d in (("OUT", o), ("labels", l)):
    assert d["geoTransform"] == g["geoTransform"], (name, d["geoTransform"], g["geoTransform"])
    assert d["coordinateSystem"]["wkt"] == g["coordinateSystem"]["wkt"], name
assert [b["noDataValue"] for b in o["bands"]] == [b["noDataValue"] for b in g["bands"]]
assert l["bands"][0]["noDataValue"] == 255, l["bands"][0]
PY
    expect 0 cm info geo.tif
    grep -q "georef: *GeoTIFF" out.txt || fail "info does not report the georeferencing"
    grep -q "nodata: *0" out.txt || fail "info does not report the nodata"
}

case_nodata_pixels_are_kept_and_labelled() {
    # A nodata region (a row and a disc whose samples are all 255) in a photo.
    mk in.tif --width 300 --height 200 --bands 3 --pattern photo --tile 64 --nodata 255
    # The any rule masks every pixel with a sample of 255, the default (all) rule those whose
    # samples are all 255: the nodata region, not the photo's pixels with one sample at 255.
    expect 0 cm run in.tif any.tif -k 4 --labels any.lab.tif --nodata 255 --nodata-match any -q
    expect 0 cm run in.tif all.tif -k 4 --labels all.lab.tif --nodata 255 -q
    "$PYTHON" - <<'PY' || fail "nodata pixels"
import numpy as np, tifffile
a = tifffile.imread("in.tif")
for rule, masked in (("any", (a == 255).any(axis=-1)), ("all", (a == 255).all(axis=-1))):
    b, l = tifffile.imread(rule + ".tif"), tifffile.imread(rule + ".lab.tif")
    assert masked.any(), (rule, "the test image has no nodata pixel")
    assert (b[masked] == a[masked]).all(), (rule, "nodata pixels changed")
    assert (l[masked] == 255).all() and (l[~masked] < 4).all(), (rule, "labels of nodata pixels")
    assert len(np.unique(b[~masked].reshape(-1, 3), axis=0)) <= 4, rule
some = (a == 255).any(axis=-1) & ~(a == 255).all(axis=-1)
assert some.sum() > 100, "too few pixels with some samples of 255"
PY
    gdalinfo -json all.tif | grep -q '"noDataValue":255' || fail "OUT does not declare nodata 255"
}

case_palette_output_expands_to_the_rgb_output() {
    mk in.tif --width 320 --height 240 --bands 3 --pattern photo --tile 64
    expect 0 cm run in.tif rgb.tif -k 6 --seed 4 -q
    expect 0 cm run in.tif pal.tif -k 6 --seed 4 -q --format palette
    tiffinfo pal.tif 2>/dev/null | grep -q "Photometric Interpretation: palette" || fail "not a palette"
    "$PYTHON" - <<'PY' || fail "palette colours differ from the rgb output"
import numpy as np, tifffile
with tifffile.TiffFile("pal.tif") as t:
    idx, cmap = t.pages[0].asarray(), t.pages[0].colormap  # indices, and the map
rgb = tifffile.imread("rgb.tif")
expanded = (cmap[:, idx] // 257).transpose(1, 2, 0).astype(np.uint8)
assert idx.dtype == np.uint8 and idx.max() < 6
assert np.array_equal(expanded, rgb)
PY
    expect 0 cm run pal.tif again.tif -k 6 -q
    tiffinfo again.tif 2>/dev/null | grep -q "Photometric Interpretation: palette" \
        || fail "a palette input does not give a palette output"
}

case_sparse_valid_pixels_are_found() {
    "$PYTHON" - <<'PY' || fail "making the input"
import numpy as np, tifffile
a = np.zeros((3000, 3000, 4), np.uint8)
a[2950:, 2950:, :3] = [[200, 30, 30]]
a[2950:, 2975:, :3] = [[20, 30, 200]]
a[2950:, 2950:, 3] = 255
tifffile.imwrite("sparse.tif", a, photometric="rgb", extrasamples=["unassalpha"], tile=(256, 256))
PY
    for seed in 0 1 2; do
        expect 0 cm run sparse.tif out$seed.tif -k 2 --seed $seed -q
        check at-most out$seed.tif 2 alpha >/dev/null
    done
}

case_outputs_never_overwrite_each_other() {
    mk in.tif --width 64 --height 64 --bands 3 --pattern photo --tile 32
    cp in.tif keep.tif
    expect 2 cm run in.tif out.tif --model-out in.tif
    expect 2 cm run in.tif out.tif --model-out ./out.tif
    expect 2 cm run in.tif out.tif --labels ./out.tif
    cmp in.tif keep.tif || fail "the input was changed"
    no_outputs out.tif
}

case_corrupt_structures_exit_3() {
    # Hand-made little-endian TIFFs: 32x32 RGB in one 32x32 tile whose offset points past the
    # end of the file, and an image 0 pixels wide.
    "$PYTHON" - <<'PY' || fail "making corrupt inputs"
import struct

def tiff(path, width, tile_offset, data=b""):
    entries = [(256, 4, 1, width), (257, 4, 1, 32), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 2), (277, 3, 1, 3), (322, 3, 1, 32), (323, 3, 1, 32),
               (324, 4, 1, tile_offset), (325, 4, 1, 32 * 32 * 3)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value) if typ == 4 else \
               struct.pack("<HHIHH", tag, typ, count, value, 0)
    ifd += struct.pack("<I", 0)
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<I", 8) + ifd + data)

tiff("past_end.tif", 32, 10_000_000)
tiff("zero.tif", 0, 200, bytes(32 * 32 * 3))
PY
    expect 3 cm run past_end.tif out.tif --labels lab.tif
    grep -q "past_end.tif" err.txt || fail "message does not name the file: $(cat err.txt)"
    expect 3 cm run zero.tif out.tif
    grep -q "zero.tif" err.txt || fail "message does not name the file: $(cat err.txt)"
    no_outputs out.tif lab.tif
}

case_trace_and_graph() {
    mk in.tif --width 700 --height 400 --bands 3 --pattern photo --tile 128
    expect 0 cm run in.tif out.tif -k 4 -q --trace trace.json --graph graph.dot
    expect 0 cm info in.tif
    chunks=$(sed -n 's/^chunks: *\([0-9]*\).*/\1/p' out.txt)
    "$PYTHON" - "$chunks" <<'PY' || fail "trace"
import json, sys
chunks = int(sys.argv[1])
events = json.load(open("trace.json"))["traceEvents"]
done = [e for e in events if e["ph"] == "X"]
assert all(e["dur"] >= 0 and e["ts"] >= 0 and "tid" in e for e in done)
by_kind = {}
for e in done:
    by_kind[e["name"]] = by_kind.get(e["name"], 0) + 1
assert by_kind.get("remap") == chunks and by_kind.get("write") == chunks, (by_kind, chunks)
assert by_kind.get("sample", 0) >= 1 and by_kind.get("update", 0) >= 1, by_kind
tasks = {(e["args"]["run"], e["args"]["task"]) for e in done}
assert len(tasks) == len(done), "a task has two events"
PY
    grep -q "^digraph tasks" graph.dot || fail "no DOT graph"
    expect 0 cm run in.tif out2.tif -k 4 -v
    grep -q "stage remap" err.txt || fail "-v does not report the stages"
    expect 2 cm run in.tif out3.tif --trace in.tif
}

case_exact_modes_are_deterministic_and_agree() {
    mk in.tif --width 500 --height 300 --bands 3 --pattern photo --tile 128
    for a in lloyd histogram auto minibatch; do
        expect 0 cm run in.tif $a.j1.tif -k 5 --seed 2 --algorithm $a -j1 -q --model-out $a.json
        expect 0 cm run in.tif $a.j2.tif -k 5 --seed 2 --algorithm $a -j2 -q
        cmp $a.j1.tif $a.j2.tif || fail "--algorithm $a: -j1 and -j2 outputs differ"
    done
    cmp lloyd.j1.tif histogram.j1.tif || fail "lloyd and histogram outputs differ"
    "$PYTHON" - <<'PY' || fail "models"
import json
l, h, a = (json.load(open(f + ".json")) for f in ("lloyd", "histogram", "auto"))
assert l["centroids"] == h["centroids"] and l["counts"] == h["counts"], "centres differ"
assert (l["algorithm"], h["algorithm"], a["algorithm"]) == ("lloyd", "histogram", "histogram")
PY
}

"case_$1"
