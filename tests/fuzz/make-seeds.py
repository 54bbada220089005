"""Writes the seed corpora of fuzz_jpeg and fuzz_png under OUT_DIR (jpeg/, png/): small files
(each under 4 KB) of every kind the readers take, with the markers and chunks they look at.

JPEGs come from Pillow (baseline, progressive, grey, CMYK and YCCK, subsampling, EXIF, ICC,
JFIF density, comments) and from cjpeg (arithmetic coding, restart intervals, the RGB colour
space, a spectral-selection scan script). PNGs are written here, byte by byte, because Pillow
writes neither interlaced PNGs nor 16-bit colour: every colour type at every bit depth,
interlaced or not, every row filter, palettes with tRNS, and the ancillary chunks.

usage: make-seeds.py OUT_DIR   (Debian's python3 with python3-pil; cjpeg from
libjpeg-turbo-progs)
"""

import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib

from PIL import Image, ImageCms

out = sys.argv[1]
written = {"jpeg": 0, "png": 0}


def save(kind, name, data):
    assert len(data) < 4096, f"{kind}/{name}: {len(data)} bytes, seeds stay under 4 KB"
    os.makedirs(os.path.join(out, kind), exist_ok=True)
    with open(os.path.join(out, kind, name), "wb") as f:
        f.write(data)
    written[kind] += 1


