#!/usr/bin/python3
"""End-to-end tests of --palette-out (run and fit), of the palette lines of -v and of `info
MODEL.json`. Inputs are made here with Pillow (and cm-mkimage for a multispectral TIFF); the
palettes are read back by parsers of their own: GIMP's palette format line by line, the hex
lines, and the swatch PNG with Pillow, and checked against the output image's own colours and
pixel counts. Each case takes seconds.
Usage: palette.py CHUNKMEANS MKIMAGE CASE (run by meson test)."""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import tifffile

try:
    from PIL import Image
except ImportError:
    sys.exit("palette.py: Pillow is missing: install python3-pil (scripts/install-deps.sh)")


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


CM = MK = None


def cm(*args, code=0, fsize=None):
    """Runs chunkmeans ARGS, requires exit CODE and no sanitizer report; returns stdout, stderr.
    fsize: a limit of the size of every file written (bytes), as `ulimit -f` sets it, with
    SIGXFSZ ignored so that a write past it fails with EFBIG."""
    args = [str(a) for a in args]
    print("$ chunkmeans", " ".join(args), flush=True)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    r = subprocess.run([CM, *args], capture_output=True, text=True, timeout=300,
                       preexec_fn=limit if fsize else None)
    expect(not re.search(r"Sanitizer|runtime error:", r.stderr), f"sanitizer report:\n{r.stderr}")
    expect(r.returncode == code,
           f"chunkmeans {' '.join(args)} exited {r.returncode}, expected {code}; "
           f"stderr: {r.stderr.strip()}")
    return r.stdout, r.stderr


def files():
    return sorted(os.listdir("."))


# ---------------------------------------------------------------------------------------------
# Inputs

