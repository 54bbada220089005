#!/usr/bin/env bash
# Tests of the options of issue 6 as the command offers them: --colorspace lab, --init with
# given centres or random, --dither ordered (run and apply alike), and run -k with a list of k
# written in one remap pass, with its summary as JSON or as a picture (SVG). Each case makes its
# own small TIFFs and takes seconds.
# Usage: features.sh CASE (run by meson test).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
enter_work features

case_lab_gives_at_most_k_colours_unlike_rgb() {
    mk in.tif --width 500 --height 300 --bands 3 --pattern photo --tile 128
    expect 0 cm run in.tif rgb.tif -k 6 --seed 3 -q
    expect 0 cm run in.tif lab.tif -k 6 --seed 3 -q --colorspace lab --model-out lab.json
    check same-shape in.tif lab.tif
    check at-most lab.tif 6 noalpha
    ! cmp -s rgb.tif lab.tif || fail "--colorspace lab gave the output of rgb"
    grep -q '"colorspace": *"lab"' lab.json || fail "the model does not say lab: $(cat lab.json)"
    expect 0 cm run in.tif lab2.tif -k 6 --seed 3 -q --colorspace lab -j1
    cmp lab.tif lab2.tif || fail "--colorspace lab depends on -j"
    # RGBA and 16-bit RGB are RGB too
    mk rgba16.tif --width 200 --height 100 --bands 4 --type u16 --pattern photo --tile 64
    expect 0 cm run rgba16.tif rgba16.out.tif -k 4 -q --colorspace lab
    check at-most rgba16.out.tif 4 alpha
    check alpha-kept rgba16.tif rgba16.out.tif
}

case_lab_on_a_grey_image_exits_2() {
    mk grey.tif --width 100 --height 80 --bands 1 --pattern photo --tile 16
    expect 2 cm run grey.tif out.tif -k 3 --colorspace lab
    said "grey.tif: --colorspace lab needs an RGB image"
    no_outputs out.tif
    expect 2 cm fit grey.tif -k 3 --colorspace lab -o m.json
    said "needs an RGB image"
    no_outputs m.json
    mk ms.tif --width 64 --height 48 --bands 5 --pattern photo --tile 16
    expect 2 cm run ms.tif out.tif -k 3 --colorspace lab
    said "needs an RGB image"
    mk s16.tif --width 64 --height 48 --bands 3 --type i16 --pattern photo --tile 16
    expect 2 cm run s16.tif out.tif -k 3 --colorspace lab
    said "needs an RGB image"
    expect 2 cm run grey.tif out.tif --colorspace hsv
    said "--colorspace"
    # apply takes the model's colour space: another one is refused
    mk rgb.tif --width 100 --height 80 --bands 3 --pattern photo --tile 16
    expect 0 cm fit rgb.tif -k 3 --colorspace lab -o lab.json -q
    expect 2 cm apply lab.json rgb.tif out.tif --colorspace rgb
    said "fitted in lab"
    no_outputs out.tif
    expect 0 cm apply lab.json rgb.tif same.tif --colorspace lab -q
    expect 0 cm run rgb.tif run.tif -k 3 --colorspace lab -q
    cmp same.tif run.tif || fail "fit --colorspace lab then apply differs from run"
}

