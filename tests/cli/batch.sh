#!/usr/bin/env bash
# Tests of the batch commands: fit on many files, apply a model to many files (skipping what
# exists, going on past a failing file), and fit then apply giving the pixels of run. Each case
# makes its own small TIFFs and takes seconds. Usage: batch.sh CASE (run by meson test).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
enter_work batch

# many N DIR [mkimage options]: N small RGB images DIR/f01.tif ... of different seeds and sizes.
many() {
    local n=$1 dir=$2 i
    shift 2
    mkdir -p "$dir"
    for ((i = 1; i <= n; i++)); do
        mk "$dir/$(printf 'f%02d.tif' "$i")" --width $((40 + i)) --height $((30 + i % 7)) \
            --pattern photo --seed "$i" --tile 16 "$@"
    done
}
# with_open_files N CMD...: runs CMD with at most N open files (soft and hard limits).
with_open_files() {
    (
        ulimit -n "$1" || exit 99
        shift
        exec "$@"
    )
}
# stamps DIR: inode, size and modification time (ns) of every file in DIR, one line each. An
# output written again is renamed into place from a new file, so its inode changes.
stamps() { find "$1" -type f -printf '%p %i %s %T@\n' | sort; }

case_fit_then_apply_gives_the_pixels_of_run() {
    mk in.tif --width 700 --height 500 --bands 3 --pattern photo --tile 256 --compression deflate
    expect 0 cm run in.tif run.tif -k 6 --seed 7 --labels run.lab.tif -q
    expect 0 cm fit in.tif -k 6 --seed 7 -o m.json -q
    [ -s m.json ] || fail "no model"
    expect 0 cm apply m.json in.tif apply.tif --labels apply.lab.tif -q
    check equal-pixels run.tif apply.tif
    check equal-pixels run.lab.tif apply.lab.tif
    cmp run.tif apply.tif || fail "the files differ (their pixels are equal)"
    # The same holds with alpha, scaling and another algorithm; and a seed changes the result.
    mk rgba.tif --width 300 --height 200 --bands 4 --pattern photo --tile 64
    for opts in "--scale standard" "--algorithm lloyd --max-iter 4" "--algorithm auto"; do
        # shellcheck disable=SC2086 # the options are words
        expect 0 cm run rgba.tif run4.tif -k 5 --seed 3 $opts -q
        # shellcheck disable=SC2086
        expect 0 cm fit rgba.tif -k 5 --seed 3 $opts -o m4.json -q
        expect 0 cm apply m4.json rgba.tif apply4.tif --overwrite -q
        check equal-pixels run4.tif apply4.tif
    done
    expect 0 cm fit in.tif -k 6 --seed 8 -o m8.json -q
    expect 0 cm apply m8.json in.tif apply8.tif -q
    ! cmp -s run.tif apply8.tif || fail "seeds 7 and 8 gave the same output"
}

