"""Readers by bands of rows for the images the comparison scripts score: TIFF (tiffio.Reader,
random access), and PNG and JPEG, decoded to their colours (a palette PNG to RGB).

open_image(path, in_memory_max_mp) picks one by the file's first bytes:
- TIFF: tiffio.Reader, any band in any order, one reader per thread.
- PNG or JPEG of up to in_memory_max_mp megapixels: decoded whole by Pillow (fast, any kind).
- a larger PNG: PngStream, which inflates the IDAT stream itself and hands each band of
  filtered rows, behind the last row decoded, to Pillow as a small PNG of its own (stored, not
  deflated): Pillow undoes every filter in C, and memory is a band. Non-interlaced, bit depth
  8, or a palette of 1 to 8 bits.
- a larger JPEG: JpegStream, the PPM rows of djpeg (libjpeg-turbo-progs) through a pipe;
  baseline djpeg decodes as it writes.
The streaming readers give their rows in order only (sequential = True).
"""

import io
import shutil
import struct
import subprocess
import zlib

import numpy as np

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def kind_of(path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:8] == PNG_SIG:
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    raise ValueError(f"{path}: not a TIFF, PNG or JPEG")


def _pillow():
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the benchmark's images are big on purpose
    return Image


def _pixels(im):
    """A Pillow image as uint8 (H, W, C): palette images as RGB (as PngStream: a palette's
    transparency is not scored), other modes as they are."""
    if im.mode == "P":
        im = im.convert("RGB")
    elif im.mode in ("1", "I;16", "I", "F"):
        raise ValueError(f"mode {im.mode}: only 8-bit images are scored")
    a = np.asarray(im)
    return a if a.ndim == 3 else a[:, :, None]


class InMemory:
    """The whole image decoded by Pillow; read-only, so every thread can share it."""

    sequential = False

    def __init__(self, path):
        Image = _pillow()
        with Image.open(path) as im:
            im.load()
            self.a = _pixels(im)
        self.shape = self.a.shape
        self.chunk_rows = 256

    def rows(self, y0, y1):
        return self.a[y0:y1]

    def close(self):
        pass


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