def value(x, y, c, top):
    """A sample: gradients, one per channel, with a few steps, so that every filter and
    transform has something to do."""
    v = (x * 37 + y * 23 + c * 71 + (x ^ y) * 5) % 256
    if (x // 4 + y // 4) % 3 == 0:
        v = 255 - v
    return v * top // 255


ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# The same seeds every time: a fixed creation date, and no profile ID (its MD5, of that date).
ICC = ICC[:24] + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + ICC[36:84] + bytes(16) + ICC[100:]


def exif_le(orientation):
    """An EXIF block, little-endian, that says only the orientation."""
    ifd = struct.pack("<HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd


# ---- JPEG ----


def picture(mode, w, h):
    bands = len(Image.new(mode, (1, 1)).getbands())
    im = Image.new(mode, (w, h))
    im.putdata(
        [
            tuple(value(x, y, c, 255) for c in range(bands)) if bands > 1 else value(x, y, 0, 255)
            for y in range(h)
            for x in range(w)
        ]
    )
    return im


def jpeg(im, **opts):
    b = io.BytesIO()
    im.save(b, "JPEG", **opts)
    return b.getvalue()


def after_soi(data, *segments):
    """data with marker segments ((marker, payload), ...) inserted after SOI."""
    extra = b"".join(struct.pack(">BBH", 0xFF, m, len(p) + 2) + p for m, p in segments)
    return data[:2] + extra + data[2:]


rgb, grey, cmyk = picture("RGB", 40, 24), picture("L", 40, 24), picture("CMYK", 24, 16)
save("jpeg", "rgb-420.jpg", jpeg(rgb, quality=75))
save("jpeg", "rgb-422.jpg", jpeg(rgb, quality=75, subsampling=1))
save("jpeg", "rgb-444.jpg", jpeg(rgb, quality=75, subsampling=0))
save("jpeg", "rgb-17x9.jpg", jpeg(picture("RGB", 17, 9), quality=90))
save("jpeg", "rgb-1x1.jpg", jpeg(picture("RGB", 1, 1)))
save("jpeg", "rgb-optimized.jpg", jpeg(rgb, optimize=True))
save("jpeg", "rgb-progressive.jpg", jpeg(rgb, progressive=True))
save("jpeg", "rgb-progressive-444.jpg", jpeg(rgb, progressive=True, subsampling=0))
save("jpeg", "grey.jpg", jpeg(grey))
save("jpeg", "grey-progressive.jpg", jpeg(grey, progressive=True))
save("jpeg", "grey-33x5.jpg", jpeg(picture("L", 33, 5)))
cmyk_jpeg = jpeg(cmyk)
save("jpeg", "cmyk.jpg", cmyk_jpeg)
save("jpeg", "cmyk-progressive.jpg", jpeg(cmyk, progressive=True))
# The same with the Adobe marker's transform 2: read as YCCK.
adobe = cmyk_jpeg.index(b"Adobe") + 11
save("jpeg", "ycck.jpg", cmyk_jpeg[:adobe] + b"\x02" + cmyk_jpeg[adobe + 1 :])


def drop_last_component(data):
    """A JPEG whose frame and scan lose their last component (its data left as it is): one
    of a colour space the reader refuses, two components."""
    out, at = bytearray(data[:2]), 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
        seg = data[at + 4 : at + 2 + length]
        if marker == 0xC0:  # precision, height, width, Nf, then 3 bytes per component
            seg = seg[:5] + bytes([seg[5] - 1]) + seg[6 : 6 + 3 * (seg[5] - 1)]
        elif marker == 0xDA:  # Ns, 2 bytes per component, then Ss, Se, Ah/Al
            seg = bytes([seg[0] - 1]) + seg[1 : 1 + 2 * (seg[0] - 1)] + seg[-3:]
        out += struct.pack(">BBH", 0xFF, marker, len(seg) + 2) + seg
        at += 2 + length
        if marker == 0xDA:
            return bytes(out + data[at:])
    raise ValueError("no scan")


save("jpeg", "two-components.jpg", drop_last_component(jpeg(rgb, subsampling=0)))
exif = Image.Exif()
exif[0x0112] = 6
save("jpeg", "exif-be-orientation-6.jpg", jpeg(rgb, exif=exif.tobytes()))
save("jpeg", "exif-le-orientation-8.jpg", jpeg(grey, exif=exif_le(8)))
save("jpeg", "icc.jpg", jpeg(picture("RGB", 16, 16), icc_profile=ICC))
# An ICC profile in two APP2 segments, which libjpeg puts back together.
half = len(ICC) // 2
save(
    "jpeg",
    "icc-two-parts.jpg",
    after_soi(
        jpeg(picture("RGB", 16, 16)),
        (0xE2, b"ICC_PROFILE\0\x01\x02" + ICC[:half]),
        (0xE2, b"ICC_PROFILE\0\x02\x02" + ICC[half:]),
    ),
)
save("jpeg", "jfif-300dpi.jpg", jpeg(grey, dpi=(300, 300)))
save("jpeg", "jfif-aspect.jpg", jpeg(grey, dpi=(72, 144)))
save("jpeg", "comment.jpg", jpeg(picture("RGB", 16, 8), comment=b"chunkmeans seed"))
save(
    "jpeg",
    "exif-icc-progressive.jpg",
    jpeg(picture("RGB", 16, 16), progressive=True, exif=exif_le(3), icc_profile=ICC),
)

# cjpeg's options that Pillow does not have, from a PPM or PGM.
with tempfile.TemporaryDirectory() as tmp:
    ppm, pgm = os.path.join(tmp, "in.ppm"), os.path.join(tmp, "in.pgm")
    rgb.save(ppm)
    grey.save(pgm)
    scans = os.path.join(tmp, "scans.txt")
    with open(scans, "w") as f:  # spectral selection only, one component per AC scan
        f.write("0,1,2: 0-0, 0, 0;\n0: 1-9, 0, 0;\n0: 10-63, 0, 0;\n")
        f.write("1: 1-63, 0, 0;\n2: 1-63, 0, 0;\n")
    for name, src, args in [
        ("arithmetic.jpg", ppm, ["-arithmetic"]),
        ("arithmetic-progressive.jpg", ppm, ["-arithmetic", "-progressive"]),
        ("arithmetic-grey.jpg", pgm, ["-arithmetic"]),
        ("restart-1-row.jpg", ppm, ["-restart", "1"]),
        ("restart-3-blocks.jpg", pgm, ["-restart", "3B"]),
        ("restart-progressive.jpg", ppm, ["-restart", "1", "-progressive"]),
        ("rgb-colourspace.jpg", ppm, ["-rgb"]),
        ("sample-2x1-1x2.jpg", ppm, ["-sample", "2x1,1x2,1x1"]),
        ("scan-script.jpg", ppm, ["-scans", scans]),
    ]:
        data = subprocess.run(["cjpeg", *args, src], check=True, capture_output=True).stdout
        save("jpeg", name, data)

# ---- PNG ----

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]  # (x, y, step across, step down) of each pass
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, payload):
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def pack_row(samples, bits):
    if bits == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if bits == 8:
        return bytes(samples)
    row, acc, n = bytearray(), 0, 0
    for s in samples:
        acc, n = acc << bits | s, n + bits
        if n == 8:
            row.append(acc)
            acc, n = 0, 0
    if n:
        row.append(acc << (8 - n))
    return bytes(row)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered(rows, bpp, first_filter):
    """rows filtered with the five filters in turn, each row its own."""
    out, prev = bytearray(), bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        ft = (first_filter + i) % 5
        line = bytearray([ft])
        for j, x in enumerate(row):
            a = row[j - bpp] if j >= bpp else 0
            b = prev[j]
            c = prev[j - bpp] if j >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
            line.append((x - pred) % 256)
        out += line
        prev = row
    return bytes(out)