case_init_colours_give_exactly_those_colours() {
    mk rgb.tif --width 300 --height 120 --bands 3 --pattern blocks --tile 64
    echo '{"colors": [[220, 40, 40], [40, 200, 60], [30, 60, 220]]}' >colours.json
    expect 0 cm run rgb.tif out.tif --init colours.json -q --model-out m.json
    check exactly out.tif 220,40,40 40,200,60 30,60,220
    grep -q '"k": *3' m.json || fail "the model does not have k = 3"
    # a plain list, -k that agrees, and fit then apply
    echo '[[30, 60, 220], [220, 40, 40], [40, 200, 60]]' >rows.json
    expect 0 cm run rgb.tif rows.tif --init rows.json -k 3 -q
    check exactly rows.tif 220,40,40 40,200,60 30,60,220
    expect 0 cm fit rgb.tif --init colours.json -o fitted.json -q
    expect 0 cm apply fitted.json rgb.tif applied.tif -q
    check exactly applied.tif 220,40,40 40,200,60 30,60,220
    # a model as the start
    expect 0 cm run rgb.tif again.tif --init m.json -q
    cmp out.tif again.tif || fail "--init with the model differs from --init with its colours"
    # -k that differs is refused, and --init kmeans++ is the default
    expect 2 cm run rgb.tif bad.tif --init colours.json -k 4
    said "-k 4 conflicts with the 3 centres of colours.json"
    no_outputs bad.tif
    expect 0 cm run rgb.tif pp.tif --init kmeans++ -k 3 -q
    expect 0 cm run rgb.tif dflt.tif -k 3 -q
    cmp pp.tif dflt.tif || fail "--init kmeans++ is not the default"
}

case_init_random_gives_the_same_bytes_for_any_threads() {
    mk in.tif --width 400 --height 300 --bands 3 --pattern photo --tile 64
    expect 0 cm run in.tif j1.tif -k 6 --seed 5 --init random --tile 64 -j1 -q
    expect 0 cm run in.tif j2.tif -k 6 --seed 5 --init random --tile 64 -j2 -q
    cmp j1.tif j2.tif || fail "--init random: -j1 and -j2 differ"
    check at-most j1.tif 6 noalpha
    expect 0 cm run in.tif pp.tif -k 6 --seed 5 --tile 64 -q
    ! cmp -s pp.tif j1.tif || fail "--init random gave the output of kmeans++"
    # fit then apply give the pixels of run; a list of k gives those of each k alone
    expect 0 cm fit in.tif -k 6 --seed 5 --init random --tile 64 -o m.json -q
    expect 0 cm apply m.json in.tif applied.tif --tile 64 -q
    cmp j1.tif applied.tif || fail "fit --init random then apply differs from run"
    expect 0 cm run in.tif list.tif -k 3,6 --seed 5 --init random --tile 64 -q
    cmp j1.tif list.k6.tif || fail "-k 3,6 --init random: k=6 differs from -k 6 alone"
    # the exact modes start from the random centres too
    expect 0 cm run in.tif lloyd.tif -k 6 --seed 5 --init random --algorithm lloyd -j1 -q
    expect 0 cm run in.tif lloyd2.tif -k 6 --seed 5 --init random --algorithm lloyd -j2 -q
    cmp lloyd.tif lloyd2.tif || fail "--init random --algorithm lloyd: -j1 and -j2 differ"
}

case_init_of_wrong_dimension_exits_3() {
    mk rgb.tif --width 120 --height 60 --bands 3 --pattern blocks --tile 32
    echo '{"colors": [[220, 40], [40, 200]]}' >two.json
    expect 3 cm run rgb.tif out.tif --init two.json
    said "two.json"
    no_outputs out.tif
    expect 3 cm fit rgb.tif --init two.json -o m.json
    said "two.json"
    no_outputs m.json
    echo '{"colors": [[1, 2, 3], [4, 5]]}' >ragged.json
    expect 3 cm run rgb.tif out.tif --init ragged.json
    said "ragged.json"
    echo 'not json' >junk.json
    expect 3 cm run rgb.tif out.tif --init junk.json
    said "junk.json"
    expect 3 cm run rgb.tif out.tif --init missing.json
    said "missing.json"
    no_outputs out.tif
}

