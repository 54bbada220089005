#!/usr/bin/env bash
# Fault and limit tests of the chunkmeans command: a full disk (file-size limit), read-only
# and vanishing directories, signals and SIGKILL mid-run, inputs corrupt deep inside or
# truncated while being read, budgets below one chunk, outputs that are the input, and the
# limits of size, tiles, k and bands. Each case makes its own files and takes seconds.
# Usage: faults.sh CASE (run by meson test, suite 'faults').
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
enter_work faults
pid=
# A run left in the background by a failed check is killed (stopped or not).
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; chmod -R u+w "$work"; rm -rf "$work"' EXIT

# start CMD...: runs CMD in the background with SIGINT at its default (a shell without job
# control would have it ignored), stderr in err.txt; its process id in $pid.
start() {
    rm -f out.txt err.txt # else wait_for could see the last run's lines before the new run starts
    env --default-signal=INT "$@" >out.txt 2>err.txt &
    pid=$!
}
# wait_for TEXT: until the background run has written TEXT on stderr (progress lines are drawn
# with \r, so this matches within one line); fails if it exits first or after a minute.
wait_for() {
    local i
    for ((i = 0; i < 6000; i++)); do
        grep -q -- "$1" err.txt 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || fail "the run ended before '$1': $(tr '\r' '\n' <err.txt)"
        sleep 0.01
    done
    fail "no '$1' on stderr within a minute"
}
# finish CODE: waits for the background run, which must exit with CODE.
finish() {
    wait "$pid"
    local got=$?
    pid=
    [ "$got" -eq "$1" ] || { tr '\r' '\n' <err.txt >&2; fail "the run exited $got, expected $1"; }
    no_sanitizer_report err.txt
}
# stopped_at TEXT: the background run, frozen (SIGSTOP) as soon as it printed TEXT.
stopped_at() {
    wait_for "$1"
    kill -STOP "$pid"
}
# A photo of 3000 x 2000 in 256 x 256 deflate tiles: 24 chunks of 512 x 512, each taking
# long enough (a few milliseconds in a release build) that a run frozen at its first progress
# line of a stage still has most of that stage ahead of it.
big_input() {
    mk "$1" --width 3000 --height 2000 --bands 3 --pattern photo --tile 256 --compression deflate
}
# Options for a quick fit (one exact pass), so that runs reach their remap soon.
quick=(-k 6 --algorithm lloyd --max-iter 1)

# ---- faults ---------------------------------------------------------------------------------

# limited KIB CMD...: runs CMD with files limited to KIB kibibytes (ulimit -f).
limited() {
    (
        ulimit -f "$1" || exit 99
        shift
        exec "$@"
    )
}

case_file_size_limit_leaves_nothing() {
    # SIGXFSZ would kill the process at the limit; it must see EFBIG instead, say which file,
    # and remove its temporary files. The limit (ulimit -f, in KiB) is per file.
    mk rgb.tif --width 1000 --height 1000 --bands 3 --pattern noise --tile 64 --compression none
    expect 1 limited 1000 "$CHUNKMEANS" run rgb.tif out.tif -k 4 \
        --compression none --max-iter 5 -q
    said "out.tif"
    said "File too large"
    no_outputs out.tif
    # An older OUT is left as it was.
    echo "an older output" >out.tif
    cp out.tif old.tif
    expect 1 limited 1000 "$CHUNKMEANS" run rgb.tif out.tif -k 4 \
        --compression none --max-iter 5 -q --labels lab.tif --model-out m.json
    cmp -s out.tif old.tif || fail "the older output was changed"
    rm out.tif old.tif
    no_outputs out.tif lab.tif m.json

    # The label map first: uint16 labels (k > 256) take twice the bytes of a grey image.
    mk grey.tif --width 500 --height 500 --bands 1 --pattern noise --tile 64 --compression none
    expect 1 limited 400 "$CHUNKMEANS" run grey.tif out.tif -k 300 \
        --compression none --max-iter 5 -q --labels lab.tif --model-out m.json
    said "lab.tif"
    said "File too large"
    no_outputs out.tif lab.tif m.json

    # The model first: 4096 centres take 130 kB of JSON, the images a few kB.
    mk small.tif --width 64 --height 64 --bands 1 --pattern noise --tile 16
    expect 1 limited 60 "$CHUNKMEANS" run small.tif out.tif -k 4096 \
        --max-iter 5 -q --labels lab.tif --model-out m.json
    said "m.json"
    said "File too large"
    no_outputs out.tif lab.tif m.json
    # Without the limit the same run works.
    expect 0 cm run small.tif out.tif -k 4096 --max-iter 5 -q --labels lab.tif --model-out m.json
}