def png(w, h, color, bits, interlace=False, before=(), after=(), idat_split=0, sample=None):
    """A PNG of w x h pixels: IHDR, the chunks `before` (PLTE among them for palettes), IDAT
    (in pieces of idat_split bytes when given), the chunks `after`, IEND."""
    top = (1 << bits) - 1
    ch = CHANNELS[color]
    sample = sample or (lambda x, y, c: value(x, y, c, top))
    bpp = max(1, ch * bits // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    for n, (x0, y0, dx, dy) in enumerate(passes):
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue  # an empty pass has no rows, not even filter bytes
        rows = [pack_row([sample(x, y, c) for x in xs for c in range(ch)], bits) for y in ys]
        raw += filtered(rows, bpp, n)
    z = zlib.compress(raw, 9)
    pieces = [z[i : i + idat_split] for i in range(0, len(z), idat_split)] if idat_split else [z]
    ihdr = struct.pack(">IIBBBBB", w, h, bits, color, 0, 0, int(interlace))
    body = b"".join(before) + b"".join(chunk(b"IDAT", p) for p in pieces) + b"".join(after)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + body + chunk(b"IEND", b"")


def plte(n):
    return chunk(b"PLTE", bytes((i * 47 + c * 91) % 256 for i in range(n) for c in range(3)))


def palette_png(w, h, bits, **kw):
    n = 1 << bits
    before = [plte(n)] + list(kw.pop("before", ()))
    return png(w, h, 3, bits, before=before, sample=lambda x, y, c: (x * 3 + y * 5) % n, **kw)


DEPTHS = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}
NAMES = {0: "grey", 2: "rgb", 3: "palette", 4: "grey-alpha", 6: "rgba"}
for color, depths in DEPTHS.items():
    for bits in depths:
        for interlace in (False, True):
            name = f"{NAMES[color]}-{bits}{'-interlaced' if interlace else ''}.png"
            if color == 3:
                save("png", name, palette_png(13, 7, bits, interlace=interlace))
            else:
                save("png", name, png(13, 7, color, bits, interlace=interlace))

# Interlaced images too small for some passes.
save("png", "interlaced-1x1.png", png(1, 1, 2, 8, interlace=True))
save("png", "interlaced-3x2.png", png(3, 2, 0, 1, interlace=True))
save("png", "interlaced-9x1.png", png(9, 1, 6, 16, interlace=True))
save("png", "wide-64x1.png", png(64, 1, 2, 8))
save("png", "tall-1x40.png", png(1, 40, 0, 8))

# Transparency: palette alphas (fewer than its colours), grey and RGB keys.
save("png", "palette-trns.png", palette_png(13, 7, 4, before=[chunk(b"tRNS", bytes([0, 128, 9]))]))
save(
    "png",
    "palette-trns-interlaced.png",
    palette_png(13, 7, 2, interlace=True, before=[chunk(b"tRNS", bytes([0, 200]))]),
)
save("png", "grey-8-trns.png", png(13, 7, 0, 8, before=[chunk(b"tRNS", struct.pack(">H", 37))]))
save("png", "grey-2-trns.png", png(13, 7, 0, 2, before=[chunk(b"tRNS", struct.pack(">H", 1))]))
save("png", "grey-16-trns.png", png(13, 7, 0, 16, before=[chunk(b"tRNS", struct.pack(">H", 4000))]))
rgb_key = chunk(b"tRNS", struct.pack(">3H", 1, 2, 3))
save("png", "rgb-8-trns.png", png(13, 7, 2, 8, before=[rgb_key]))
save(
    "png",
    "rgb-16-trns-interlaced.png",
    png(13, 7, 2, 16, interlace=True, before=[chunk(b"tRNS", struct.pack(">HHH", 9, 8, 7))]),
)

