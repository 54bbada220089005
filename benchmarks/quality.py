"""The work of benchmarks/quality.sh (read its header first): runs chunkmeans and the other
quantisers on the corpus, scores every output and prints the tables.

    quality.py bench WORK_DIR CHUNKMEANS [BASE]      the benchmark (settings in the environment)
    quality.py sklearn IN.tif K OUT.npy              one scikit-learn run (a timed subprocess)
    quality.py pillow IN.png K OUT.png               one Pillow run (a timed subprocess)

MSE: mean over the valid pixels and the colour bands of (output - input)^2, in sample units,
float64. Valid: alpha (if any) > 0, and not every colour band equal to the nodata value
(GDAL_NODATA; NaN matches NaN). chunkmeans and scikit-learn fit on the valid pixels only;
Pillow, pngquant and ImageMagick cannot take a mask: they get the colour bands of the whole
image (nodata areas and alpha-0 pixels included, alpha dropped) and are scored on the valid
pixels like everyone else.
"""

import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time

import numpy as np
import tifffile

import quality_corpus  # next to this file
from quality_corpus import read_image

SAMPLE = 300_000  # scikit-learn fits on this many valid pixels beyond FULL_FIT
FULL_FIT = 2_000_000

# Recipes: part of the cache key, so that changing how a peer is run invalidates its results.
RECIPE = {
    "sklearn": f"KMeans(n_init=3, random_state=0) float64, fit on all valid pixels up to "
               f"{FULL_FIT}, else {SAMPLE} sampled with default_rng(0); centres rounded",
    "pillow": "quantize(colors=K, method=MEDIANCUT, kmeans=1); 8-bit",
    "pngquant": "pngquant --nofs --speed 1 K; 8-bit",
    "imagemagick": "convert +dither -colors K -type TrueColor -depth BITS -compress zip",
}
PEERS = ("sklearn", "pillow", "pngquant", "imagemagick")


# ---------------------------------------------------------------------------------------------
# Images.

def rows_of(a, valid, y, step):
    """Rows y..y+step of a as pixels x bands: the valid ones, or all of them without a copy."""
    block, m = a[y:y + step], valid[y:y + step]
    return block.reshape(-1, a.shape[2]) if m.all() else block[m]


def distinct(colour, valid, step=256):
    """Number of distinct colours among the valid pixels."""
    c = colour.shape[2]
    if colour.dtype == np.uint8 and c <= 3:
        seen = np.zeros(1 << (8 * c), bool)
        for y in range(0, colour.shape[0], step):  # by bands of rows: bounded memory
            v = rows_of(colour, valid, y, step)
            key = v[:, 0].astype(np.uint32)
            for b in range(1, c):
                key <<= 8
                key |= v[:, b]
            seen[key] = True
        return int(seen.sum())
    v = np.ascontiguousarray(colour[valid])
    return int(len(np.unique(v.view(np.dtype((np.void, v.dtype.itemsize * c))))))


def mse(ref, valid, out, step=256):
    """MSE over valid pixels and colour bands; a 1-band reference against a 3-band output is
    compared band by band (grey replicated)."""
    total, n = 0.0, 0
    for y in range(0, ref.shape[0], step):
        o, r = rows_of(out, valid, y, step), rows_of(ref, valid, y, step)
        d = (o.astype(np.float64) - r).ravel()  # r broadcasts over o's bands when grey
        total += float(np.dot(d, d))
        n += d.size
    return total / n if n else float("nan")


def colour_of(out, ref):
    """The colour bands of an output image, shaped like the reference's (grey broadcast)."""
    if out.ndim == 2:
        out = out[..., None]
    c = ref.shape[2]
    if out.shape[2] >= c and not (c == 1 and out.shape[2] >= 3):
        return out[..., :c]
    if c == 1 and out.shape[2] >= 3:
        return out[..., :3]  # scored against the grey band on each of R, G, B
    raise ValueError(f"output has {out.shape[2]} bands, input {c} colour bands")


def read_output(path):
    if path.endswith(".npy"):
        return np.load(path)
    if path.endswith(".png"):
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB" if im.mode not in ("L", "I;16") else im.mode))
    return tifffile.imread(path)


# ---------------------------------------------------------------------------------------------
# The peers that run in a subprocess of their own (timed by the caller).