# as_nobody CMD...: runs CMD as an unprivileged user when we are root (root ignores
# permissions), else as ourselves.
as_nobody() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
    else
        "$@"
    fi
}

case_read_only_output_directory_exits_1() {
    if [ "$(id -u)" -eq 0 ] && ! command -v setpriv >/dev/null; then
        echo "root without setpriv: cannot test permissions" >&2
        exit 77
    fi
    chmod 755 "$work"
    mk in.tif --width 300 --height 200 --bands 3 --pattern photo --tile 64
    chmod 644 in.tif
    mkdir ro rw
    chmod 777 rw
    echo "an older output" >ro/old.tif
    chmod 555 ro
    expect 1 as_nobody "$CHUNKMEANS" run in.tif ro/out.tif -k 4 -q
    said "ro/out.tif"
    said "Permission denied"
    no_outputs ro/out.tif
    [ "$(ls -A ro)" = "old.tif" ] || fail "something was written in ro/: $(ls -A ro)"
    expect 1 as_nobody "$CHUNKMEANS" run in.tif ro/old.tif -k 4 -q
    [ "$(cat ro/old.tif)" = "an older output" ] || fail "ro/old.tif was changed"
    # The label map or the model in the read-only directory: refused before the fit, and the
    # image is not left in the writable one either.
    expect 1 as_nobody "$CHUNKMEANS" run in.tif rw/out.tif --labels ro/lab.tif -k 4 -q
    said "ro/lab.tif"
    no_outputs rw/out.tif ro/lab.tif
    expect 1 as_nobody "$CHUNKMEANS" run in.tif rw/out.tif --model-out ro/m.json -k 4 -q
    said "ro/m.json"
    no_outputs rw/out.tif ro/m.json
    [ -z "$(ls rw)" ] || fail "rw/ is not empty: $(ls rw)"
    # OUT naming a directory is refused at once too, not after the work.
    expect 1 cm run in.tif rw -k 4 -q
    said "is a directory"
    no_outputs
}

case_sigint_and_sigterm_stop_cleanly() {
    big_input in.tif
    # Frozen at the first remap progress line, so the signal arrives with most of the image
    # still to do, tiles already in the temporary files.
    for sig in INT TERM; do
        start "$CHUNKMEANS" run in.tif out.tif "${quick[@]}" -j2 --progress always \
            --labels lab.tif --model-out m.json
        stopped_at "remap "
        find . -name 'out.tif.part-*' | grep -q . || fail "no temporary file while running"
        kill -"$sig" "$pid"
        kill -CONT "$pid"
        finish $((128 + $(kill -l "$sig")))
        said "interrupted by SIG$sig"
        no_outputs out.tif lab.tif m.json
    done
    # During the fit (exact Lloyd passes), and from a shell as Ctrl-C sends it.
    start "$CHUNKMEANS" run in.tif out.tif -k 8 -j2 --progress always --algorithm lloyd
    stopped_at "fit "
    kill -INT "$pid"
    kill -CONT "$pid"
    finish 130
    no_outputs out.tif
    # A signal ignored at start (nohup) stays ignored: the run goes on and succeeds.
    rm -f err.txt
    env --ignore-signal=HUP "$CHUNKMEANS" run in.tif out.tif "${quick[@]}" -j2 \
        --progress always >out.txt 2>err.txt &
    pid=$!
    stopped_at "remap "
    kill -HUP "$pid"
    kill -CONT "$pid"
    finish 0
    check same-shape in.tif out.tif
    no_outputs
}