def photo(path, w=160, h=120, alpha=True):
    """A smooth RGB(A) picture with a few distinct regions; with alpha, a transparent band of
    rows at the top and a transparent square, which take no part."""
    y, x = np.mgrid[0:h, 0:w]
    r = (40 + 180 * x / w).astype(np.uint8)
    g = (200 - 150 * y / h).astype(np.uint8)
    b = ((x * 7 + y * 3) % 64 + 100 * (x > w // 2)).astype(np.uint8)
    a = np.stack([r, g, b], axis=-1)
    if alpha:
        al = np.full((h, w), 255, np.uint8)
        al[:9] = 0
        al[40:60, 20:50] = 0
        al[70:80, 100:110] = 128  # half transparent: takes part
        a = np.concatenate([a, al[..., None]], axis=-1)
    Image.fromarray(a, "RGBA" if alpha else "RGB").save(path)
    return a


def valid_colours(out_png, src):
    """The output's colours of the pixels that take part (alpha > 0 in src), as (n, 3)."""
    o = np.asarray(Image.open(out_png).convert("RGBA" if src.shape[-1] == 4 else "RGB"))
    keep = src[..., 3] > 0 if src.shape[-1] == 4 else np.ones(src.shape[:2], bool)
    return o[..., :3][keep]


def counts_of(colours):
    """{'#rrggbb': pixels} of an (n, 3) array of colours."""
    u, n = np.unique(colours.reshape(-1, 3), axis=0, return_counts=True)
    return {"#%02x%02x%02x" % tuple(int(v) for v in c): int(m) for c, m in zip(u, n)}


# ---------------------------------------------------------------------------------------------
# Readers of the palette files

HEX_LINE = re.compile(r"^#([0-9a-f]{6}) (\d+) (\d+\.\d\d)%$")


def read_hex(path):
    """[(hex, count, percent)] of a .txt/.hex palette; every line must be one of them."""
    rows = []
    with open(path) as f:
        for line in f.read().splitlines():
            m = HEX_LINE.match(line)
            expect(m, f"{path}: not a '#rrggbb count percent' line: {line!r}")
            rows.append(("#" + m.group(1), int(m.group(2)), float(m.group(3))))
    return rows


def read_gpl(path):
    """[(r, g, b, name)] of a GIMP palette, read as GIMP reads one: 'GIMP Palette' first, then
    optional 'Name:' and 'Columns:' lines, '#' comments and blank lines, then one colour a line:
    three whole numbers from 0 to 255, then the name after white space."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    expect(lines and lines[0] == "GIMP Palette", f"{path}: first line {lines[:1]}")
    colours, header = [], True
    for line in lines[1:]:
        if header and re.match(r"^(Name|Columns):", line):
            if line.startswith("Columns:"):
                cols = int(line.split(":", 1)[1])
                expect(0 <= cols <= 256, f"{path}: Columns {cols}")
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header = False
        m = re.match(r"^\s*(\d+)\s+(\d+)\s+(\d+)(?:\s+(.*))?$", line)
        expect(m, f"{path}: not a colour line: {line!r}")
        rgb = tuple(int(v) for v in m.group(1, 2, 3))
        expect(all(0 <= v <= 255 for v in rgb), f"{path}: {rgb} outside 0..255")
        colours.append((*rgb, m.group(4) or ""))
    return colours


def swatch_runs(path):
    """[('#rrggbb', columns)] of a swatch strip, left to right; every row must be the same."""
    im = Image.open(path)
    expect(im.mode == "RGB", f"{path}: mode {im.mode}, not 8-bit RGB")
    a = np.asarray(im)
    expect((a == a[:1]).all(), f"{path}: its rows differ")
    runs = []
    for c in a[0]:
        h = "#%02x%02x%02x" % tuple(int(v) for v in c)
        if runs and runs[-1][0] == h:
            runs[-1][1] += 1
        else:
            runs.append([h, 1])
    return [tuple(r) for r in runs], im.size


def check_hex(rows, k, total, what):
    """k lines, largest count first, counts summing to total, percents to 100 within 0.01 a
    line, and each percent the count's share with two decimals."""
    expect(len(rows) == k, f"{what}: {len(rows)} lines, not {k}")
    counts = [c for _, c, _ in rows]
    expect(counts == sorted(counts, reverse=True), f"{what}: not largest first: {counts}")
    expect(sum(counts) == total, f"{what}: counts sum to {sum(counts)}, not {total}")
    s = sum(p for _, _, p in rows)
    expect(abs(s - 100) <= 0.01 * k, f"{what}: percents sum to {s}")
    for h, c, p in rows:
        expect(abs(p - 100 * c / total) <= 0.005 + 1e-9, f"{what}: {h}: {p}% for {c}/{total}")


# ---------------------------------------------------------------------------------------------
# Cases

def case_gpl_is_a_gimp_palette():
    """run -k 5 --palette-out P.gpl: GIMP's format, the 5 colours of the output image."""
    src = photo("in.png")
    cm("run", "in.png", "out.png", "-k", 5, "--palette-out", "P.gpl", "-q")
    gpl = read_gpl("P.gpl")
    expect(len(gpl) == 5, f"P.gpl: {len(gpl)} colours, not 5")
    got = {"#%02x%02x%02x" % c[:3] for c in gpl}
    want = set(counts_of(valid_colours("out.png", src)))
    expect(got == want, f"P.gpl colours {sorted(got)}, the output's {sorted(want)}")
    for r, g, b, name in gpl:
        expect(name.startswith("#%02x%02x%02x " % (r, g, b)), f"P.gpl: name {name!r}")
    head = open("P.gpl").read().splitlines()
    expect(head[1] == "Name: in.png k=5", f"P.gpl: {head[1]!r}")


def case_hex_lines_count_the_pixels_that_take_part():
    """.txt and .HEX: one '#rrggbb count percent' line per colour, largest first; the counts are
    the output's pixels of each colour among those that take part (alpha > 0), and sum to them;
    -v prints the same lines."""
    src = photo("in.png")
    total = int((src[..., 3] > 0).sum())
    _, err = cm("run", "in.png", "out.png", "-k", 6, "--palette-out", "P.txt", "-v")
    rows = read_hex("P.txt")
    check_hex(rows, 6, total, "P.txt")
    have = counts_of(valid_colours("out.png", src))
    expect({h: c for h, c, _ in rows} == have, f"P.txt {rows}, the output has {have}")
    said = [l.strip() for l in err.splitlines() if HEX_LINE.match(l.strip())]
    expect(said == open("P.txt").read().splitlines(), f"-v said {said}")
    cm("run", "in.png", "out2.png", "-k", 6, "--palette-out", "P.HEX", "-q")
    expect(open("P.HEX").read() == open("P.txt").read(), "P.HEX differs from P.txt")


def case_swatch_png_shows_the_shares():
    """.png: a 1000 x 100 strip of 8-bit RGB, exactly the k colours of the output, largest first,
    each as wide as its share within one column."""
    src = photo("in.png")
    cm("run", "in.png", "out.png", "-k", 7, "--palette-out", "P.png", "--model-out", "m.json",
       "-q")
    runs, size = swatch_runs("P.png")
    expect(size == (1000, 100), f"P.png is {size}")
    have = counts_of(valid_colours("out.png", src))
    total = sum(have.values())
    expect(len(runs) == 7 and {h for h, _ in runs} == set(have),
           f"P.png runs {runs}, the output's colours {have}")
    expect(sum(w for _, w in runs) == 1000, f"P.png: {runs}")
    shares = [have[h] for h, _ in runs]
    expect(shares == sorted(shares, reverse=True), f"P.png: not largest first: {runs} {have}")
    for h, w in runs:
        expect(abs(w - 1000 * have[h] / total) <= 1, f"P.png: {h} {w} columns for "
               f"{have[h]} of {total} pixels")
    m = json.load(open("m.json"))
    expect(abs(sum(m["shares"]) - 1) < 1e-9, f"m.json shares {m['shares']}")
    for c, s in zip(m["counts"], m["shares"]):
        expect(abs(s - c / total) < 1e-12, f"m.json: share {s} for {c} of {total}")


def case_k_list_names_one_palette_per_k():
    """-k 2,5 --palette-out P.gpl writes P.k2.gpl and P.k5.gpl, of 2 and 5 colours."""
    photo("in.png")
    cm("run", "in.png", "out.png", "-k", "2,5", "--palette-out", "P.gpl", "-q")
    for k in (2, 5):
        gpl = read_gpl(f"P.k{k}.gpl")
        expect(len(gpl) == k, f"P.k{k}.gpl: {len(gpl)} colours")
        expect(all(f"k={k}" in l for l in open(f"P.k{k}.gpl") if l.startswith("Name:")),
               f"P.k{k}.gpl: its name")
    expect(not os.path.exists("P.gpl"), "P.gpl was written too")


def case_bad_extension_or_bands_exit_2_and_write_nothing():
    """An extension that says no palette format, or an image of other than 1 or 3 colour bands,
    exits 2 naming the file, before any work: nothing is written."""
    photo("in.png")
    for bad in ("P.pal", "P", "P.gpl.bak", "P.json"):
        _, err = cm("run", "in.png", "out.png", "-k", 3, "--palette-out", bad, "--model-out",
                    "m.json", code=2)
        expect(bad in err and ".gpl" in err and ".hex" in err, f"{bad}: {err.strip()}")
        _, err = cm("fit", "in.png", "-o", "m.json", "-k", 3, "--palette-out", bad, code=2)
        expect(bad in err, f"fit {bad}: {err.strip()}")
        expect(files() == ["in.png"], f"{bad}: left {files()}")
    # Before the input is read: an input that is not there is not looked at (2, not 3).
    for cmd in (["run", "missing.png", "out.png"], ["fit", "missing.png", "-o", "m.json"]):
        _, err = cm(*cmd, "--palette-out", "P.pal", code=2)
        expect("P.pal" in err, f"{cmd[0]}: {err.strip()}")
    # The bands, before any pixel is read: every tile of this 5-band image is damaged, so that
    # a check made after the fit would exit 3 for the tile instead.
    subprocess.run([MK, "ms.tif", "--width", "64", "--height", "48", "--bands", "5", "--tile",
                    "16", "--compression", "deflate", "--quiet"], check=True)
    with tifffile.TiffFile("ms.tif") as t:
        spans = list(zip(t.pages[0].dataoffsets, t.pages[0].databytecounts))
    with open("ms.tif", "r+b") as f:
        for off, n in spans:
            f.seek(off)
            f.write(bytes((i * 37 + 11) & 0xFF for i in range(n)))
    cm("run", "ms.tif", "out.tif", "-k", 3, code=3)  # the damage is seen without a palette
    for cmd in (["run", "ms.tif", "out.tif", "--model-out", "m.json"], ["fit", "ms.tif", "-o",
                                                                        "m.json"]):
        _, err = cm(*cmd, "-k", 3, "--palette-out", "P.png", code=2)
        expect("P.png" in err and "5 colour bands" in err, f"{cmd[0]}: {err.strip()}")
        expect(files() == ["in.png", "ms.tif"], f"{cmd[0]}: left {files()}")


def case_failed_run_leaves_no_palette():
    """A run that fails leaves no palette: an output directory that does not exist (found before
    the fit), a file-size limit reached while the image is written (after the fit), and one
    reached by the summary, written after the palettes (which are then removed)."""
    photo("in.png")
    _, err = cm("run", "in.png", "no/such/dir/out.png", "-k", 4, "--palette-out", "P.txt",
                code=1)
    expect("no/such/dir/out.png" in err, err.strip())
    expect(files() == ["in.png"], f"left {files()}")

    # A TIFF: a PNG would be streamed into a spill store, which would reach the limit first.
    subprocess.run([MK, "noise.tif", "--width", "300", "--height", "300", "--pattern", "noise",
                    "--tile", "64", "--compression", "none", "--quiet"], check=True)
    _, err = cm("run", "noise.tif", "out.tif", "-k", 4, "--compression", "none", "--palette-out",
                "P.txt", "--max-iter", 5, code=1, fsize=100_000)
    expect("out.tif" in err and "File too large" in err, err.strip())
    expect(files() == ["in.png", "noise.tif"], f"left {files()}")

    rng = np.random.default_rng(1)

    # 2000 and 2001 colours of 4096 pixels: palettes of a few kB (swatches of identical rows),
    # a summary of about 45 kB of counts, over the limit.
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8), "RGB").save("small.png")
    _, err = cm("run", "small.png", "s.png", "-k", "2000,2001", "--palette-out", "P.png",
                "--summary", "S.json", "--n-init", 1, "--max-iter", 2, code=1, fsize=30_000)
    expect("S.json" in err and "File too large" in err, err.strip())
    expect(files() == ["in.png", "noise.tif", "small.png"], f"left {files()}")
    cm("run", "small.png", "s.png", "-k", "2000,2001", "--palette-out", "P.png", "--summary",
       "S.json", "--n-init", 1, "--max-iter", 2, "-q")
    expect(os.path.getsize("S.json") > 30_000 and os.path.getsize("P.k2000.png") < 30_000,
           "the summary is not the larger file: the case tests nothing")