def run_sklearn(inp, k, out):
    from sklearn.cluster import KMeans

    colour, valid, _ = read_image(inp)
    x = colour[valid]
    if len(x) > FULL_FIT:
        x = x[np.random.default_rng(0).choice(len(x), SAMPLE, replace=False)]
    km = KMeans(n_clusters=k, n_init=3, random_state=0).fit(x.astype(np.float64))
    if np.issubdtype(colour.dtype, np.integer):
        lo, hi = np.iinfo(colour.dtype).min, np.iinfo(colour.dtype).max
        centres = np.clip(np.rint(km.cluster_centers_), lo, hi).astype(colour.dtype)
    else:
        centres = km.cluster_centers_.astype(colour.dtype)
    res = colour.copy()
    step = max(1, 1_000_000 // colour.shape[1])
    for y in range(0, colour.shape[0], step):  # predict by bands of rows: bounded memory
        m = valid[y:y + step]
        block = res[y:y + step]
        block[m] = centres[km.predict(block[m].astype(np.float64))]
    np.save(out, res)


def run_pillow(inp, k, out):
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(inp) as im:
        im.load()
        im.quantize(colors=k, method=Image.Quantize.MEDIANCUT, kmeans=1).save(out, compress_level=1)


# ---------------------------------------------------------------------------------------------
# The benchmark.

def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(path, memo={}):
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        memo[key] = h.hexdigest()
    return memo[key]


def timed(cmd, log, timeout, env=None):
    """Runs cmd under /usr/bin/time and timeout: (ok, seconds, peak RSS MiB, reason)."""
    tf = log + ".time"
    full = ["/usr/bin/time", "-f", "%e %M", "-o", tf, "timeout", "-k", "10", str(timeout)] + cmd
    with open(log, "w") as lf:
        lf.write(shlex.join(cmd) + "\n")
        lf.flush()
        rc = subprocess.run(full, stdout=lf, stderr=subprocess.STDOUT, env=env).returncode
    try:
        with open(tf) as f:
            last = f.read().split("\n")
        secs, kib = (float(v) for v in [l for l in last if l.strip()][-1].split())
    except (OSError, ValueError, IndexError):
        secs, kib = float("nan"), float("nan")
    if rc == 0:
        return True, secs, kib / 1024, ""
    if rc in (124, 137) and secs >= timeout:
        return False, secs, kib / 1024, f"timed out after {timeout} s"
    with open(log, errors="replace") as f:
        lines = [l.strip() for l in f.read().splitlines()[1:] if l.strip() and
                 not l.startswith("Command ")]
    why = lines[-1][:100] if lines else "no message"
    return False, secs, kib / 1024, f"exit {rc}: {why}" if rc < 128 else \
        f"killed by signal {rc - 128} (out of memory?): {why}"


def tool_version(tool, py):
    if tool == "sklearn":
        import sklearn

        return f"scikit-learn {sklearn.__version__}, numpy {np.__version__}"
    if tool == "pillow":
        import PIL

        return f"Pillow {PIL.__version__}"
    cmd = ["pngquant", "--version"] if tool == "pngquant" else ["/usr/bin/convert", "-version"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        return (r.stdout or r.stderr).splitlines()[0].strip()
    except (OSError, IndexError):
        return "not installed"


class Bench:
    def __init__(self, work, cm, base):
        self.work, self.cm, self.base = work, cm, base
        self.corpus = os.path.join(work, "corpus")
        self.tmp = os.path.join(work, "tmp")
        self.cache = os.path.join(work, "cache")
        os.makedirs(self.tmp, exist_ok=True)
        env = os.environ
        self.ks = [int(k) for k in env.get("KS", "2 5 8 10 16").split()]
        self.skip = set(env.get("SKIP", "").split())
        self.only = env.get("ONLY", "").split()
        self.cm_args = shlex.split(env.get("CM_ARGS", ""))
        self.base_args = shlex.split(env.get("BASE_ARGS", env.get("CM_ARGS", "")))
        self.base_name = env.get("BASE_NAME", "base")
        self.timeout = int(env.get("TIMEOUT", "1800"))
        self.large_peers = env.get("LARGE_PEERS", "sklearn pngquant imagemagick").split()
        if "all" in self.large_peers:
            self.large_peers = list(PEERS)
        self.lloyd_max_mp = float(env.get("LLOYD_MAX_MP", "20"))
        self.py = sys.executable
        self.policy = env.get("MAGICK_POLICY_DIR", "")
        cols = ["default"] + ([self.base_name] if base else []) + \
            ["minibatch", "lloyd", "histogram", "pillow", "pngquant", "imagemagick"]
        self.cols = [c for c in cols if c not in self.skip or c == "default"]
        self.versions = {t: tool_version(t, self.py) for t in PEERS}
        self.results = []  # one dict per (image, k, column)

    # -- one tool, one image, one k -------------------------------------------------------
    def cm_cmd(self, col, inp, k, out):
        if col == "default":
            return [self.cm, "run", inp, out, "-k", str(k), "-q"] + self.cm_args
        if col == self.base_name and self.base:
            return [self.base, "run", inp, out, "-k", str(k), "-q"] + self.base_args
        return [self.cm, "run", inp, out, "-k", str(k), "-q", "--algorithm", col]

    def peer_cmd(self, col, name, k, out, info):
        tif, png = (os.path.join(self.corpus, name + e) for e in (".tif", ".png"))
        if col == "sklearn":
            return [self.py, os.path.abspath(__file__), "sklearn", tif, str(k), out]
        if col == "pillow":
            return [self.py, os.path.abspath(__file__), "pillow", png, str(k), out]
        if col == "pngquant":
            return ["pngquant", "--nofs", "--speed", "1", str(k), "--force", "--output", out, png]
        bits = "16" if info["dtype"] == "uint16" else "8"
        return ["/usr/bin/convert", "-limit", "memory", "8GiB", "-limit", "map", "16GiB", png,
                "+dither", "-colors", str(k), "-type", "TrueColor", "-depth", bits,
                "-compress", "zip", out]

    def why_not(self, col, info, k):
        """Why this column does not apply to this image and k, or None."""
        if col in self.skip:
            return "skipped (SKIP)"
        eight = info["dtype"] == "uint8"
        if col == "lloyd" and info["width"] * info["height"] > self.lloyd_max_mp * 1e6:
            return f"lloyd: not run on images over {self.lloyd_max_mp:g} MP (LLOYD_MAX_MP): one pass " \
                   "over the image per iteration"
        if col == "histogram" and not (eight and info["colour_bands"] <= 3):
            return "chunkmeans --algorithm histogram: 8-bit, up to 3 colour bands only"
        if col in ("pillow", "pngquant") and not eight:
            return f"{col}: 8-bit images only"
        if col == "pngquant" and not 2 <= k <= 256:
            return "pngquant: k from 2 to 256 only"
        if col in PEERS and self.versions[col] == "not installed":
            return f"{col}: not installed"
        return None

    def one(self, name, k, col, ref, valid, info, large):
        rec = {"image": name, "k": k, "tool": col}
        why = self.why_not(col, info, k)
        if why is None and large and col in PEERS and col not in self.large_peers:
            why = f"{col}: not run on the >= 50 MP images unless LARGE_PEERS names it"
        if why:
            rec.update(status="na", note=why)
            return rec
        peer = col in PEERS
        key = None
        if peer:
            ver = f"{self.versions[col]}; {RECIPE[col]}"
            # Keyed by the reference TIFF and the file the tool reads (the PNG for Pillow,
            # pngquant and ImageMagick), k, the tool's version and the recipe.
            files = [name + ".tif"] + ([] if col == "sklearn" else [name + ".png"])
            ident = "+".join(sha256(os.path.join(self.corpus, f)) for f in files)
            key = os.path.join(self.cache, col, "%s-%s-k%d-%s.json" % (
                name, hashlib.sha1(ident.encode()).hexdigest()[:16], k,
                hashlib.sha1(ver.encode()).hexdigest()[:10]))
            if os.path.exists(key):
                with open(key) as f:
                    rec.update(json.load(f), cached=True)
                return rec
        ext = {"sklearn": ".npy", "pillow": ".png", "pngquant": ".png"}.get(col, ".tif")
        out = os.path.join(self.tmp, f"{name}.k{k}.{col}{ext}")
        log = os.path.join(self.tmp, f"{name}.k{k}.{col}.log")
        if os.path.exists(out):
            os.remove(out)
        inp = os.path.join(self.corpus, name + ".tif")
        cmd = self.peer_cmd(col, name, k, out, info) if peer else self.cm_cmd(col, inp, k, out)
        env = None
        if col == "imagemagick" and self.policy:  # Debian's policy caps images at 128 MP
            env = dict(os.environ, MAGICK_CONFIGURE_PATH=self.policy)
        ok, secs, mib, why = timed(cmd, log, self.timeout, env)
        rec.update(seconds=round(secs, 2), rss_mib=round(mib, 1))
        if ok and not os.path.exists(out):
            ok, why = False, "exit 0 but no output"
        if ok:
            try:
                o = colour_of(read_output(out), ref)
                rec.update(status="ok", mse=mse(ref, valid, o), colours=distinct(o, valid))
            except Exception as e:  # a bad output is a failed cell, not a stopped benchmark
                ok, why = False, f"cannot score the output: {e}"[:120]
        if not ok:
            rec.update(status="failed", note=why)
        for p in (out, log, log + ".time"):
            if os.path.exists(p) and (ok or p == out):
                os.remove(p)
        if peer and (ok or "timed out" in why):  # a timeout is cached too: it would recur
            os.makedirs(os.path.dirname(key), exist_ok=True)
            with open(key + ".tmp", "w") as f:
                json.dump({x: rec[x] for x in rec if x not in ("image", "k", "tool")} |
                          {"version": self.versions[col]}, f)
            os.replace(key + ".tmp", key)
        return rec

    # -- the whole run --------------------------------------------------------------------
    def run(self, names):
        self.images = []
        for name in names:
            tif = os.path.join(self.corpus, name + ".tif")
            ref, valid, info = read_image(tif)
            large = info["width"] * info["height"] >= 50e6
            info.update(name=name, distinct=distinct(ref, valid), large=large)
            with open(os.path.join(self.corpus, name + ".json")) as f:
                info["source"] = json.load(f)["source"]
            self.images.append(info)
            for k in self.ks:
                for col in ["sklearn"] + self.cols:
                    rec = self.one(name, k, col, ref, valid, info, large)
                    self.results.append(rec)
                    if rec["status"] == "ok":
                        say(f"{name} k={k} {col}: MSE {rec['mse']:.2f}, {rec['seconds']} s, "
                            f"{rec['rss_mib']} MiB{' (cached)' if rec.get('cached') else ''}")
                    elif rec["status"] == "failed":
                        say(f"{name} k={k} {col}: FAILED: {rec['note']}")
            del ref, valid

    def report(self):
        by = {(r["image"], r["k"], r["tool"]): r for r in self.results}
        for r in self.results:  # ratios to scikit-learn
            s = by.get((r["image"], r["k"], "sklearn"))
            if r["status"] == "ok" and s and s["status"] == "ok" and s["mse"] > 0:
                r["ratio"] = r["mse"] / s["mse"]
        notes, marks = {}, {}

        def foot(text):
            return notes.setdefault(text, len(notes) + 1)

        def cell(r, what):
            if r["status"] != "ok":
                return f"—{foot(r.get('note', 'not run'))}"
            if what == "time":
                return f"{r['seconds']:.1f}/{r['rss_mib']:.0f}"
            if "ratio" not in r:
                return "—"
            flag = ""
            if r["colours"] > r["k"]:
                flag = "*"
                marks.setdefault(f"{r['image']} {r['tool']}", []).append(
                    f"k={r['k']}: {r['colours']}")
            elif r["colours"] < min(r["k"], next(i for i in self.images
                                                  if i["name"] == r["image"])["distinct"]):
                flag = "~"
            return f"{r['ratio']:.3f}{flag}"

        short = {"imagemagick": "imagick", "histogram": "histogr", "minibatch": "minibat"}
        heads = [short.get(c, c)[:8] for c in self.cols]
        out = []
        out.append("MSE of each tool as a ratio to scikit-learn KMeans(n_init=3) (< 1: better); "
                   "sklearn: its own MSE, sample units")
        out.append(f"{'':>4}{'sklearn':>11} " + "".join(f"{h:>9}" for h in heads))
        for img in self.images:
            out.append(self.image_line(img))
            for k in self.ks:
                s = by[(img["name"], k, "sklearn")]
                sk = f"{s['mse']:.2f}" if s["status"] == "ok" else f"—{foot(s['note'])}"
                out.append(f"k={k:<2}{sk:>11} " + "".join(
                    f"{cell(by[(img['name'], k, c)], 'ratio'):>9}" for c in self.cols))
        out.append("")
        out.append("Time (s) / peak RSS (MiB) of each run; peers' values from the run that "
                   "filled the cache")
        cols = ["sklearn"] + self.cols
        out.append(f"{'':>5}" + "".join(f"{short.get(c, c)[:10]:>11}" for c in cols))
        for img in self.images:
            out.append(self.image_line(img))
            for k in self.ks:
                out.append(f"k={k:<2} " + "".join(
                    f"{cell(by[(img['name'], k, c)], 'time'):>11}" for c in cols))
        out.append("")
        out.append("Summary over all (image, k): geometric mean of the MSE ratio to scikit-learn,"
                   " worst case, cases above 1.00 and 1.01")
        out.append(f"{'tool':<12}{'cases':>6}{'geomean':>9}{'worst':>8}  {'(image, k)':<26}"
                   f"{'>1.00':>6}{'>1.01':>6}{'time s':>9}")
        excluded = []
        for c in self.cols:
            # A "*" case (more than k colours: pixels left unchanged) is no k-colour filter:
            # counted apart, not in the mean.
            rs = [r for r in self.results if r["tool"] == c and "ratio" in r]
            starred = sum(r["colours"] > r["k"] for r in rs)
            rs = [r for r in rs if r["colours"] <= r["k"]]
            if starred:
                excluded.append(f"{c}: {starred}")
            if not rs:
                out.append(f"{c:<12}{0:>6}{'—':>9}")
                continue
            g = math.exp(sum(math.log(r["ratio"]) for r in rs) / len(rs))
            w = max(rs, key=lambda r: r["ratio"])
            t = sum(r["seconds"] for r in rs)
            out.append(f"{c:<12}{len(rs):>6}{g:>9.3f}{w['ratio']:>8.3f}  "
                       f"{w['image'] + ', k=' + str(w['k']):<26}"
                       f"{sum(r['ratio'] > 1.0 for r in rs):>6}"
                       f"{sum(r['ratio'] > 1.01 for r in rs):>6}{t:>9.1f}")
        if excluded:
            out.append(f"{'':12}* cases left out of the summary: {', '.join(excluded)}")
        out.append("")
        out.append("Notes:")
        out.append("  * more than k colours among the valid pixels (pixels written unchanged?): "
                   + ("none" if not marks else ""))
        for what, ks in marks.items():
            out.append(f"      {what}: {', '.join(ks)}")
        out.append("  ~ fewer than k colours in the output (the tool used fewer)")
        for text, n in notes.items():
            out.append(f"  —{n} {text}")
        return "\n".join(out)

    @staticmethod
    def image_line(img):
        mp = img["width"] * img["height"] / 1e6
        kind = f"{img['colour_bands']} band{'s' if img['colour_bands'] > 1 else ''}" + \
            (" + alpha" if img["alpha"] else "") + f" {img['dtype']}" + \
            (f", nodata {img['nodata']:g}" if img["nodata"] is not None else "")
        valid = "" if img["valid"] == img["width"] * img["height"] else \
            f", {img['valid'] / (img['width'] * img['height']):.0%} valid"
        return f"{img['name']}: {img['width']} x {img['height']} ({mp:.2f} MP), {kind}{valid}, " \
               f"{img['distinct']} colours"

    def save(self, text):
        head = {"chunkmeans": self.cm, "base": self.base, "base_name": self.base_name,
                "ks": self.ks, "cm_args": self.cm_args, "versions": self.versions,
                "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump({"run": head, "images": self.images, "results": self.results}, f, indent=1)
        fields = ["image", "k", "tool", "status", "mse", "ratio", "colours", "seconds",
                  "rss_mib", "cached", "note"]
        with open(os.path.join(self.work, "results.tsv"), "w") as f:
            f.write("\t".join(fields) + "\n")
            for r in self.results:
                f.write("\t".join(str(r.get(x, "")) for x in fields) + "\n")
        with open(os.path.join(self.work, "results.txt"), "w") as f:
            f.write(text + "\n")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "sklearn":
        return run_sklearn(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    if cmd == "pillow":
        return run_pillow(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    if cmd != "bench" or len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    work, cm = sys.argv[2], sys.argv[3]
    b = Bench(work, cm, sys.argv[4] if len(sys.argv) == 5 else None)
    names = [n for n in quality_corpus.ALL if os.path.exists(os.path.join(b.corpus, n + ".json"))]
    if b.only:
        names = [n for n in names if n in b.only]
    if "large" in b.skip:
        names = [n for n in names if n not in quality_corpus.LARGE]
    if not names:
        sys.exit("quality: no image to run (ONLY, SKIP)")
    b.run(names)
    text = b.report()
    print(text)
    b.save(text)
    print(f"\nresults: {os.path.join(work, 'results.json')}, results.tsv, results.txt")


if __name__ == "__main__":
    main()