case_interrupted_batch_keeps_only_complete_outputs() {
    mkdir in
    for i in 1 2 3 4; do
        mk in/f$i.tif --width 3000 --height 2000 --bands 3 --pattern photo --tile 256 \
            --compression deflate --seed $i
    done
    expect 0 cm fit in/f1.tif -k 6 -o m.json -q
    for i in 1 2 3 4; do expect 0 cm apply m.json in/f$i.tif ref$i.tif -q; done
    # Frozen at the first remap progress line of the one graph: its first files are being
    # written, the others not yet open.
    start "$CHUNKMEANS" apply m.json in/*.tif --out-dir out -j2 --progress always
    stopped_at "remap "
    kill -INT "$pid"
    kill -CONT "$pid"
    finish 130
    said "interrupted by a signal"
    said "not done"
    no_temporaries
    # What was written is whole; the next call writes only the rest, and every file is the
    # one a single apply writes.
    before=$(ls out)
    expect 0 cm apply m.json in/*.tif --out-dir out -j2 -v
    for f in $before; do said "out/$f exists; skipped"; done
    for i in 1 2 3 4; do cmp "ref$i.tif" "out/f$i.tif" || fail "out/f$i.tif differs"; done
    no_temporaries
}

case_sigkill_never_leaves_a_partial_output() {
    big_input in.tif
    expect 0 cm run in.tif ref.tif "${quick[@]}" --seed 3 -q
    # No older OUT: after SIGKILL mid-write there is none, only the temporary file.
    start "$CHUNKMEANS" run in.tif out.tif "${quick[@]}" --seed 3 -j1 --progress always
    stopped_at "remap "
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    pid=
    [ ! -e out.tif ] || fail "out.tif exists after SIGKILL"
    stale=$(find . -name 'out.tif.part-*')
    [ -n "$stale" ] || fail "no temporary file: was the run killed while writing?"
    # An older OUT stays whole. The next run ignores the stale temporary file and replaces OUT.
    expect 0 cm run in.tif out.tif "${quick[@]}" -k 2 -q
    cp out.tif old.tif
    start "$CHUNKMEANS" run in.tif out.tif "${quick[@]}" --seed 3 -j1 --progress always
    stopped_at "remap "
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    pid=
    cmp -s out.tif old.tif || fail "out.tif changed under a run killed while writing"
    expect 0 cm run in.tif out.tif "${quick[@]}" --seed 3 -q
    cmp out.tif ref.tif || fail "the run after SIGKILL does not give the reference output"
    for f in $stale; do [ -e "$f" ] || fail "a later run removed another run's file $f"; done
}

case_corrupt_900th_tile_exits_3() {
    # 640 x 640 in 16 x 16 tiles: 1600 tiles; the 900th (tile 899) is damaged in two ways.
    mk in.tif --width 640 --height 640 --bands 3 --pattern photo --tile 16 --compression deflate
    cp in.tif data.tif
    cp in.tif offset.tif
    "$PYTHON" - <<'PY' || fail "damaging tile 899"
import struct, tifffile
with tifffile.TiffFile("in.tif") as t:
    page = t.pages[0]
    assert len(page.dataoffsets) == 1600
    off, size = page.dataoffsets[899], page.databytecounts[899]
    offsets = page.tags["TileOffsets"]
    assert offsets.dtype == 4, offsets.dtype  # LONG
    at = offsets.valueoffset + 899 * 4
with open("data.tif", "r+b") as f:  # its deflate stream: garbage
    f.seek(off)
    f.write(bytes((i * 37 + 11) & 0xFF for i in range(size)))
with open("offset.tif", "r+b") as f:  # its offset: far past the end of the file
    f.seek(at)
    f.write(struct.pack("<I", 0x7FFFFFF0))
PY
    for f in data offset; do
        expect 3 cm run $f.tif out.tif -k 4 --labels lab.tif --model-out m.json
        said "$f.tif"
        said "tile 899"
        no_outputs out.tif lab.tif m.json
    done
    expect 3 cm run data.tif out.tif -k 4 --algorithm histogram -j2
    said "tile 899"
    no_outputs out.tif
    expect 3 cm info data.tif --colors
    said "tile 899"
}

case_input_truncated_while_read_exits_3() {
    # One worker: every read goes through the handle opened before the truncation.
    # Truncated while the sample is read, and while the remap writes tiles. A budget of 2 MiB
    # keeps none of the chunks the fit read, so that the remap reads the file again.
    for stage in sample remap; do
        big_input in.tif
        start "$CHUNKMEANS" run in.tif out.tif -k 6 --max-iter 5 -j1 --progress always \
            --labels lab.tif --model-out m.json --memory 2M
        stopped_at "$stage "
        truncate -s $(($(stat -c %s in.tif) / 3)) in.tif
        kill -CONT "$pid"
        finish 3
        said "in.tif: tile"
        said "cannot be decoded"
        no_outputs out.tif lab.tif m.json
    done
    # Four workers, whose handles may be opened after the truncation: still bad input (exit 3),
    # "changed while being read" or a tile that cannot be decoded.
    big_input in.tif
    start "$CHUNKMEANS" run in.tif out.tif -k 6 --max-iter 5 -j4 --progress always
    stopped_at "sample "
    truncate -s 4096 in.tif
    kill -CONT "$pid"
    finish 3
    said "in.tif: "
    no_outputs out.tif
}

case_output_directory_vanishes_exits_1() {
    big_input in.tif
    for extra in "" "--model-out od/m.json" "--max-iter 3"; do
        mkdir od
        # shellcheck disable=SC2086
        start "$CHUNKMEANS" run in.tif od/out.tif "${quick[@]}" -j2 --progress always \
            --labels od/lab.tif $extra
        if [ "$extra" = "--max-iter 3" ]; then stopped_at "fit "; else stopped_at "remap "; fi
        rm -rf od
        kill -CONT "$pid"
        finish 1
        said "od/"
        said "No such file or directory"
        [ ! -e od ] || fail "od/ was made again: $(find od)"
        no_outputs
    done
    # The model, the label map and the summary elsewhere, committed before OUT's rename fails:
    # removed, so that a failed run leaves none of its outputs.
    mkdir od keep
    start "$CHUNKMEANS" run in.tif od/out.tif "${quick[@]}" -j2 --progress always \
        --labels keep/lab.tif --model-out keep/m.json --summary keep/s.svg
    stopped_at "remap "
    rm -rf od
    kill -CONT "$pid"
    finish 1
    said "od/out.tif: cannot finish the output: No such file or directory"
    [ -z "$(ls -A keep)" ] || fail "left in keep/: $(ls -A keep)"
}

# min_memory: the --memory that the last budget message (in err.txt) says works.
min_memory() {
    sed -n 's/.*use --memory \([0-9]*[KMG]\) or more.*/\1/p' err.txt
}