def case_grey_image_gives_grey_colours():
    """A grey image's palette: R = G = B in every format."""
    y, x = np.mgrid[0:90, 0:120]
    Image.fromarray(((x * 2 + y) % 256).astype(np.uint8), "L").save("grey.png")
    cm("run", "grey.png", "out.png", "-k", 4, "--palette-out", "P.gpl", "-q")
    gpl = read_gpl("P.gpl")
    expect(len(gpl) == 4 and all(r == g == b for r, g, b, _ in gpl), f"P.gpl: {gpl}")
    cm("run", "grey.png", "out.png", "-k", 4, "--palette-out", "P.hex", "-q")
    for h, _, _ in read_hex("P.hex"):
        expect(h[1:3] == h[3:5] == h[5:7], f"P.hex: {h} is not grey")
    want = set(np.unique(np.asarray(Image.open("out.png").convert("L"))).tolist())
    expect({int(h[1:3], 16) for h, _, _ in read_hex("P.hex")} == want, f"P.hex, out {want}")


def case_fit_verbose_and_info_show_the_same_lines():
    """fit --palette-out, fit -v, `info MODEL.json` and its --json agree line for line; the
    counts are the model's; a model without "shares" (older) is still read; a bad model exits
    3 naming it."""
    photo("in.png")
    _, err = cm("fit", "in.png", "-o", "m.json", "-k", 5, "--palette-out", "F.txt", "-v")
    lines = open("F.txt").read().splitlines()
    m = json.load(open("m.json"))
    check_hex(read_hex("F.txt"), 5, sum(m["counts"]), "F.txt")
    said = [l.strip() for l in err.splitlines() if HEX_LINE.match(l.strip())]
    expect(said == lines, f"fit -v said {said}, F.txt {lines}")

    out, _ = cm("info", "m.json")
    expect(re.search(r"^k: +5$", out, re.M) and re.search(r"^colorspace: +rgb$", out, re.M),
           f"info m.json: {out}")
    expect([l for l in out.splitlines() if l.startswith("#")] == lines, f"info m.json: {out}")
    out, _ = cm("info", "m.json", "--json")
    j = json.loads(out)
    expect(j["k"] == 5 and j["colorspace"] == "rgb" and j["kind"] == "model", f"--json: {j}")
    expect([f"{e['hex']} {e['count']} {e['percent']}" for e in j["palette"]] == lines,
           f"--json palette {j['palette']}")
    expect([m["counts"][e["label"]] for e in j["palette"]] == [e["count"] for e in j["palette"]],
           "--json labels and counts disagree with the model")

    del m["shares"]  # as a model of an earlier version
    with open("old.model", "w") as f:  # JSON by its content, whatever its name
        json.dump(m, f)
    out, _ = cm("info", "old.model")
    expect([l for l in out.splitlines() if l.startswith("#")] == lines, f"old.model: {out}")
    cm("apply", "old.model", "in.png", "applied.png", "-q")

    with open("bad.json", "w") as f:
        f.write('{"format": "chunkmeans-model", "k": 2}')
    _, err = cm("info", "bad.json", code=3)
    expect("bad.json" in err, err.strip())
    _, err = cm("info", "missing.json", code=3)
    expect("missing.json" in err, err.strip())


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


def main():
    global CM, MK
    if len(sys.argv) != 4 or sys.argv[3] not in CASES:
        sys.exit("usage: palette.py CHUNKMEANS MKIMAGE CASE, CASE one of: " + " ".join(CASES))
    CM, MK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix=f"cm-palette-{sys.argv[3]}.")
    os.chdir(work)
    try:
        CASES[sys.argv[3]]()
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        os.chdir("/")
        if os.environ.get("PALETTE_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