# What the reader keeps (ICC profile, resolution, EXIF orientation) and what it passes over.
iccp = chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(ICC, 9))
save("png", "iccp.png", png(8, 8, 2, 8, before=[iccp]))
save("png", "iccp-interlaced-16.png", png(8, 8, 6, 16, interlace=True, before=[iccp]))
phys_metre = chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))  # 300 dpi
save("png", "phys-metre.png", png(8, 8, 0, 8, before=[phys_metre]))
phys_aspect = chunk(b"pHYs", struct.pack(">IIB", 2, 1, 0))  # pixels twice as tall as wide
save("png", "phys-aspect.png", png(8, 8, 2, 8, before=[phys_aspect]))
exif_be = exif.tobytes()[6:]  # a PNG's eXIf holds the TIFF structure without "Exif\0\0"
save("png", "exif-be.png", png(8, 8, 2, 8, before=[chunk(b"eXIf", exif_be)]))
save("png", "exif-le.png", png(8, 8, 0, 8, before=[chunk(b"eXIf", exif_le(5)[6:])]))
save("png", "exif-after-idat.png", png(8, 8, 2, 8, after=[chunk(b"eXIf", exif_be)]))
save(
    "png",
    "ancillary.png",
    png(
        8,
        8,
        2,
        8,
        before=[
            chunk(b"gAMA", struct.pack(">I", 45455)),
            chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000,
                                       6000)),
            chunk(b"sBIT", bytes([5, 6, 5])),
            chunk(b"bKGD", struct.pack(">HHH", 1, 2, 3)),
            chunk(b"tIME", struct.pack(">HBBBBB", 2024, 1, 2, 3, 4, 5)),
            chunk(b"tEXt", b"Comment\0chunkmeans seed"),
            chunk(b"zTXt", b"Title\0\0" + zlib.compress(b"a small image")),
            chunk(b"iTXt", b"Author\0\0\0en\0Autor\0someone"),
            chunk(b"prVt", b"private ancillary chunk"),
        ],
        after=[chunk(b"tEXt", b"After\0the image data")],
    ),
)
save("png", "srgb.png", png(8, 8, 6, 8, before=[chunk(b"sRGB", b"\0")]))
save(
    "png",
    "palette-hist-splt-bkgd.png",
    palette_png(
        8,
        8,
        2,
        before=[
            chunk(b"bKGD", b"\x01"),
            chunk(b"hIST", struct.pack(">4H", 10, 20, 30, 4)),
            chunk(b"sPLT", b"pal\0\x08" + bytes([1, 2, 3, 255, 0, 9, 4, 5, 6, 128, 0, 1])),
        ],
    ),
)
# IDAT in many pieces, and an empty one among them.
split = png(13, 7, 2, 8, idat_split=16)
save("png", "idat-pieces.png", split)
first_idat = split.index(b"IDAT") - 4
save("png", "idat-empty-first.png", split[:first_idat] + chunk(b"IDAT", b"") + split[first_idat:])
# An animated PNG's chunks (acTL, fcTL, fdAT), which a still-image reader passes over.
actl = chunk(b"acTL", struct.pack(">II", 2, 0))
fctl0 = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 8, 8, 0, 0, 1, 10, 0, 0))
fctl1 = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 1, 4, 4, 2, 2, 1, 10, 0, 0))
frame = zlib.compress(filtered([bytes(12)] * 4, 3, 0))
fdat = chunk(b"fdAT", struct.pack(">I", 2) + frame)
save("png", "apng.png", png(8, 8, 2, 8, before=[actl, fctl0], after=[fctl1, fdat]))

print(f"jpeg: {written['jpeg']} files", file=sys.stderr)
print(f"png: {written['png']} files", file=sys.stderr)
