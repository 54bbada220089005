#!/usr/bin/python3
"""End-to-end tests of chunkmeans on PNG and JPEG files. Every input is made here: with Pillow,
or byte by byte (zlib and struct) for what Pillow cannot write (16-bit colour and grey+alpha,
1/2/4-bit grey, Adam7 interlacing). Outputs are read back with Pillow, with tifffile, and with
the small PNG reader below for 16-bit samples (Pillow narrows 16-bit colour and alpha to 8 bits);
pngcheck checks every PNG written when it is installed. Each case takes seconds.
Usage: formats.py CHUNKMEANS CASE (run by meson test; exit 77 skips the case)."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import tifffile

try:
    from PIL import Image, ImageCms
except ImportError:
    sys.exit("formats.py: Pillow is missing: install python3-pil (scripts/install-deps.sh)")


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


# ---------------------------------------------------------------------------------------------
# Running the command

CM = None


def cm(*args, code=0):
    """Runs chunkmeans ARGS, requires exit CODE and no sanitizer report; returns stdout, stderr."""
    args = [str(a) for a in args]
    print("$ chunkmeans", " ".join(args), flush=True)
    r = subprocess.run([CM, *args], capture_output=True, text=True, timeout=300)
    expect(not re.search(r"Sanitizer|runtime error:", r.stderr), f"sanitizer report:\n{r.stderr}")
    expect(r.returncode == code,
           f"chunkmeans {' '.join(args)} exited {r.returncode}, expected {code}; "
           f"stderr: {r.stderr.strip()}")
    return r.stdout, r.stderr


def info(path):
    """chunkmeans info PATH --colors --json, as a dict."""
    out, _ = cm("info", path, "--colors", "--json")
    return json.loads(out)


def pngcheck(path):
    """pngcheck accepts PATH (skipped, with a note, where pngcheck is not installed)."""
    tool = shutil.which("pngcheck")
    if not tool:
        print(f"note: pngcheck is not installed, {path} not checked with it")
        return
    r = subprocess.run([tool, "-q", path], capture_output=True, text=True)
    expect(r.returncode == 0, f"pngcheck rejects {path}: {(r.stdout + r.stderr).strip()}")


def nothing_in(directory):
    left = os.listdir(directory)
    expect(not left, f"left behind in {directory}/: {left}")


# ---------------------------------------------------------------------------------------------
# PNG written and read byte by byte

PNG_SIG = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type: samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # (x0, y0, dx, dy) of the seven passes


def png_chunk(kind, body):
    kind = kind.encode("latin-1")
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunks(data):
    """[(type, body)] of a PNG file's bytes; every CRC must be right and IEND last."""
    if data[:8] != PNG_SIG:
        raise ValueError("no PNG signature")
    pos, chunks = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n or len(data) < pos + 12 + n:
            raise ValueError(f"chunk {kind!r} is cut short")
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"chunk {kind!r}: wrong CRC")
        chunks.append((kind.decode("latin-1"), body))
        pos += 12 + n
        if kind == b"IEND":
            break
    if not chunks or chunks[-1][0] != "IEND" or pos != len(data):
        raise ValueError("IEND missing or not at the end")
    if chunks[0][0] != "IHDR":
        raise ValueError("IHDR is not the first chunk")
    return chunks


def pack_rows(s, depth):
    """Rows of bytes of samples s (h, w, c) at bit depth DEPTH (MSB first below 8 bits)."""
    h, w, c = s.shape
    if depth == 16:
        return np.frombuffer(s.astype(">u2").tobytes(), np.uint8).reshape(h, w * c * 2)
    if depth == 8:
        return s.reshape(h, w * c).astype(np.uint8)
    bits = (s.reshape(h, w * c, 1).astype(np.uint8) >> np.arange(depth - 1, -1, -1)) & 1
    bits = bits.reshape(h, w * c * depth)
    pad = (-bits.shape[1]) % 8
    return np.packbits(np.pad(bits, ((0, 0), (0, pad))), axis=1)


def unpack_rows(rows, w, c, depth):
    h = rows.shape[0]
    if depth == 16:
        b = rows[:, :w * c * 2].astype(np.uint16).reshape(h, w * c, 2)
        return ((b[..., 0] << 8) | b[..., 1]).reshape(h, w, c)
    if depth == 8:
        return rows[:, :w * c].reshape(h, w, c)
    bits = np.unpackbits(rows, axis=1)[:, :w * c * depth].reshape(h, w * c, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    return (bits * weights).sum(axis=-1).astype(np.uint8).reshape(h, w, c)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_row(kind, line, prior, bpp):
    x, b = line.astype(np.int16), prior.astype(np.int16)
    a = np.concatenate([np.zeros(bpp, np.int16), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int16), b[:-bpp]])
    pred = (np.zeros_like(x), a, b, (a + b) >> 1, paeth(a, b, c))[kind]
    return ((x - pred) & 255).astype(np.uint8)


def unfilter_rows(data, pos, h, rowbytes, bpp):
    """The h rows of rowbytes bytes that start at data[pos], filters undone."""
    out = np.empty((h, rowbytes), np.uint8)
    prior = np.zeros(rowbytes, np.int64)
    for y in range(h):
        kind = data[pos]
        line = np.frombuffer(data, np.uint8, rowbytes, pos + 1).astype(np.int64)
        pos += rowbytes + 1
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            cur = (line + prior) & 255
        elif kind in (3, 4):
            cur, up = line.tolist(), prior.tolist()
            for i in range(rowbytes):
                left = cur[i - bpp] if i >= bpp else 0
                if kind == 3:
                    cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 255
                else:
                    ul = up[i - bpp] if i >= bpp else 0
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else ul
                    cur[i] = (cur[i] + pred) & 255
            cur = np.array(cur, np.int64)
        else:
            raise ValueError(f"row {y}: filter type {kind}")
        out[y] = cur
        prior = cur
    return out, pos