case_memory_below_one_chunk_says_the_minimum() {
    # Small images: a chunk buffer has the chunk's full size even where the image is smaller.
    mk rgb.tif --width 300 --height 200 --bands 3 --pattern photo --tile 128
    mk f32.tif --width 200 --height 100 --bands 12 --type f32 --pattern photo --tile 128
    mk strips.tif --width 200 --height 150 --bands 4 --pattern photo --strip 3
    mk wide.tif --width 5000 --height 20 --bands 3 --pattern photo --one-strip
    for args in "rgb.tif" "rgb.tif --labels lab.tif" "rgb.tif --tile 4096" \
        "rgb.tif --algorithm lloyd" "rgb.tif --algorithm histogram" "f32.tif --labels lab.tif" \
        "strips.tif -k 300 --labels lab.tif" "wide.tif" "rgb.tif --format palette"; do
        rm -f out.tif lab.tif
        # shellcheck disable=SC2086
        expect 2 cm run $args out.tif --memory 1K -q
        said "memory budget"
        local m
        m=$(min_memory)
        [ -n "$m" ] || fail "$args: the message gives no size: $(cat err.txt)"
        no_outputs out.tif lab.tif
        # shellcheck disable=SC2086
        expect 0 cm run $args out.tif --memory "$m" -q --max-iter 5
    done
    # A list of 16 k needs 16 chunks at once in the remap: the chunks the fit keeps for it must
    # leave it that room, whatever the budget above the least.
    mk many.tif --width 384 --height 256 --bands 3 --pattern photo --tile 32
    local ks=2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17 need
    expect 2 cm run many.tif out.tif -k $ks --tile 32 --memory 1K -q
    need=$(sed -n 's/.* needs \([0-9]*\) bytes.*/\1/p' err.txt)
    [ -n "$need" ] || fail "-k $ks: the message gives no size: $(cat err.txt)"
    for budget in "$need" "$((need * 3 / 2))"; do
        rm -f out.k*.tif
        expect 0 cm run many.tif out.tif -k $ks --tile 32 --memory "$budget" -q --max-iter 2 \
            --n-init 1
    done
}