case_dither_changes_the_output_alike_for_any_threads_and_tiles() {
    mk in.tif --width 700 --height 500 --bands 3 --pattern photo --tile 128
    expect 0 cm run in.tif plain.tif -k 5 --seed 4 -q
    expect 0 cm run in.tif j1.tif -k 5 --seed 4 -q --dither ordered -j1
    expect 0 cm run in.tif j2.tif -k 5 --seed 4 -q --dither ordered -j2
    ! cmp -s plain.tif j1.tif || fail "--dither ordered changed nothing"
    cmp j1.tif j2.tif || fail "--dither ordered: -j1 and -j2 differ"
    check at-most j1.tif 5 noalpha
    # the tile size changes the file's layout, never its pixels
    expect 0 cm run in.tif t256.tif -k 5 --seed 4 -q --dither ordered --tile 256
    expect 0 cm run in.tif t256b.tif -k 5 --seed 4 -q --dither ordered --tile 256 -j1
    cmp t256.tif t256b.tif || fail "--tile 256: -j2 and -j1 differ"
    check equal-pixels j1.tif t256.tif
    expect 0 cm run in.tif none.tif -k 5 --seed 4 -q --dither none
    cmp plain.tif none.tif || fail "--dither none is not the default"
    expect 2 cm run in.tif bad.tif --dither floyd
    said "--dither"
    expect 2 cm fit in.tif -o m.json --dither ordered
    said "give it to apply"
}

case_apply_dither_is_run_dither() {
    mk in.tif --width 400 --height 300 --bands 3 --pattern photo --tile 64
    expect 0 cm run in.tif run.tif -k 6 --seed 9 -q --dither ordered --labels run.lab.tif
    expect 0 cm fit in.tif -k 6 --seed 9 -o m.json -q
    expect 0 cm apply m.json in.tif apply.tif -q --dither ordered --labels apply.lab.tif
    cmp run.tif apply.tif || fail "apply --dither ordered differs from run --dither ordered"
    cmp run.lab.tif apply.lab.tif || fail "the label maps differ"
    expect 0 cm run in.tif runlab.tif -k 6 --seed 9 -q --dither ordered --colorspace lab
    expect 0 cm fit in.tif -k 6 --seed 9 -o lab.json -q --colorspace lab
    expect 0 cm apply lab.json in.tif applylab.tif -q --dither ordered
    cmp runlab.tif applylab.tif || fail "lab: apply --dither ordered differs from run"
}

case_k_list_gives_the_outputs_of_separate_runs() {
    mk in.tif --width 700 --height 500 --bands 3 --pattern photo --tile 128
    expect 0 cm run in.tif out.tif -k 2,5,10 --seed 3 --labels lab.tif --model-out m.json
    for k in 2 5 10; do
        [ -s "out.k$k.tif" ] && [ -s "lab.k$k.tif" ] && [ -s "m.k$k.json" ] || fail "k=$k: missing"
        said "out.k$k.tif: k=$k ($k used), inertia "
    done
    no_outputs out.tif lab.tif m.json
    [ "$(grep -c 'inertia' err.txt)" -eq 3 ] || fail "not one inertia line per k: $(cat err.txt)"
    for k in 2 5 10; do
        expect 0 cm run in.tif "one$k.tif" -k "$k" --seed 3 --labels "onelab$k.tif" \
            --model-out "one$k.json" -q
        cmp "one$k.tif" "out.k$k.tif" || fail "k=$k: the list's output differs from -k $k alone"
        cmp "onelab$k.tif" "lab.k$k.tif" || fail "k=$k: the label maps differ"
        cmp "one$k.json" "m.k$k.json" || fail "k=$k: the models differ"
        check at-most "out.k$k.tif" "$k" noalpha
    done
    # threads, dither and lab go through the pass alike
    expect 0 cm run in.tif j1.tif -k 3,6 --seed 3 -j1 -q --dither ordered --colorspace lab
    expect 0 cm run in.tif j2.tif -k 6,3 --seed 3 -j2 -q --dither ordered --colorspace lab
    expect 0 cm run in.tif solo.tif -k 6 --seed 3 -q --dither ordered --colorspace lab
    cmp j1.k3.tif j2.k3.tif && cmp j1.k6.tif j2.k6.tif || fail "-k 3,6: -j1 and -j2 differ"
    cmp solo.tif j1.k6.tif || fail "-k 3,6 --dither ordered --colorspace lab differs from -k 6"
    # names without an extension, and in a directory with a dot
    mkdir d.dir
    expect 0 cm run in.tif d.dir/plain -k 2,3 -q
    [ -s d.dir/plain.k2 ] && [ -s d.dir/plain.k3 ] || fail "names: $(ls d.dir)"
    # the pass holds a chunk of every k: a budget for one is too small for three
    expect 0 cm run in.tif one.tif -k 2 --memory 1M -q
    expect 2 cm run in.tif three.tif -k 2,5,10 --memory 1M
    said "remapped with 3 models at once"
    no_outputs three.k2.tif three.k5.tif three.k10.tif
}