case_apply_50_files_then_skip_them_all() {
    many 50 in
    expect 0 cm fit in/*.tif -k 5 -o m.json
    said "fitted on 50 inputs"
    # Small enough to be sampled whole: every pixel of every input is in the sample.
    "$PYTHON" -c "import json, sys
m = json.load(open('m.json'))
want = sum((40 + i) * (30 + i % 7) for i in range(1, 51))
sys.exit(0 if m['sample_pixels'] == want else 'sample of %d pixels, not %d' % (m['sample_pixels'], want))" ||
        fail "the sample does not hold every input"
    # Its inertia is the sample's (no remap measured the images).
    "$PYTHON" -c "import json, sys; m = json.load(open('m.json')); sys.exit(m['inertia'] <= 0)" ||
        fail "the model of fit has no inertia"
    expect 0 cm apply m.json in/*.tif --out-dir out
    said "50 files: 50 written, 0 skipped, 0 failed"
    [ "$(find out -name '*.tif' | wc -l)" -eq 50 ] || fail "not 50 outputs: $(ls out)"
    "$PYTHON" - <<'PY' || fail "an output does not have its input's shape"
import glob, os, sys
import tifffile
for f in sorted(glob.glob("in/*.tif")):
    a, b = tifffile.imread(f), tifffile.imread(os.path.join("out", os.path.basename(f)))
    if a.shape != b.shape or a.dtype != b.dtype:
        sys.exit(f"{f}: {a.shape} {a.dtype}, output {b.shape} {b.dtype}")
PY
    check at-most out/f17.tif 5 noalpha
    stamps out >before.txt
    sleep 0.05 # a rewrite would show in the times too
    expect 0 cm apply m.json in/*.tif --out-dir out -v
    said "50 files: 0 written, 50 skipped, 0 failed"
    [ "$(grep -c "skipped" err.txt)" -eq 51 ] || fail "not every file was named as skipped"
    stamps out >after.txt
    cmp before.txt after.txt || fail "outputs were touched: $(diff before.txt after.txt)"
    # -j1 and -j2 give the same files, as run does.
    expect 0 cm apply m.json in/*.tif --out-dir out1 -j1 -q
    expect 0 cm apply m.json in/*.tif --out-dir out2 -j2 -q
    for f in in/*.tif; do cmp "out1/${f#in/}" "out2/${f#in/}" || fail "-j1 and -j2 differ"; done
    # Under a hard limit of 20 open files, 8 threads cannot each hold one input open and write
    # it (8 + 3 per file, 16 kept aside): apply takes fewer threads, and gives the same files.
    expect 0 with_open_files 20 "$CHUNKMEANS" apply m.json in/*.tif --out-dir lim -j8
    said "using 1 thread"
    for f in in/*.tif; do cmp "out1/${f#in/}" "lim/${f#in/}" || fail "-j8 under a limit differs"; done
    expect 0 cm fit in/*.tif -k 5 -o m1.json -j1 -q
    cmp m.json m1.json || fail "fit: -j1 and -jN models differ"
    # 50 inputs opened by 4 threads need 200 descriptors: under a hard limit of 100 the fit
    # takes 1 thread, and gives the same model.
    expect 0 with_open_files 100 "$CHUNKMEANS" fit in/*.tif -k 5 -o m100.json -j4
    said "using 1 thread"
    cmp m.json m100.json || fail "fit under a limit of open files gave another model"
}

case_one_corrupt_file_among_50_exits_1() {
    many 50 in
    expect 0 cm fit in/*.tif -k 4 -o m.json -q
    head -c 300 in/f23.tif >cut.tif && mv cut.tif in/f23.tif
    expect 1 cm apply m.json in/*.tif --out-dir out -j2
    [ "$(find out -name '*.tif' | wc -l)" -eq 49 ] || fail "not 49 outputs"
    [ ! -e out/f23.tif ] || fail "an output for the corrupt input"
    said "1 of 50 files failed:"
    grep -q "^  in/f23.tif: not a TIFF" err.txt || fail "the summary does not name in/f23.tif"
    said "49 written, 0 skipped, 1 failed"
    no_temporaries
    # Once it is fixed, only it is written.
    mk in/f23.tif --width 63 --height 32 --pattern photo --seed 23 --tile 16
    stamps out >before.txt
    expect 0 cm apply m.json in/*.tif --out-dir out -q
    [ -e out/f23.tif ] || fail "the repaired input was not written"
    stamps out | grep -v f23.tif >after.txt
    cmp before.txt after.txt || fail "outputs other than f23.tif were touched"
}

case_fit_on_different_kinds_exits_3() {
    many 3 in
    mk in/grey.tif --width 50 --height 40 --bands 1 --pattern photo --tile 16
    expect 3 cm fit in/f01.tif in/f02.tif in/grey.tif in/f03.tif -k 4 -o m.json
    said "in/grey.tif: 1 band of uint8"
    [ ! -e m.json ] || fail "a model was written"
    mk in/wide.tif --width 50 --height 40 --bands 3 --type u16 --pattern photo --tile 16
    expect 3 cm fit in/f01.tif in/wide.tif -k 4 -o m.json
    said "in/wide.tif: 3 bands of uint16"
    mk in/rgba.tif --width 50 --height 40 --bands 4 --pattern photo --tile 16
    expect 3 cm fit in/f01.tif in/f02.tif in/rgba.tif -o m.json
    said "in/rgba.tif"
    [ ! -e m.json ] || fail "a model was written"
    # Several inputs: minibatch only.
    expect 2 cm fit in/f01.tif in/f02.tif --algorithm lloyd -o m.json
    expect 0 cm fit in/f01.tif --algorithm lloyd --max-iter 3 -o m.json -q
}

case_model_that_does_not_fit_the_image_exits_3() {
    many 2 in
    expect 0 cm fit in/*.tif -k 3 -o rgb.json -q
    mk grey.tif --width 50 --height 40 --bands 1 --pattern photo --tile 16
    expect 3 cm apply rgb.json grey.tif out.tif
    said "grey.tif: 1 band of uint8, but the model rgb.json was fitted on 3 bands of uint8"
    [ ! -e out.tif ] || fail "an output was written"
    mk u16.tif --width 50 --height 40 --bands 3 --type u16 --pattern photo --tile 16
    expect 3 cm apply rgb.json u16.tif out.tif
    said "u16.tif: 3 bands of uint16"
    # Among other files: reported, the others written, exit 1.
    expect 1 cm apply rgb.json in/f01.tif grey.tif in/f02.tif --out-dir out
    said "grey.tif: 1 band of uint8, but the model"
    { [ -e out/f01.tif ] && [ -e out/f02.tif ] && [ ! -e out/grey.tif ]; } || fail "outputs: $(ls out)"
    # A file that is no model exits 3 before any input is read.
    echo '{"k": 3}' >bad.json
    expect 3 cm apply bad.json in/f01.tif out2.tif
    said "bad.json: not a chunkmeans model"
    no_temporaries
}

case_out_dir_and_labels_dir() {
    many 3 in
    expect 0 cm fit in/*.tif -k 4 -o m.json -q
    # The directories are made (one level: a missing parent is an error).
    expect 1 cm apply m.json in/*.tif --out-dir new/out -q
    said "new/out: cannot make the directory"
    expect 0 cm apply m.json in/*.tif --out-dir out --labels-dir labels -q
    for i in 01 02 03; do
        check labels "out/f$i.tif" "labels/f$i.tif" 4 uint8
        expect 0 cm apply m.json "in/f$i.tif" "one$i.tif" --labels "lab$i.tif" -q
        check equal-pixels "one$i.tif" "out/f$i.tif"
        check equal-pixels "lab$i.tif" "labels/f$i.tif"
    done
    # An output whose label map is missing is written again, with it.
    rm labels/f02.tif
    stamps out >before.txt
    expect 0 cm apply m.json in/*.tif --out-dir out --labels-dir labels
    said "3 files: 1 written, 2 skipped"
    [ -e labels/f02.tif ] || fail "the label map was not written"
    # Outputs that would collide, or be the inputs, are refused before anything is written.
    mkdir -p other && cp in/f01.tif other/f01.tif
    expect 2 cm apply m.json in/f01.tif other/f01.tif --out-dir out2
    said "would both write out2/f01.tif"
    expect 2 cm apply m.json in/*.tif --out-dir same --labels-dir same
    expect 2 cm apply m.json in/*.tif --out-dir in
    said "it is also the input"
    expect 2 cm apply m.json in/f01.tif --out-dir out --labels lab.tif
    expect 2 cm apply m.json in/f01.tif in/f02.tif out.tif
    [ ! -e out2 ] || [ -z "$(ls out2)" ] || fail "out2 holds files"
}

case_overwrite_rewrites() {
    many 3 in
    expect 0 cm fit in/*.tif -k 4 -o m.json -q
    expect 0 cm apply m.json in/*.tif --out-dir out -q
    cp -r out kept
    stamps out >before.txt
    expect 0 cm apply m.json in/*.tif --out-dir out --overwrite
    said "3 files: 3 written, 0 skipped"
    stamps out >after.txt
    for f in f01 f02 f03; do
        [ "$(grep "/$f.tif" before.txt | cut -d' ' -f2)" != "$(grep "/$f.tif" after.txt | cut -d' ' -f2)" ] ||
            fail "out/$f.tif was not written again (same inode)"
        cmp "out/$f.tif" "kept/$f.tif" || fail "out/$f.tif changed"
    done
    # One input: the same.
    expect 0 cm apply m.json in/f01.tif one.tif -q
    echo "an older output" >one.tif
    expect 0 cm apply m.json in/f01.tif one.tif
    said "one.tif exists; skipped"
    grep -q "older" one.tif || fail "one.tif was written over"
    expect 0 cm apply m.json in/f01.tif one.tif --overwrite -q
    cmp one.tif out/f01.tif || fail "--overwrite did not write one.tif"
}

case_one_budget_for_all_files() {
    # Chunks of 512 x 512 RGB need about 0.9 MiB each: the two files share 1.5M, so their
    # sub-graphs take turns; the outputs are those of a roomy budget.
    mk a.tif --width 600 --height 520 --pattern photo --tile 512
    mk b.tif --width 520 --height 600 --pattern photo --tile 512 --seed 2
    expect 0 cm fit a.tif b.tif -k 4 -o m.json -q
    expect 0 cm apply m.json a.tif b.tif --out-dir out -j2 --memory 1.5M
    said "2 written"
    expect 0 cm apply m.json a.tif b.tif --out-dir big -j2 -q
    { cmp out/a.tif big/a.tif && cmp out/b.tif big/b.tif; } || fail "the outputs depend on --memory"
    # One input whose chunk alone needs more than the budget (its tiles of 1024 x 1024 are
    # its chunks: 3 MiB) fails alone; the others (0.9 MiB) are written.
    many 3 in
    mk in/huge.tif --width 1100 --height 1030 --pattern photo --tile 1024
    expect 1 cm apply m.json in/*.tif --out-dir small --memory 2M
    said "1 of 4 files failed:"
    grep -q "^  in/huge.tif: .*use --memory" err.txt || fail "the summary does not name in/huge.tif"
    [ "$(find small -name '*.tif' | wc -l)" -eq 3 ] && [ ! -e small/huge.tif ] ||
        fail "not the 3 small outputs: $(ls small)"
    expect 2 cm apply m.json a.tif small.tif --memory 200K
    said "use --memory"
}

case_files_are_sub_graphs_of_one_graph() {
    many 6 in
    expect 0 cm fit in/*.tif -k 4 -o m.json -q
    expect 0 cm apply m.json in/*.tif --out-dir out -j2 --trace t.json -q
    [ "$(find out -name '*.tif' | wc -l)" -eq 6 ] || fail "not 6 outputs"
    "$PYTHON" - <<'PY' || fail "the trace is not one graph of 6 overlapping sub-graphs"
import json, sys
ev = [e for e in json.load(open("t.json"))["traceEvents"] if e["ph"] == "X"]
runs = {e["args"]["run"] for e in ev}
if runs != {0}:
    sys.exit(f"{len(runs)} graphs ran, not one")
kinds = {}
for e in ev:
    kinds.setdefault(e["name"], []).append(e)
for k in ("open", "close"):
    if len(kinds.get(k, [])) != 6:
        sys.exit(f"{len(kinds.get(k, []))} {k} tasks, not 6")
opens = sorted(kinds["open"], key=lambda e: e["args"]["task"])
closes = sorted(kinds["close"], key=lambda e: e["args"]["task"])
# Sub-graphs overlap: some file opens before the one before it is closed.
if not any(opens[i + 1]["ts"] < closes[i]["ts"] for i in range(5)):
    sys.exit("every file waited for the one before it")
# At most -j + 1 = 3 files are open at once.
edges = [(o["ts"], 1) for o in opens] + [(c["ts"] + c["dur"], -1) for c in closes]
now = peak = 0
for _, step in sorted(edges, key=lambda x: (x[0], x[1])):
    now += step
    peak = max(peak, now)
if peak > 3:
    sys.exit(f"{peak} files open at once")
PY
    # The same files as one at a time.
    for f in in/*.tif; do
        expect 0 cm apply m.json "$f" "one_${f#in/}" -q
        cmp "one_${f#in/}" "out/${f#in/}" || fail "$f: the batch differs from a single apply"
    done
}

case_shards_together_write_the_files_of_one_run() {
    # 7 inputs of 7 sizes: parts of about equal bytes, not of equal counts.
    local i s n sum=0 fails=0
    mkdir -p in
    for ((i = 1; i <= 7; i++)); do
        mk "in/f$i.tif" --width $((24 * i)) --height $((20 + 3 * i)) --pattern photo --seed "$i" \
            --tile 16
    done
    expect 0 cm fit in/*.tif -k 4 -o m.json -q
    expect 0 cm apply m.json in/*.tif --out-dir whole -q
    for s in 1 2 3; do
        # Into one directory: a file done by two shards would be skipped by the later one.
        expect 0 cm apply m.json in/*.tif --out-dir shards --shard "$s/3"
        n='\([0-9]*\) of 7 files: \1 written, 0 skipped, 0 failed'
        n=$(sed -n "s|.*apply: shard $s/3: $n.*|\1|p" err.txt)
        { [ -n "$n" ] && [ "$n" -ge 1 ]; } || fail "shard $s/3: $(cat err.txt)"
        sum=$((sum + n))
        # And each into its own, to see which files each part holds.
        expect 0 cm apply m.json in/*.tif --out-dir "part$s" --shard "$s/3" -q
    done
    [ "$sum" -eq 7 ] || fail "the shards wrote $sum files, not 7"
    # The same names, and every file the same bytes.
    [ "$(ls whole)" = "$(ls shards)" ] || fail "names differ: $(ls whole) / $(ls shards)"
    for f in whole/*; do cmp "$f" "shards/${f#whole/}" || fail "$f: a shard wrote other bytes"; done
    # Each input in exactly one part.
    find part1 part2 part3 -type f -printf '%f\n' | sort >parts.txt
    find whole -type f -printf '%f\n' | sort >whole.txt
    cmp parts.txt whole.txt || fail "the parts are not the whole, once: $(diff parts.txt whole.txt)"
    for s in 1 2 3; do [ -n "$(ls "part$s")" ] || fail "shard $s/3 did nothing"; done
    # One part of one is the whole.
    expect 0 cm apply m.json in/*.tif --out-dir one --shard 1/1 -q
    for f in whole/*; do cmp "$f" "one/${f#whole/}" || fail "--shard 1/1 differs"; done
    # An input that cannot be read fails in one part only, named as in one run.
    expect 1 cm apply m.json in/*.tif in/gone.tif --out-dir gone0
    said "in/gone.tif: No such file"
    for s in 1 2 3; do
        cm apply m.json in/*.tif in/gone.tif --out-dir "gone$s" --shard "$s/3" >out.txt 2>err.txt
        case $? in
        0) ;;
        1) fails=$((fails + 1)) && said "in/gone.tif: No such file" ;;
        *) fail "shard $s/3 with a missing input: $(cat err.txt)" ;;
        esac
        no_sanitizer_report err.txt
    done
    [ "$fails" -eq 1 ] || fail "the missing input failed in $fails shards, not 1"
    no_temporaries
}

case_shard_usage_errors_exit_2() {
    local v
    many 3 in
    expect 0 cm fit in/*.tif -k 3 -o m.json -q
    for v in 0/3 4/3 1/0 a/3 1/3x "1/3 " " 1/3" +1/3 1/-3 3 1/ /3 1//3 1/3/3 1/100001 ""; do
        expect 2 cm apply m.json in/*.tif --out-dir out --shard "$v"
        said "--shard: expected I/N"
        grep -qF -- "'$v'" err.txt || fail "the message does not name '$v': $(cat err.txt)"
    done
    expect 2 cm apply m.json in/f01.tif one.tif --shard 1/2
    said "--shard needs --out-dir"
    { [ ! -e out ] && [ ! -e one.tif ]; } || fail "a usage error wrote something"
    # The largest count is taken: 3 inputs, part 100000 holds none of them.
    expect 0 cm apply m.json in/*.tif --out-dir far --shard 100000/100000
    said "shard 100000/100000: 0 of 3 files"
    [ -z "$(ls far)" ] || fail "an empty part wrote $(ls far)"
}

case_help_names_the_batch_commands() {
    expect 0 cm --help
    { grep -q "chunkmeans fit" out.txt && grep -q "chunkmeans apply" out.txt; } || fail "--help"
    expect 0 cm fit --help
    grep -q "only minibatch" out.txt || fail "fit --help does not say minibatch only"
    expect 0 cm apply --help
    { grep -q -- "--out-dir" out.txt && grep -q -- "--overwrite" out.txt; } || fail "apply --help"
    grep -q -- "--shard I/N" out.txt || fail "apply --help does not name --shard"
    expect 2 cm fit
    expect 2 cm apply
    expect 2 cm apply m.json
}

"case_$1"