case_output_that_is_the_input_is_refused() {
    mk in.tif --width 200 --height 100 --bands 3 --pattern photo --tile 64
    sum=$(sha256sum <in.tif)
    mkdir sub
    ln in.tif hard.tif
    ln -s in.tif soft.tif
    ln -s "$work/in.tif" abs-soft.tif
    ln -s "$work" dirlink
    ln -s soft.tif chain.tif
    find . -mindepth 1 ! -name '*.txt' -printf '%p %s %T@\n' | sort >before.txt
    for out in in.tif ./in.tif "$work/in.tif" sub/../in.tif hard.tif soft.tif abs-soft.tif \
        dirlink/in.tif chain.tif; do
        expect 2 cm run in.tif "$out" -k 3
        said "input"
        expect 2 cm run in.tif out.tif -k 3 --labels "$out"
        expect 2 cm run in.tif out.tif -k 3 --model-out "$out"
        expect 2 cm run soft.tif "$out" -k 3
    done
    expect 2 cm run hard.tif in.tif -k 3
    [ "$(sha256sum <in.tif)" = "$sum" ] || fail "the input changed"
    find . -mindepth 1 ! -name '*.txt' -printf '%p %s %T@\n' | sort >after.txt
    cmp -s before.txt after.txt || fail "files appeared: $(diff before.txt after.txt)"
    no_outputs out.tif
}

# ---- limits ---------------------------------------------------------------------------------

# sparse_bigtiff PATH W H TILE: an RGB BigTIFF of W x H in TILE x TILE tiles (TILE 0: in one
# strip), none of them stored: offsets and byte counts 0, as GDAL writes sparse files.
sparse_bigtiff() {
    "$PYTHON" - "$@" <<'PY' || fail "making a sparse BigTIFF"
import struct, sys
path, w, h, tile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
n = ((w + tile - 1) // tile) * ((h + tile - 1) // tile) if tile else 1
arrays_at = 16 + 8 + (12 if tile else 11) * 20 + 8  # after the header and the directory
# (tag, type, count, value): SHORT 3, LONG 4, LONG8 16; three SHORTs are inline
layout = [(322, 4, 1, tile), (323, 4, 1, tile), (324, 16, n, arrays_at),
          (325, 16, n, arrays_at + 8 * n)] if tile else \
         [(273, 16, 1, 0), (278, 4, 1, h), (279, 16, 1, 0)]
entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, 8), (259, 3, 1, 1), (262, 3, 1, 2),
           (277, 3, 1, 3), (284, 3, 1, 1), (339, 3, 3, 1)] + layout
ifd = struct.pack("<Q", len(entries))
for tag, typ, count, value in sorted(entries):
    if typ == 3 and count == 3:
        ifd += struct.pack("<HHQHHHH", tag, typ, count, value, value, value, 0)
    elif typ == 3:
        ifd += struct.pack("<HHQHHI", tag, typ, count, value, 0, 0)
    elif typ == 4:
        ifd += struct.pack("<HHQII", tag, typ, count, value, 0)
    else:
        ifd += struct.pack("<HHQQ", tag, typ, count, value)