class PngStream:
    sequential = True

    def __init__(self, path, indices=False):
        """indices: a palette image's rows as their indices (one band), not their colours."""
        self.indices = indices
        self.f = open(path, "rb")
        if self.f.read(8) != PNG_SIG:
            raise ValueError(f"{path}: not a PNG")
        self.plte = None
        self.left = 0  # bytes of the current IDAT chunk not read yet
        while True:
            kind, data = self._next_chunk()
            if kind == b"IHDR":
                w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
            elif kind == b"PLTE":
                self.plte = data
            elif kind == b"IDAT" or kind == b"IEND":
                break
        if interlace:
            raise ValueError(f"{path}: interlaced: not streamed")
        if not (depth == 8 or ctype == 3 and depth in (1, 2, 4)):
            raise ValueError(f"{path}: bit depth {depth}: not streamed")
        if ctype == 3 and self.plte is None:
            raise ValueError(f"{path}: palette image without PLTE")
        self.w, self.h, self.depth, self.ctype = w, h, depth, ctype
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
        self.stride = (w * depth * channels + 7) // 8
        self.bands = {0: 1, 2: 3, 3: 1 if indices else 3, 4: 2, 6: 4}[ctype]
        self.shape = (h, w, self.bands)
        self.chunk_rows = 256
        self.inflate = zlib.decompressobj()
        self.buf = bytearray()
        self.prev = bytes(self.stride)  # the row above, as stored unfiltered (zeros above row 0)
        self.y = 0
        if ctype == 3:
            pal = np.frombuffer(self.plte, np.uint8).reshape(-1, 3)
            self.palette = np.zeros((256, 3), np.uint8)  # indices past the palette read as black
            self.palette[:len(pal)] = pal

    def _next_chunk(self):
        """The next chunk: (kind, data); for IDAT, data is empty and self.left its length."""
        n, kind = struct.unpack(">I4s", self.f.read(8))
        if kind == b"IDAT":
            self.left = n
            return kind, b""
        data = self.f.read(n)
        self.f.read(4)  # CRC
        return kind, data

    def _filtered(self, nbytes):
        """The next nbytes of the inflated stream (filter bytes and rows)."""
        while len(self.buf) < nbytes:
            if self.left == 0:
                self.f.read(4)  # the CRC of the IDAT just read
                kind, _ = self._next_chunk()
                while kind != b"IDAT":
                    if kind == b"IEND":
                        raise ValueError("PNG: image data ends early")
                    kind, _ = self._next_chunk()
                continue
            data = self.f.read(min(self.left, 1 << 22))
            if not data:
                raise ValueError("PNG: file ends early")
            self.left -= len(data)
            self.buf += self.inflate.decompress(data)
        out = bytes(self.buf[:nbytes])
        del self.buf[:nbytes]
        return out

    def rows(self, y0, y1):
        if y0 != self.y:
            raise ValueError("PngStream: rows are read in order")
        n = y1 - y0
        data = self._filtered(n * (1 + self.stride))
        # The band as a PNG of n + 1 rows: the row above, unfiltered, then the band's rows as
        # stored, so that Up, Average and Paeth see the right neighbours.
        ihdr = struct.pack(">IIBBBBB", self.w, n + 1, self.depth, self.ctype, 0, 0, 0)
        png = (PNG_SIG + _chunk(b"IHDR", ihdr) +
               (_chunk(b"PLTE", self.plte) if self.ctype == 3 else b"") +
               _chunk(b"IDAT", zlib.compress(b"\0" + self.prev + data, 0)) + _chunk(b"IEND", b""))
        Image = _pillow()
        with Image.open(io.BytesIO(png)) as im:
            im.load()
            a = np.asarray(im)  # palette images: their indices (mode P), 1 to 8 bits unpacked
        a = a[1:]
        self.prev = self._packed(a[-1])
        self.y = y1
        if self.ctype == 3 and not self.indices:
            return self.palette[a]
        return a if a.ndim == 3 else a[:, :, None]

    def _packed(self, row):
        """A decoded row as PNG stores it unfiltered."""
        if self.depth == 8:
            return row.tobytes()
        per = 8 // self.depth
        v = np.zeros(-(-len(row) // per) * per, np.uint8)
        v[:len(row)] = row
        v = v.reshape(-1, per)
        b = np.zeros(len(v), np.uint8)
        for i in range(per):
            b |= v[:, i] << (8 - self.depth * (i + 1))
        return b.tobytes()

    def close(self):
        self.f.close()


class JpegStream:
    sequential = True

    def __init__(self, path):
        if not shutil.which("djpeg"):
            raise ValueError("no djpeg (Debian: apt-get install libjpeg-turbo-progs)")
        self.p = subprocess.Popen(["djpeg", "-pnm", path], stdout=subprocess.PIPE)
        out = self.p.stdout
        fields = []
        while len(fields) < 4:  # magic, width, height, maxval; '#' comments skipped
            line = out.readline()
            if not line:
                raise ValueError(f"{path}: djpeg wrote no image")
            fields += line.split(b"#")[0].split()
        magic, w, h = fields[0], int(fields[1]), int(fields[2])
        if magic not in (b"P5", b"P6") or fields[3] != b"255":
            raise ValueError(f"{path}: djpeg wrote {magic!r}, maxval {fields[3]!r}")
        self.bands = 3 if magic == b"P6" else 1
        self.shape = (h, w, self.bands)
        self.chunk_rows = 256
        self.y = 0

    def rows(self, y0, y1):
        if y0 != self.y:
            raise ValueError("JpegStream: rows are read in order")
        n = (y1 - y0) * self.shape[1] * self.bands
        data = self.p.stdout.read(n)
        if len(data) != n:
            raise ValueError("djpeg: the image ends early")
        self.y = y1
        return np.frombuffer(data, np.uint8).reshape(y1 - y0, self.shape[1], self.bands)

    def close(self):
        self.p.stdout.close()
        self.p.kill()
        self.p.wait()


def _dims(path, kind):
    if kind == "png":
        with open(path, "rb") as f:
            f.read(16)
            return struct.unpack(">II", f.read(8))
    with _pillow().open(path) as im:  # reads the header only
        return im.size


def open_image(path, in_memory_max_mp=100):
    kind = kind_of(path)
    if kind == "tiff":
        from tiffio import Reader

        return Reader(path)
    w, h = _dims(path, kind)
    if w * h <= in_memory_max_mp * 1e6:
        return InMemory(path)
    return PngStream(path) if kind == "png" else JpegStream(path)