case_summary_counts_one_read_per_chunk() {
    # 700 x 500 in chunks of 128: 6 x 4 = 24 chunks
    mk in.tif --width 700 --height 500 --bands 3 --pattern photo --tile 128
    # The fit decodes every chunk of so small an image and keeps them all for the remap: each
    # chunk is decoded once in all.
    expect 0 cm run in.tif out.tif -k 10,2,5 --seed 1 --tile 128 --summary s.json -vv
    said "chunks decoded: 24 by the fits, 0 by the remap pass, which took 24 more as the fit left them (24 chunks, 3 outputs)"
    "$PYTHON" - s.json <<'PY' || fail "summary: $(cat s.json)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["chunks"] == 24 and s["chunks_read"] == 0 and s["chunks_reused"] == 24, s
assert s["fit_chunks_read"] == 24, s
runs = {r["k"]: r for r in s["runs"]}
assert sorted(runs) == [2, 5, 10] and [r["k"] for r in s["runs"]] == [10, 2, 5]
for k, r in runs.items():
    assert r["output"] == f"out.k{k}.tif" and len(r["counts"]) == k, r
    assert sum(r["counts"]) == r["pixels"] == 700 * 500, r
    assert r["labels"] is None and r["model"] is None
inertia = [runs[k]["inertia"] for k in (2, 5, 10)]
assert inertia[0] > inertia[1] > inertia[2] > 0, inertia
PY
    # the fits of the list share one sample: they read what the fit of one k reads, and each
    # gives the output of its k alone
    expect 0 cm run in.tif five.tif -k 5 --seed 1 --tile 128 --summary five.json -q
    cmp five.tif out.k5.tif || fail "-k 10,2,5: out.k5.tif differs from -k 5 alone"
    "$PYTHON" - s.json five.json <<'PY' || fail "fit reads: $(cat s.json five.json)"
import json, sys
many, one = (json.load(open(f)) for f in sys.argv[1:])
assert 0 < many["fit_chunks_read"] == one["fit_chunks_read"] <= one["chunks"], \
    (many["fit_chunks_read"], one["fit_chunks_read"])
assert one["chunks_read"] + one["chunks_reused"] == one["chunks"] == 24, one
PY
    # A budget that keeps few chunks (half of 300K: 3 of 48K): the remap decodes the others
    # again, to the same bytes.
    expect 0 cm run in.tif tight.tif -k 5 --seed 1 --tile 128 --memory 300K --summary tight.json -q
    cmp tight.tif five.tif || fail "--memory 300K: the output differs from the default budget's"
    "$PYTHON" - tight.json <<'PY' || fail "tight budget reads: $(cat tight.json)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["chunks_read"] + s["chunks_reused"] == s["chunks"] == 24, s
assert 0 < s["chunks_reused"] <= 3, s
PY
    # histogram: the sample reads every chunk once, and the colour count and the remap take
    # them as it left them, for the whole list as for one k
    expect 0 cm run in.tif h.tif -k 10,2,5 --seed 1 --tile 128 --algorithm histogram \
        --summary h.json -q
    expect 0 cm run in.tif h5.tif -k 5 --seed 1 --tile 128 --algorithm histogram \
        --summary h5.json -q
    cmp h5.tif h.k5.tif || fail "histogram: h.k5.tif differs from -k 5 alone"
    "$PYTHON" - h.json h5.json <<'PY' || fail "histogram reads: $(cat h.json h5.json)"
import json, sys
many, one = (json.load(open(f)) for f in sys.argv[1:])
assert many["fit_chunks_read"] == one["fit_chunks_read"] == 24, \
    (many["fit_chunks_read"], one["fit_chunks_read"])
assert many["chunks_reused"] == one["chunks_reused"] == 24, (many, one)
PY
    # striped input, and one k: the same counter
    mk strips.tif --width 300 --height 260 --bands 3 --pattern photo --strip 16
    expect 0 cm run strips.tif one.tif -k 4 --summary one.json -q
    "$PYTHON" -c "import json,sys; s=json.load(open('one.json')); \
assert s['chunks_read'] + s['chunks_reused'] == s['chunks'] and len(s['runs']) == 1 and s['runs'][0]['output'] == 'one.tif', s" ||
        fail "one k: $(cat one.json)"
}