def write_png(path, samples, depth, ctype, palette=None, trns=None, interlace=False, extra=()):
    """A PNG of samples (h, w[, c]) as given, its rows filtered with None, Sub, Up, Average and
    Paeth in turn; EXTRA chunks (type, body) go before IDAT."""
    s = samples.reshape(samples.shape[0], samples.shape[1], -1)
    h, w, c = s.shape
    assert c == CHANNELS[ctype] and s.max() < (1 << depth)
    bpp = max(1, c * depth // 8)
    raw = bytearray()
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        part = s[y0::dy, x0::dx]
        if part.size == 0:
            continue
        prior = None
        for y, line in enumerate(pack_rows(part, depth)):
            prior = np.zeros_like(line) if prior is None else prior
            raw.append(y % 5)
            raw += filter_row(y % 5, line, prior, bpp).tobytes()
            prior = line
    out = PNG_SIG + png_chunk("IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0,
                                                  int(interlace)))
    for kind, body in extra:
        out += png_chunk(kind, body)
    if palette is not None:
        out += png_chunk("PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += png_chunk("tRNS", bytes(trns))
    out += png_chunk("IDAT", zlib.compress(bytes(raw), 6)) + png_chunk("IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def read_png(path):
    """A PNG decoded here: dict of its header fields, chunks, palette, tRNS and samples as
    stored (h, w, c): indices for a palette, 1/2/4-bit values unscaled, 16-bit values whole."""
    with open(path, "rb") as f:
        data = f.read()
    chunks = png_chunks(data)
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if comp or filt or interlace > 1 or ctype not in CHANNELS:
        raise ValueError(f"{path}: IHDR {chunks[0][1].hex()}")
    body = {}
    for kind, b in chunks:
        body.setdefault(kind, b)
    data = zlib.decompress(b"".join(b for kind, b in chunks if kind == "IDAT"))
    c = CHANNELS[ctype]
    bpp = max(1, c * depth // 8)
    samples = np.zeros((h, w, c), np.uint16 if depth == 16 else np.uint8)
    pos = 0
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw <= 0 or ph <= 0:
            continue
        rows, pos = unfilter_rows(data, pos, ph, (pw * c * depth + 7) // 8, bpp)
        samples[y0::dy, x0::dx] = unpack_rows(rows, pw, c, depth)
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} bytes of image data too many")
    palette = None
    if "PLTE" in body:
        palette = np.frombuffer(body["PLTE"], np.uint8).reshape(-1, 3)
    return {"width": w, "height": h, "depth": depth, "ctype": ctype, "interlace": interlace,
            "chunks": [kind for kind, _ in chunks], "palette": palette, "trns": body.get("tRNS"),
            "samples": samples, "body": body}


def png_pixels(png):
    """What a decoder shows of read_png's result: palettes expanded (to RGBA with a tRNS),
    1/2/4-bit grey scaled to 0..255, the rest as stored."""
    s = png["samples"]
    if png["ctype"] == 3:
        pal = png["palette"]
        if png["trns"] is None:
            return pal[s[..., 0]]
        alpha = np.full(len(pal), 255, np.uint8)
        alpha[:len(png["trns"])] = np.frombuffer(png["trns"], np.uint8)[:len(pal)]
        return np.concatenate([pal, alpha[:, None]], axis=1)[s[..., 0]]
    if png["depth"] < 8:
        return (s * (255 // ((1 << png["depth"]) - 1))).astype(np.uint8)
    return s


# ---------------------------------------------------------------------------------------------
# Decoding as the contract says: Pillow, except 16-bit PNGs (read_png) and TIFFs (tifffile)

def decode(path):
    """Pixels of an image file as (height, width, samples)."""
    with open(path, "rb") as f:
        head = f.read(32)
    if head[:8] == PNG_SIG and head[24] == 16:
        a = png_pixels(read_png(path))
    elif head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        a = tifffile.imread(path)
    else:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode == "1":
                im = im.convert("L")
            a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def colours_of(a, valid_only=True, alpha=None):
    """Distinct tuples of the colour samples: of the pixels with alpha > 0 (the ones that take
    part in the fit), or of every pixel (what info --colors counts). The last of 2 or 4 samples
    is alpha unless told otherwise (CMYK)."""
    c = a.shape[2]
    if c in (2, 4) if alpha is None else alpha:
        px = a[a[..., -1] != 0] if valid_only else a.reshape(-1, c)
        px = px[:, :-1]
    else:
        px = a.reshape(-1, c)
    return np.unique(px, axis=0)


def same_pixels(want, got, what):
    """GOT holds exactly the pixels of WANT; a grey image may come back as grey RGB (from a
    colour-mapped PNG)."""
    if want.shape[2] == 1 and got.shape[2] == 3:
        expect((got == got[..., :1]).all(), f"{what}: grey input, colours that are not grey")
        got = got[..., :1]
    expect(want.shape == got.shape and want.dtype == got.dtype,
           f"{what}: {got.shape} {got.dtype}, expected {want.shape} {want.dtype}")
    diff = (want != got).any(axis=-1)
    if diff.any():
        y, x = np.argwhere(diff)[0]
        raise Failed(f"{what}: {int(diff.sum())} of {diff.size} pixels differ, the first at "
                     f"x={x} y={y}: {got[y, x].tolist()}, expected {want[y, x].tolist()}")


def expected_png_type(a, k):
    """(colour type, bit depth) of the PNG that run writes of pixels A (grey, grey+alpha, RGB
    or RGBA) with k colours."""
    alpha = a.shape[2] in (2, 4)
    if a.dtype == np.uint8 and not alpha and k <= 256:
        return 3, 8
    return {1: 0, 2: 4, 3: 2, 4: 6}[a.shape[2]], 16 if a.dtype == np.uint16 else 8


def png_type_is(path, want):
    png = read_png(path)
    got = (png["ctype"], png["depth"])
    expect(got == want, f"{path}: PNG colour type {got[0]} of {got[1]} bits, expected "
           f"type {want[0]} of {want[1]} bits")
    if png["ctype"] == 3:
        expect(png["trns"] is None, f"{path}: a colour-mapped output without alpha has a tRNS")
    return png


# ---------------------------------------------------------------------------------------------
# Test images

def label_map(h, w, n):
    """Labels 0..n-1: a vertical band of each, a checkerboard of 3x3 cells shifting the labels
    in the lower half, and diagonal stripes of every label in the top-left corner."""
    y, x = np.mgrid[0:h, 0:w]
    lab = x * n // w
    lab = np.where((y >= h // 2) & ((x // 3 + y // 3) % 2 == 1), (lab + 1) % n, lab)
    lab = np.where((x < w // 4) & (y < h // 3), (x + y) // 2 % n, lab)
    return lab


def distinct_colours(rng, n, c, maxval):
    """n distinct tuples of c samples in 0..maxval, the first two black and white."""
    seen, out = set(), []
    for t in [(0,) * c, (maxval,) * c]:
        if len(out) < n:
            seen.add(t)
            out.append(t)
    while len(out) < n:
        t = tuple(int(v) for v in rng.randint(0, maxval + 1, c))
        if t not in seen:
            seen.add(t)
            out.append(t)
    return np.array(out, np.uint16 if maxval > 255 else np.uint8)


def photo(h, w, c, seed=0):
    """A photo-like 8-bit image: smooth waves and gradients, with noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    bands = [128 + 90 * np.sin(x / 13.0 + y / 29.0), 128 + 90 * np.cos(y / 11.0 - x / 31.0),
             255.0 * (x + y) / (w + h), 128 + 100 * np.sin((x - y) / 17.0)]
    a = np.stack(bands[:c], axis=-1) + rng.normal(0, 6, (h, w, c))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


PNG_KINDS = {  # name: (colour type, bit depth, tRNS)
    "grey1": (0, 1, False), "grey2": (0, 2, False), "grey4": (0, 4, False),
    "grey8": (0, 8, False), "grey16": (0, 16, False), "ga8": (4, 8, False),
    "ga16": (4, 16, False), "rgb8": (2, 8, False), "rgb16": (2, 16, False),
    "rgba8": (6, 8, False), "rgba16": (6, 16, False),
    "pal1": (3, 1, False), "pal2": (3, 2, False), "pal4": (3, 4, False), "pal8": (3, 8, False),
    "pal1t": (3, 1, True), "pal2t": (3, 2, True), "pal4t": (3, 4, True), "pal8t": (3, 8, True),
}


def png_fixture(path, kind, h=45, w=61, seed=0, interlace=False, by_hand=False):
    """Writes a PNG of KIND with at most 12 colours among its pixels of alpha > 0 (and noise
    under alpha 0); returns the pixels a decoder must show (as png_pixels gives them). Pillow
    writes it where it can (not interlaced, 8-bit samples or 16-bit grey, palettes of 1 to 8
    bits), else write_png; either way the file's header is checked."""
    ctype, depth, transparent = PNG_KINDS[kind]
    rng = np.random.RandomState(seed)
    maxval = (1 << depth) - 1
    palette = trns = None
    if ctype == 3:
        entries = 40 if depth == 8 else 1 << depth
        palette = distinct_colours(rng, entries, 3, 255)
        used = min(entries, 12)
        if depth == 8:
            palette[7] = palette[3]  # two indices of one colour: one colour, not two
        samples = label_map(h, w, used).astype(np.uint8)[..., None]
        if transparent:
            trns = bytes([0, 150] + [255] * (used - 2))[:entries]
    else:
        c = CHANNELS[ctype]
        colour_c = c - (ctype in (4, 6))
        table = distinct_colours(rng, min(12, maxval + 1), colour_c, maxval)
        samples = table[label_map(h, w, len(table))]
        if colour_c < c:
            alpha = np.full((h, w, 1), maxval, samples.dtype)
            alpha[h // 3:h // 2, :] = maxval // 3 + 1
            alpha[:, w - 4:] = 1
            hole = (slice(h - 9, h - 2), slice(2, w // 2))  # alpha 0: its samples must stay
            alpha[hole] = 0
            samples = np.concatenate([samples, alpha], axis=-1)
            samples[hole][..., :-1] = rng.randint(0, maxval + 1, samples[hole][..., :-1].shape)
    pillow = not (interlace or by_hand) and (depth == 8 or ctype == 3 or kind in ("grey1",
                                                                                 "grey16"))
    if pillow:
        if ctype == 3:
            im = Image.fromarray(samples[..., 0], "P")
            im.putpalette(palette.reshape(-1).tolist())
            opts = {"bits": depth} if depth < 8 else {}
            if trns is not None:
                opts["transparency"] = trns
            im.save(path, "PNG", **opts)
        elif kind == "grey1":
            Image.fromarray(samples[..., 0] != 0).save(path, "PNG")
        elif kind == "grey16":
            Image.fromarray(samples[..., 0].astype(np.uint16), "I;16").save(path, "PNG")
        else:
            mode = {0: "L", 4: "LA", 2: "RGB", 6: "RGBA"}[ctype]
            Image.fromarray(samples.squeeze(-1) if ctype == 0 else samples, mode).save(path, "PNG")
    else:
        write_png(path, samples, depth, ctype, palette, trns, interlace)
    png = read_png(path)
    expect((png["ctype"], png["depth"], png["interlace"]) == (ctype, depth, int(interlace)),
           f"fixture {path}: written as type {png['ctype']}, {png['depth']} bits, "
           f"interlace {png['interlace']}, not {kind}")
    want = png_pixels({"samples": samples, "ctype": ctype, "depth": depth, "palette": palette,
                       "trns": trns})
    same_pixels(want, png_pixels(png), f"fixture {path} read back")
    return want


def flat_jpeg(path, mode, n, progressive, h=53, w=70, seed=0):
    """A JPEG whose 8x8 blocks are flat, each of one of n colours, without chroma subsampling:
    blocks of only a DC coefficient decode to one colour each, so Pillow's decoding holds at
    most n colours. Returns Pillow's decoding."""
    rng = np.random.RandomState(seed)
    c = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    table = distinct_colours(rng, n, c, 255)
    lab = np.kron(label_map((h + 7) // 8, (w + 7) // 8, n), np.ones((8, 8), int))[:h, :w]
    a = table[lab]
    Image.fromarray(a[..., 0] if c == 1 else a, mode).save(path, "JPEG", quality=90,
                                                            progressive=progressive, subsampling=0)
    got = decode(path)
    m = len(colours_of(got, alpha=False))
    expect(m <= n, f"fixture {path}: Pillow decodes {m} colours, more than {n}")
    return got


def photo_jpeg(path, mode, progressive=False, subsampling=-1, h=67, w=101, seed=0):
    """A photo-like JPEG (Pillow's subsampling: -1 its default, 0 4:4:4, 1 4:2:2, 2 4:2:0);
    returns Pillow's decoding."""
    c = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    a = photo(h, w, c, seed)
    Image.fromarray(a[..., 0] if c == 1 else a, mode).save(
        path, "JPEG", quality=85, progressive=progressive, subsampling=subsampling)
    return decode(path)


def round_trip(src, want=None, out_ext=".png", labels=False, count=True, fmt="PNG"):
    """run SRC OUT -k n with n the colours of SRC's pixels (alpha > 0): OUT holds exactly SRC's
    pixels; info counts SRC's colours as Pillow does (8-bit samples)."""
    a = decode(src)
    if want is not None:
        same_pixels(want, a, f"Pillow's decoding of {src}")
    alpha = a.shape[2] in (2, 4) and fmt != "JPEG"  # 4 samples of a JPEG are CMYK
    n = len(colours_of(a, alpha=alpha))
    out = os.path.splitext(src)[0] + ".out" + out_ext
    args = ["run", src, out, "-k", n, "--seed", 1, "-q"]
    if labels:
        args += ["--labels", out + ".labels.tif"]
    cm(*args)
    if out_ext == ".png":
        pngcheck(out)
        png_type_is(out, expected_png_type(a, n))
    same_pixels(a, decode(out), f"{out} (run {src} -k {n})")
    if labels:
        lab = tifffile.imread(out + ".labels.tif")
        expect(lab.shape == a.shape[:2] and lab.dtype == np.uint8,
               f"labels of {src}: {lab.shape} {lab.dtype}")
        valid = a[..., -1] != 0 if alpha else np.ones(a.shape[:2], bool)
        colour = a[..., :-1] if alpha else a
        for label in np.unique(lab[valid]):
            expect(label < n and len(np.unique(colour[valid & (lab == label)], axis=0)) == 1,
                   f"labels of {src}: label {label} is not one of {n} colours")
    if count and a.dtype == np.uint8:
        got = info(src)
        want_n = len(colours_of(a, valid_only=False, alpha=alpha))
        expect(got.get("format") == fmt, f"info {src}: format {got.get('format')}, not {fmt}")
        expect((got["width"], got["height"], got["bands"]) == (a.shape[1], a.shape[0],
                                                               a.shape[2]),
               f"info {src}: {got['width']}x{got['height']}x{got['bands']}, Pillow decodes "
               f"{a.shape[1]}x{a.shape[0]}x{a.shape[2]}")
        expect(got["colors"] == want_n, f"info {src}: {got['colors']} colours, Pillow "
               f"decodes {want_n}")
    return a


# ---------------------------------------------------------------------------------------------
# Cases

def case_fixtures_decode_as_pillow_does():
    """The test's own tools: every PNG fixture, written by Pillow or write_png, reads back with
    read_png as its samples, and Pillow decodes it to the same pixels (to the high bytes where it
    narrows 16 bits); read_png reads Pillow's own PNGs (all five filters) as Pillow does."""
    for kind in PNG_KINDS:
        for interlace in (False, True):
            for by_hand in (False, True):
                path = f"{kind}.{int(interlace)}{int(by_hand)}.png"
                want = png_fixture(path, kind, h=23, w=37, interlace=interlace, by_hand=by_hand)
                with Image.open(path) as im:
                    mode = im.mode
                    p = decode(path) if want.dtype == np.uint8 else np.asarray(im)
                if want.dtype == np.uint16 and mode in ("I", "I;16", "I;16B"):
                    p = p.reshape(want.shape).astype(np.uint16)
                elif want.dtype == np.uint16:  # Pillow keeps the high bytes
                    want = (want >> 8).astype(np.uint8)
                    if want.shape[2] == 2 and mode == "RGBA":  # 16-bit grey+alpha
                        p = p[..., [0, 3]]
                    p = p.reshape(want.shape)
                same_pixels(want, p, f"Pillow's decoding of {path} ({mode})")
    for mode, c in (("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)):
        a = photo(31, 53, c, seed=c)
        Image.fromarray(a[..., 0] if c == 1 else a, mode).save(f"pillow.{mode}.png", "PNG")
        png = read_png(f"pillow.{mode}.png")
        same_pixels(a, png["samples"], f"read_png of Pillow's {mode} PNG")
    with open("rgb8.00.png", "rb") as f:
        data = bytearray(f.read())
    data[-20] ^= 1
    try:
        png_chunks(bytes(data))
        raise Failed("png_chunks takes a wrong CRC")
    except ValueError:
        pass
    for p in ("rgb16.10.png", "pal4t.10.png", "grey2.01.png"):
        pngcheck(p)


def case_png_grey_round_trip():
    """Grey of 1, 2, 4, 8 and 16 bits and grey+alpha of 8 and 16 bits give back their pixels:
    colour-mapped PNGs where the samples are 8-bit (1/2/4 bits scaled as decoders scale them),
    16-bit grey and grey+alpha PNGs at 16 bits, alpha 0 pixels unchanged."""
    for kind in ("grey1", "grey2", "grey4", "grey8", "grey16", "ga8", "ga16"):
        round_trip(kind + ".png", png_fixture(kind + ".png", kind, seed=len(kind)))
    # taller than a band of rows (512): read and written in several
    round_trip("tall.grey4.png", png_fixture("tall.grey4.png", "grey4", h=1100, w=33))


def case_png_colour_round_trip():
    """RGB and RGBA of 8 and 16 bits give back their pixels, with a label map of one colour per
    label; the 16-bit ones at 16 bits (read here, not by Pillow)."""
    for i, kind in enumerate(("rgb8", "rgb16", "rgba8", "rgba16")):
        round_trip(kind + ".png", png_fixture(kind + ".png", kind, seed=i), labels=True)
    # taller than a band of rows (512): read and written in several
    round_trip("tall.rgba16.png", png_fixture("tall.rgba16.png", "rgba16", h=1100, w=24))
    round_trip("tall.rgb8.png", png_fixture("tall.rgb8.png", "rgb8", h=1100, w=24))


def case_png_palette_round_trip():
    """Palettes of 1, 2, 4 and 8-bit indices give back their colours (RGB, or RGBA with a
    tRNS); two palette entries of one colour are one colour; info counts colours, not indices."""
    for i, kind in enumerate(k for k in PNG_KINDS if k.startswith("pal")):
        a = round_trip(kind + ".png", png_fixture(kind + ".png", kind, seed=i))
        expect(a.shape[2] == (4 if kind.endswith("t") else 3), f"{kind}: {a.shape[2]} samples")


def case_png_interlaced_round_trip():
    """Adam7-interlaced PNGs, of sizes that leave some passes empty or narrow, give back their
    pixels: RGB, 16-bit grey+alpha, a 4-bit palette with tRNS, and 2-bit grey."""
    for kind, h, w in (("rgb8", 45, 61), ("ga16", 13, 9), ("pal4t", 7, 3), ("grey2", 1, 5)):
        name = f"{kind}.interlaced.png"
        round_trip(name, png_fixture(name, kind, h=h, w=w, seed=h, interlace=True))


def case_output_extension_picks_the_format():
    """.png writes PNG (RGB when k > 256), .tif/.tiff TIFF (and so does a name without an
    extension), .jpg/.jpeg JPEG with a warning that JPEG adds colours; another extension exits
    2 naming the extensions, and writes nothing."""
    os.mkdir("out")
    noise = np.random.RandomState(3).randint(0, 256, (40, 50, 3)).astype(np.uint8)
    Image.fromarray(noise).save("noise.png")
    cm("run", "noise.png", "out/k300.png", "-k", 300, "-q", "--max-iter", 5)
    pngcheck("out/k300.png")
    png_type_is("out/k300.png", (2, 8))
    expect(len(colours_of(decode("out/k300.png"))) <= 300, "k300.png: more than 300 colours")
    blocks = png_fixture("blocks.png", "rgb8")
    for ext in (".tif", ".tiff"):
        cm("run", "blocks.png", "out/b" + ext, "-k", 12, "-q")
        with open("out/b" + ext, "rb") as f:
            expect(f.read(4) in (b"II*\0", b"MM\0*"), f"b{ext} is not a TIFF")
        same_pixels(blocks, decode("out/b" + ext), "b" + ext)
    # JPEG: three wide bands of colour, so that what JPEG adds stays near the edges
    bands = distinct_colours(np.random.RandomState(5), 3, 3, 255)[np.arange(64) * 3 // 64]
    bands = np.repeat(bands[None], 48, axis=0)
    Image.fromarray(bands).save("bands.png")
    for ext in (".jpg", ".jpeg"):
        _, err = cm("run", "bands.png", "out/b" + ext, "-k", 3)
        expect(re.search(r"jpe?g", err, re.I) and re.search(r"colou?r", err, re.I),
               f"run to b{ext}: no warning that JPEG adds colours: {err.strip()}")
        with Image.open("out/b" + ext) as im:
            expect(im.format == "JPEG" and im.mode == "RGB" and im.size == (64, 48),
                   f"b{ext}: {im.format} {im.mode} {im.size}")
        off = np.abs(decode("out/b" + ext).astype(int) - bands).mean()
        expect(off < 4, f"b{ext} is {off:.1f} levels off the three colours of bands.png")
    # A name without an extension writes a TIFF, as before other formats could be written.
    cm("run", "blocks.png", "out/b", "-k", 12, "-q")
    with open("out/b", "rb") as f:
        expect(f.read(4) in (b"II*\0", b"MM\0*"), "out/b (no extension) is not a TIFF")
    before = sorted(os.listdir("out"))
    for bad in ("out/b.bmp", "out/b.gif", "out/b.png.txt"):
        _, err = cm("run", "blocks.png", bad, "-k", 3, code=2)
        for word in ("png", "tif", "jpg"):
            expect(word in err.lower(), f"run to {bad}: the message does not name .{word}: "
                   f"{err.strip()}")
    expect(sorted(os.listdir("out")) == before, f"outputs of exit 2 left: {os.listdir('out')}")


def case_png_cannot_hold_cmyk_signed_or_float_exits_2():
    """CMYK, signed and floating-point samples to a .png exit 2 naming OUT, and write nothing;
    the same to a .tif work."""
    os.mkdir("out")
    flat_jpeg("cmyk.jpg", "CMYK", 5, False)
    ramp = np.arange(30 * 40).reshape(30, 40)
    tifffile.imwrite("i16.tif", (ramp - 600).astype(np.int16))
    tifffile.imwrite("f32.tif", (ramp / 7.0).astype(np.float32))
    for src in ("cmyk.jpg", "i16.tif", "f32.tif"):
        out = "out/" + src.replace(".", "_") + ".png"
        _, err = cm("run", src, out, "-k", 3, code=2)
        expect(out in err, f"run {src} {out}: the message does not name {out}: {err.strip()}")
        nothing_in("out")
    for src in ("cmyk.jpg", "i16.tif", "f32.tif"):
        cm("run", src, "out/" + src.replace(".", "_") + ".tif", "-k", 3, "-q")


def case_jpeg_round_trip():
    """Baseline and progressive JPEGs of flat blocks, grey, YCbCr and CMYK (Adobe, inverted, as
    Pillow writes it), give back Pillow's decoding with -k its number of colours: to PNG, and to
    TIFF for CMYK (inverted as Pillow shows it); info counts the colours as Pillow does."""
    for mode, n in (("L", 10), ("RGB", 12), ("CMYK", 6)):
        for progressive in (False, True):
            name = f"{mode.lower()}.{'progressive' if progressive else 'baseline'}.jpg"
            want = flat_jpeg(name, mode, n, progressive, seed=n)
            round_trip(name, want, out_ext=".tif" if mode == "CMYK" else ".png",
                       count=mode != "CMYK", fmt="JPEG")
            if mode == "CMYK":
                d = json.loads(cm("info", name, "--json")[0])
                expect(d.get("format") == "JPEG" and d["bands"] == 4, f"info {name}: {d}")


def case_jpeg_decodes_as_pillow_does():
    """Photo-like JPEGs (grey, YCbCr 4:4:4, 4:2:2 and 4:2:0, baseline and progressive, CMYK):
    info counts exactly the colours of Pillow's decoding (the same libjpeg, islow DCT and fancy
    upsampling), and the exact mean of Lloyd with k = 1 is the mean of Pillow's decoding."""
    small, tall = (67, 101), (1100, 40)  # tall: more rows than a band (512)
    cases = [("L", False, -1, small), ("L", True, -1, small), ("RGB", False, 0, small),
             ("RGB", False, 1, small), ("RGB", False, 2, small), ("RGB", True, 2, small),
             ("CMYK", False, -1, small), ("RGB", False, 2, tall), ("RGB", True, 2, tall)]
    for i, (mode, progressive, sub, (h, w)) in enumerate(cases):
        name = f"{mode.lower()}.{i}.jpg"
        a = photo_jpeg(name, mode, progressive, sub, h=h, w=w, seed=i)
        if mode != "CMYK":
            d = info(name)
            want = len(colours_of(a, alpha=False))
            expect(d.get("format") == "JPEG", f"info {name}: format {d.get('format')}")
            expect(d["colors"] == want, f"info {name}: {d['colors']} colours, Pillow decodes "
                   f"{want}")
        cm("run", name, name + ".tif", "-k", 1, "--algorithm", "lloyd", "--model-out",
           name + ".json", "-q")
        with open(name + ".json") as f:
            m = json.load(f)
        mean = a.reshape(-1, a.shape[2]).astype(float).mean(axis=0)
        got = np.array(m["centroids"][0], float)
        expect(got.shape == mean.shape and np.abs(got - mean).max() < 1e-6,
               f"{name}: the mean of every pixel is {got.tolist()}, Pillow's decoding gives "
               f"{mean.tolist()}")


def case_threads_give_the_same_bytes():
    """-j1 and -j2 write the same bytes, to PNG and to TIFF, from JPEG and PNG inputs of three
    bands of rows (512 each)."""
    Image.fromarray(photo(1100, 32, 3, seed=5)).save("photo.jpg", quality=85)
    Image.fromarray(photo(1100, 32, 4, seed=6)).save("photo.png")
    for src in ("photo.jpg", "photo.png"):
        chunks = json.loads(cm("info", src, "--json")[0])["chunks"]
        expect(chunks > 1, f"{src} is read in {chunks} chunk: nothing to share between threads")
        for ext in (".png", ".tif"):
            outs = []
            for j in (1, 2):
                outs.append(f"{src}.j{j}{ext}")
                cm("run", src, outs[-1], "-k", 6, "--seed", 5, f"-j{j}", "-q", "--max-iter", 20,
                   "--n-init", 1)
            with open(outs[0], "rb") as f1, open(outs[1], "rb") as f2:
                expect(f1.read() == f2.read(), f"{outs[0]} and {outs[1]} differ")
            n = len(colours_of(decode(outs[0])))
            expect(1 <= n <= 6, f"{outs[0]}: {n} colours, k = 6")


def case_real_photo_k5():
    """A photo (skimage's chelsea, as a JPEG of quality 90) to a PNG of 5 colours: colour-mapped,
    exactly 5 colours, the photo's size, accepted by pngcheck. Skipped without skimage."""
    try:
        import skimage.data
    except ImportError:
        print("skimage is not installed: skipped")
        sys.exit(77)
    src = os.path.join(os.path.dirname(skimage.data.__file__), "chelsea.png")
    with Image.open(src) as im:
        im.convert("RGB").save("chelsea.jpg", quality=90)
        size = im.size
    cm("run", "chelsea.jpg", "cat.k5.png", "-k", 5, "-q")
    pngcheck("cat.k5.png")
    png = png_type_is("cat.k5.png", (3, 8))
    expect((png["width"], png["height"]) == size, f"cat.k5.png: {png['width']}x{png['height']}")
    with Image.open("cat.k5.png") as im:
        expect(im.mode == "P", f"cat.k5.png: Pillow mode {im.mode}")
        n = len(colours_of(np.asarray(im.convert("RGB"))))
        used = len(np.unique(np.asarray(im)))
    expect(n == 5 and used == 5, f"cat.k5.png: {n} colours of {used} indices, expected 5")


def case_metadata_survives():
    """A JPEG's EXIF orientation, ICC profile and resolution reach a PNG (eXIf, iCCP, pHYs) and
    a TIFF (Orientation, InterColorProfile, XResolution) output; the pixels are not rotated."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    a = photo(40, 72, 3, seed=9)
    Image.fromarray(a).save("meta.jpg", quality=90, exif=exif.tobytes(), icc_profile=icc,
                            dpi=(300, 300))
    cm("run", "meta.jpg", "meta.png", "-k", 4, "-q")
    cm("run", "meta.jpg", "meta.tif", "-k", 4, "-q")
    pngcheck("meta.png")
    with Image.open("meta.png") as im:
        expect(im.size == (72, 40), f"meta.png: size {im.size}, expected (72, 40)")
        orientation = im.getexif().get(0x0112)
        expect(orientation == 6, f"meta.png: orientation {orientation}, expected 6")
        expect(im.info.get("icc_profile") == icc, "meta.png: the ICC profile differs or is missing")
        dpi = im.info.get("dpi")
        expect(dpi and abs(dpi[0] - 300) < 0.5 and abs(dpi[1] - 300) < 0.5,
               f"meta.png: dpi {dpi}, expected 300")
    with tifffile.TiffFile("meta.tif") as t:
        tags = t.pages[0].tags
        expect(t.pages[0].shape[:2] == (40, 72), f"meta.tif: shape {t.pages[0].shape}")
        o = tags.get(274)
        expect(o is not None and int(o.value) == 6, f"meta.tif: Orientation {o and o.value}")
        p = tags.get(34675)
        expect(p is not None and bytes(p.value) == icc, "meta.tif: the ICC profile differs")
        xr, unit = tags.get(282), tags.get(296)
        x = xr and xr.value[0] / xr.value[1]
        expect(x and abs(x - 300) < 0.5, f"meta.tif: XResolution {xr and xr.value}")
        expect(unit is not None and int(unit.value) == 2, f"meta.tif: ResolutionUnit "
               f"{unit and unit.value}, expected 2 (inch)")


def case_bad_inputs_exit_3():
    """Truncated, corrupt and false inputs exit 3 with a message that names the file and a
    reason, and leave nothing in the output directory."""
    os.mkdir("in")
    os.mkdir("out")
    Image.fromarray(photo(96, 128, 3, seed=2)).save("good.jpg", quality=90)
    with open("good.jpg", "rb") as f:
        jpg = f.read()
    Image.fromarray(np.random.RandomState(2).randint(0, 256, (64, 64, 3)).astype(np.uint8)).save(
        "good.png")
    with open("good.png", "rb") as f:
        png = f.read()
    bad = {"truncated.jpg": jpg[:len(jpg) * 6 // 10], "truncated.png": png[:len(png) * 6 // 10]}
    at = png.find(b"IDAT")
    n = struct.unpack(">I", png[at - 4:at])[0]
    crc = at + 4 + n
    bad["idat_crc.png"] = png[:crc] + bytes(b ^ 0xFF for b in png[crc:crc + 4]) + png[crc + 4:]
    sof = jpg.find(b"\xff\xc0")
    bad["no_sof.jpg"] = jpg[:sof] + b"\0\0" + jpg[sof + 2:]
    sos = jpg.find(b"\xff\xda")
    mid = (sos + len(jpg)) // 2
    bad["huffman.jpg"] = jpg[:mid] + b"\xff\x00" * 8 + jpg[mid + 16:]
    bad["text.jpg"] = bad["text.png"] = b"this is not an image\n"
    for name, data in bad.items():
        with open("in/" + name, "wb") as f:
            f.write(data)
    # The corrupt Huffman stream is one that libjpeg decodes to the end with a warning: Pillow
    # (which ignores libjpeg's warnings) reads it whole, with other pixels than the good file's.
    with Image.open("in/huffman.jpg") as im:
        im.load()
        expect((np.asarray(im) != decode("good.jpg")).any(), "huffman.jpg decodes unchanged")
    djpeg = shutil.which("djpeg")
    if djpeg:
        r = subprocess.run([djpeg, "-outfile", os.devnull, "in/huffman.jpg"], capture_output=True,
                           text=True)
        expect(r.returncode == 2 and "Corrupt JPEG data" in r.stderr,
               f"djpeg on huffman.jpg: exit {r.returncode}, {r.stderr.strip()}")
    for name in bad:
        src = "in/" + name
        _, err = cm("run", src, "out/o.png", "-k", 3, "--labels", "out/l.tif", code=3)
        expect(re.search(re.escape(src) + r"\S*:\s*\S", err),
               f"run {src}: the message does not name the file and a reason: {err.strip()}")
        nothing_in("out")
        _, err = cm("run", src, "out/o.tif", "-k", 3, code=3)
        nothing_in("out")


def case_extension_that_lies_is_ignored():
    """Files are recognised by their content: a PNG named .jpg or .tif, a JPEG named .png and a
    TIFF named .png are read as what they are."""
    png_fixture("real.png", "rgb8", seed=4)
    flat_jpeg("real.jpg", "RGB", 7, False, seed=4)
    tifffile.imwrite("real.tif", photo(30, 40, 3, seed=4), photometric="rgb")
    shutil.copy("real.png", "png_as.jpg")
    shutil.copy("real.png", "png_as.tif")
    shutil.copy("real.jpg", "jpeg_as.png")
    shutil.copy("real.tif", "tiff_as.png")
    want_png = decode("real.png")
    round_trip("png_as.jpg", want_png)
    round_trip("png_as.tif", want_png)
    round_trip("jpeg_as.png", decode("real.jpg"), fmt="JPEG")
    d = info("tiff_as.png")
    expect(d.get("format") == "TIFF", f"info tiff_as.png: format {d.get('format')}")
    cm("run", "tiff_as.png", "tiff_as.out.tif", "-k", 4, "-q")
    expect(len(colours_of(tifffile.imread("tiff_as.out.tif"))) <= 4, "tiff_as.out.tif")


def parse_size(text):
    num, unit = re.fullmatch(r"(\d+)([KMG]?)", text).groups()
    return int(num) << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


def case_interlaced_png_over_budget_exits_2():
    """An interlaced PNG is decoded whole: under a --memory that cannot hold it, it is refused
    with exit 2 and the budget that would do, which works; the same image not interlaced is
    read in bands of rows and works within the smaller budget. The image is narrow and tall,
    so that it is many chunks of rows and far larger than one."""
    os.mkdir("out")
    h, w = 3000, 256
    a = distinct_colours(np.random.RandomState(8), 4, 3, 255)[label_map(h, w, 4)]
    write_png("interlaced.png", a, 8, 2, interlace=True)
    Image.fromarray(a).save("plain.png")
    small = "1M"
    expect(2 * parse_size(small) < a.nbytes, "the budget holds half the image")
    cm("run", "plain.png", "out/p.png", "-k", 4, "--memory", small, "-q")
    same_pixels(a, decode("out/p.png"), f"plain.png under --memory {small}")
    os.remove("out/p.png")
    _, err = cm("run", "interlaced.png", "out/o.png", "-k", 4, "--memory", small, code=2)
    m = re.search(r"--memory (\d+[KMG]?)", err)
    expect(m, f"the refusal gives no budget: {err.strip()}")
    expect(parse_size(m.group(1)) >= a.nbytes, f"the budget given, {m.group(1)}, cannot hold "
           f"the {a.nbytes} bytes of the image: {err.strip()}")
    nothing_in("out")
    cm("run", "interlaced.png", "out/o.png", "-k", 4, "--memory", m.group(1), "-q")
    same_pixels(a, decode("out/o.png"), f"interlaced.png under --memory {m.group(1)}")


def case_apply_and_fit_on_jpeg_and_png():
    """fit on a JPEG and a PNG together, then apply over JPEG and PNG files with --ext png and
    --ext tif: DIR/<name>.png and DIR/<name>.tif, every pixel the model's colour nearest to its
    colour as Pillow decodes it."""
    Image.fromarray(photo(40, 60, 3, seed=1)).save("a.jpg", quality=90)
    Image.fromarray(photo(50, 30, 3, seed=2)).save("b.png")
    Image.fromarray(photo(33, 47, 3, seed=3)).save("c.jpeg", quality=80, progressive=True)
    cm("fit", "a.jpg", "b.png", "-k", 4, "-o", "m.json", "-q")
    with open("m.json") as f:
        m = json.load(f)
    expect(m["k"] == 4 and m["bands"] == 3 and len(m["centroids"]) == 4, f"m.json: {m}")
    if "sample_pixels" in m:
        expect(m["sample_pixels"] == 40 * 60 + 50 * 30,
               f"m.json: a sample of {m['sample_pixels']} pixels, not both files whole")
    cm("apply", "m.json", "a.jpg", "b.png", "c.jpeg", "--out-dir", "P", "--ext", "png", "-q")
    cm("apply", "m.json", "a.jpg", "b.png", "c.jpeg", "--out-dir", "T", "--ext", "tif", "-q")
    for d, ext in (("P", ".png"), ("T", ".tif")):
        got = sorted(os.listdir(d))
        expect(got == ["a" + ext, "b" + ext, "c" + ext], f"--out-dir {d} --ext {ext[1:]}: {got}")
    centres = np.array(m["centroids"], float)
    rounded = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    for name in ("a.jpg", "b.png", "c.jpeg"):
        stem = os.path.splitext(name)[0]
        pngcheck(f"P/{stem}.png")
        png_type_is(f"P/{stem}.png", (3, 8))
        out = decode(f"P/{stem}.png")
        same_pixels(out, decode(f"T/{stem}.tif"), f"T/{stem}.tif against P/{stem}.png")
        a = decode(name).reshape(-1, 3).astype(float)
        d2 = ((a[:, None, :] - centres[None]) ** 2).sum(axis=-1)
        best = d2.min(axis=1)
        got = out.reshape(-1, 3)
        # the colour written is a centre's, and that centre is the nearest (ties aside)
        which = (got[:, None, :] == rounded[None]).all(axis=-1)
        expect(which.any(axis=1).all(), f"P/{stem}.png: colours that are no centre's")
        chosen = np.where(which, d2, np.inf).min(axis=1)
        far = chosen > best + 1e-5 * (1 + best)
        expect(not far.any(), f"P/{stem}.png: {int(far.sum())} pixels not of their nearest "
               "centre")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


def main():
    global CM
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit("usage: formats.py CHUNKMEANS CASE, CASE one of: " + " ".join(CASES))
    CM = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix=f"cm-formats-{sys.argv[2]}.")
    os.chdir(work)
    try:
        CASES[sys.argv[2]]()
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        os.chdir("/")
        if os.environ.get("FORMATS_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