ifd += struct.pack("<Q", 0)
with open(path, "wb") as f:
    f.write(b"II+\0" + struct.pack("<HHQ", 8, 0, 16) + ifd)
    f.truncate(arrays_at + 16 * n)  # offsets, then byte counts: all zero
PY
}

case_dimensions_past_32_bits() {
    # 70000 x 70000: 4.9 gigapixels, more than 2^32. Described from a sparse file.
    sparse_bigtiff huge.tif 70000 70000 512
    expect 0 cm info huge.tif
    grep -q "70000 x 70000 (4900.0 megapixels)" out.txt || fail "info: $(cat out.txt)"
    grep -q "chunks: *18769 of 512x512" out.txt || fail "info chunks: $(cat out.txt)"
    expect 0 cm info huge.tif --json
    "$PYTHON" -c "
import json; d = json.load(open('out.txt'))
assert (d['width'], d['height'], d['chunks'], d['bigtiff']) == (70000, 70000, 18769, True), d
" || fail "info --json: $(cat out.txt)"
    # Its budget arithmetic fails cleanly.
    expect 2 cm run huge.tif out.tif --memory 1K
    said "memory budget"
    no_outputs out.tif
    # Absent tiles read as zeros, as GDAL reads them (libtiff alone would take their byte
    # counts for bogus and decode the file's header as pixels).
    sparse_bigtiff sparse.tif 2048 1024 16
    expect 0 cm run sparse.tif out.tif -k 2 -q
    "$PYTHON" -c "
import tifffile; a = tifffile.imread('out.tif')
assert a.shape == (1024, 2048, 3) and not a.any(), (a.shape, a.max())
" || fail "a sparse file did not read as zeros"
    rm -f out.tif
    # The widest TIFF, 2^32 - 1 pixels by 16 rows: described, and the budget it would need
    # (some 244 GiB) computed without overflow.
    sparse_bigtiff wide.tif 4294967295 16 0
    expect 0 cm info wide.tif
    grep -q "4294967295 x 16" out.txt || fail "info: $(cat out.txt)"
    expect 2 cm run wide.tif out.tif
    said "use --memory 249856M or more"
    # Sides of 2^32 - 1: more pixels than an int64_t counts. Refused as bad input, not crashed.
    sparse_bigtiff widest.tif 4294967295 4294967295 0
    expect 3 cm info widest.tif
    said "widest.tif"
    no_outputs out.tif
}

case_tile_sizes_16_to_4096() {
    # Input tiles of 16, 64 and 4096 (larger than the image) read as the strips do.
    mk s.tif --width 300 --height 200 --bands 3 --pattern photo --strip 8
    for t in 16 64 4096; do
        mk i$t.tif --width 300 --height 200 --bands 3 --pattern photo --tile $t
    done
    check equal-pixels s.tif i16.tif i64.tif i4096.tif
    expect 0 cm info i4096.tif
    grep -q "tiled 4096x4096" out.txt || fail "info i4096.tif: $(cat out.txt)"
    for f in s i16 i64 i4096; do expect 0 cm run $f.tif $f.out.tif -k 5 --seed 1 -q; done
    # Output tiles of 16 (from 16 x 16 input tiles) and of 4096 (squares of 64 x 64 ones).
    expect 0 cm run i16.tif t16.tif -k 5 --seed 1 -q --tile 16
    expect 0 cm run i64.tif t4096.tif -k 5 --seed 1 -q --tile 4096
    for t in 16 4096; do
        tiffinfo t$t.tif 2>/dev/null | grep -q "Tile Width: $t Tile Length: $t" || fail "--tile $t"
    done
    check equal-pixels s.out.tif i16.out.tif i64.out.tif i4096.out.tif t16.tif t4096.tif
    for t in 0 8 24 100 4095 4112 8192 65536 -16 16x16; do
        expect 2 cm run i64.tif bad.tif -k 5 -q --tile "$t"
        said "--tile"
    done
    no_outputs bad.tif
}