case_k_list_usage_errors_exit_2() {
    mk in.tif --width 120 --height 80 --bands 3 --pattern photo --tile 32
    for bad in 2,5,2 2,,5 2,x 0,3 2,5, ,2 -2,3 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17; do
        expect 2 cm run in.tif out.tif -k "$bad"
        said "-k"
    done
    echo '[[1, 2, 3], [4, 5, 6]]' >c.json
    expect 2 cm run in.tif out.tif -k 2,3 --init c.json
    said "--init"
    expect 2 cm fit in.tif -k 2,3 -o m.json
    said "a list of k is for run"
    # two values of k whose outputs would be one file
    expect 2 cm run in.tif out.tif -k 2,3 --labels out.tif
    said "another output"
    no_outputs out.k2.tif out.k3.tif m.json
}

# check_elbow SVG SUMMARY.json MODEL: the picture SVG of a run against the JSON summary of the
# same run (same seed) and its models (--model-out MODEL.json: MODEL.kN.json for a list of k): it parses
# as XML with nothing to run or fetch; one point per k, in increasing k; the lower the error, the
# lower the point; and per k a swatch for each colour that took pixels, largest first, its fill
# the model's colour in 8 bits and its width the colour's share of the row within 1 unit.
check_elbow() {
    "$PYTHON" - "$@" <<'PY' || fail "elbow $1: $(head -c 3000 "$1")"
import json, os, sys, xml.etree.ElementTree as ET
svg, summary, model = sys.argv[1:]
NS = "{http://www.w3.org/2000/svg}"
root = ET.parse(svg).getroot()
assert root.tag == NS + "svg" and root.get("version") == "1.1", root
for e in root.iter():
    assert e.tag not in (NS + "script", NS + "image", NS + "foreignObject"), e.tag
    assert not any("href" in a for a in e.attrib), (e.tag, e.attrib)
s = json.load(open(summary))
runs = {r["k"]: r for r in s["runs"]}
name = s["input"].rsplit("/", 1)[-1]
assert name in root.find(NS + "title").text, root.find(NS + "title").text
points = [e for e in root.iter(NS + "circle") if e.get("class") == "point"]
ks = [int(p.get("data-k")) for p in points]
assert ks == sorted(runs), (ks, sorted(runs))
cy = [float(p.get("cy")) for p in points]
for i in range(len(ks) - 1):
    a, b = runs[ks[i]]["mean_squared_error"], runs[ks[i + 1]]["mean_squared_error"]
    # SVG's y grows downwards: a smaller error is a point further down
    assert (a > b) == (cy[i + 1] > cy[i]) and (a < b) == (cy[i + 1] < cy[i]), (ks, cy, a, b)
groups = [g for g in root.iter(NS + "g") if g.get("class") == "palette"]

def model_of(k):
    base, ext = os.path.splitext(model)
    return json.load(open(model if len(runs) == 1 else f"{base}.k{k}{ext}"))


bands = len(model_of(ks[0])["centroids"][0])
if bands not in (1, 3):
    assert not groups and not [e for e in root.iter(NS + "rect") if e.get("class") == "swatch"]
    sys.exit(0)
assert [int(g.get("data-k")) for g in groups] == ks, [g.get("data-k") for g in groups]
for g in groups:
    k = int(g.get("data-k"))
    m = model_of(k)
    assert m["counts"] == runs[k]["counts"], (m["counts"], runs[k]["counts"])
    top = {"uint8": 255, "uint16": 65535, "int16": 32767, "float32": 1.0}[m["sample_type"]]
    used = sorted((-c, j) for j, c in enumerate(m["counts"]) if c > 0)
    rects = [e for e in g if e.tag == NS + "rect"]
    swatches = [e for e in rects if e.get("class") == "swatch"]
    frame = [e for e in rects if e.get("class") == "frame"]
    assert len(swatches) == len(used) and len(frame) == 1, (k, len(swatches), len(used))
    assert g.find(NS + "text").text == f"k = {k}", g.find(NS + "text").text
    total = float(frame[0].get("width"))
    for rect, (minus_count, j) in zip(swatches, used):
        c = [min(255, max(0, round(v * (255 / top)))) for v in m["centroids"][j]]
        want = "#" + "".join(f"{v:02x}" for v in (c * 3 if len(c) == 1 else c))
        assert rect.get("fill") == want, (k, j, rect.get("fill"), want)
        share = -minus_count / runs[k]["pixels"]
        assert abs(float(rect.get("width")) - share * total) <= 1, (k, j, rect.get("width"), share)
PY
}

case_summary_svg_draws_the_elbow() {
    # A list given out of order: the points come in increasing k. The same run (same seed)
    # with a JSON summary gives the figures the picture is checked against.
    mk in.tif --width 300 --height 200 --bands 3 --pattern photo --tile 64
    expect 0 cm run in.tif out.tif -k 10,2,5 --seed 1 --summary s.svg --model-out m.json -q
    expect 0 cm run in.tif json.tif -k 10,2,5 --seed 1 --summary s.json -q
    check_elbow s.svg s.json m.json
    # one k, grey 16-bit samples with alpha: one point, grey swatches scaled to 8 bits
    mk g16.tif --width 200 --height 100 --bands 2 --type u16 --pattern photo --tile 64
    expect 0 cm run g16.tif g.tif -k 4 --summary g.SVG --model-out gm.json -q
    expect 0 cm run g16.tif gj.tif -k 4 --summary g.json -q
    check_elbow g.SVG g.json gm.json
    # five bands are no colours to draw: the curve alone
    mk ms.tif --width 64 --height 48 --bands 5 --pattern photo --tile 16
    expect 0 cm run ms.tif ms.out.tif -k 3,2 --summary ms.svg --model-out ms.m.json -q
    expect 0 cm run ms.tif msj.tif -k 3,2 --summary ms.json -q
    check_elbow ms.svg ms.json ms.m.json
    # a name with XML's markup characters is written as text
    cp in.tif "a&b<\"c'>.tif"
    expect 0 cm run "a&b<\"c'>.tif" odd.tif -k 2,3 --summary odd.svg --model-out odd.m.json -q
    expect 0 cm run "a&b<\"c'>.tif" oddj.tif -k 2,3 --summary odd.json -q
    check_elbow odd.svg odd.json odd.m.json
}

case_summary_of_another_kind_exits_2() {
    mk in.tif --width 120 --height 80 --bands 3 --pattern photo --tile 32
    # refused before any work: no output of any k, no temporary file
    for bad in s.txt s.svgz s.json.gz s .svg dir.svg/s; do
        expect 2 cm run in.tif out.tif -k 2,5 --summary "$bad"
        said "$bad: its extension says how to write the summary: .json (JSON) or .svg"
        no_outputs "$bad" out.k2.tif out.k5.tif
    done
    # before the input is even opened
    echo "not an image" >bad.tif
    expect 2 cm run bad.tif out.tif -k 2,5 --summary s.txt
    said "s.txt: its extension"
    # a run that fails leaves no picture
    cp in.tif cut.tif
    truncate -s $(($(stat -c %s cut.tif) / 2)) cut.tif
    expect 3 cm run cut.tif out.tif -k 2,5 --summary s.svg
    said "cut.tif"
    no_outputs s.svg out.k2.tif out.k5.tif
}

"case_$1"