case_k_from_1_to_65535() {
    mk rgb.tif --width 200 --height 150 --bands 3 --pattern photo --tile 64
    expect 0 cm run rgb.tif k1.tif -k 1 -q --labels k1.lab.tif --model-out k1.json
    check at-most k1.tif 1 noalpha >/dev/null
    check labels k1.tif k1.lab.tif 1 uint8
    "$PYTHON" -c "import json; m = json.load(open('k1.json')); assert m['k'] == 1, m['k']" \
        || fail "k=1 model"
    expect 2 cm run rgb.tif bad.tif -k 65536
    said "65535"
    expect 2 cm run rgb.tif bad.tif -k 0
    no_outputs bad.tif
    # k = 65535 on 64 x 64 pixels: lowered to 4096 with a warning; uint16 labels below it.
    mk grey.tif --width 64 --height 64 --bands 1 --pattern noise --tile 16
    expect 0 cm run grey.tif big.tif -k 65535 --max-iter 5 --labels big.lab.tif \
        --model-out big.json
    said "warning: .*65535.*4096"
    check labels big.tif big.lab.tif 4096 uint16
    "$PYTHON" -c "
import json; m = json.load(open('big.json'))
assert m['k'] == 4096 and len(m['centroids']) == 4096 and sum(m['counts']) == 4096, m['k']
" || fail "k=65535 model"
    # k above the pixels that take part (the rest has alpha 0): lowered to their number, and
    # the labels then fit in a byte again.
    "$PYTHON" - <<'PY' || fail "making the input"
import numpy as np, tifffile
a = np.zeros((40, 40, 4), np.uint8)
a[..., :3] = np.random.default_rng(1).integers(0, 256, (40, 40, 3))
a[:3, :, 3] = 255  # 120 opaque pixels of 1600
tifffile.imwrite("few.tif", a, photometric="rgb", extrasamples=["unassalpha"], tile=(16, 16))
PY
    expect 0 cm run few.tif few.out.tif -k 300 --labels few.lab.tif --model-out few.json
    said "warning: .*300.*120"
    "$PYTHON" - <<'PY' || fail "k above the valid pixels"
import json, numpy as np, tifffile
m = json.load(open("few.json"))
assert m["k"] == 120 and len(m["centroids"]) == 120 and sum(m["counts"]) == 120, m["k"]
lab, out = tifffile.imread("few.lab.tif"), tifffile.imread("few.out.tif")
assert lab.dtype == np.uint8 and (lab[3:] == 255).all() and lab[:3].max() < 120, "labels"
colours = {}  # every label one colour, the colour of its centre
for l, c in zip(lab[:3].reshape(-1), out[:3, :, :3].reshape(-1, 3)):
    assert colours.setdefault(int(l), tuple(c)) == tuple(c), "a label with two colours"
    assert tuple(c) == tuple(int(round(v)) for v in m["centroids"][l]), "not its centre"
PY
}

case_band_counts_above_64_exit_3() {
    "$PYTHON" - <<'PY' || fail "making inputs"
import numpy as np, tifffile
for n in (65, 300):
    a = (np.arange(16 * 16 * n) % 251).astype(np.uint8).reshape(16, 16, n)
    tifffile.imwrite(f"b{n}.tif", a, photometric="minisblack", planarconfig="contig",
                     tile=(16, 16))
    if n == 65:
        tifffile.imwrite("p65.tif", np.moveaxis(a, -1, 0), photometric="minisblack",
                         planarconfig="separate")
PY
    for f in b65 p65 b300; do
        expect 3 cm run $f.tif out.tif -k 2
        said "$f.tif"
        said "samples per pixel"
        said "1 to 64"
        expect 3 cm info $f.tif
    done
    no_outputs out.tif
    mk b64.tif --width 40 --height 30 --bands 64 --pattern photo --tile 16
    expect 0 cm run b64.tif b64.out.tif -k 3 -q
    check same-shape b64.tif b64.out.tif
}

"case_$1"
