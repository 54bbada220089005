#!/usr/bin/python3
"""Size and number of distinct colours of an 8-bit image (TIFF, PNG or JPEG), by bands of rows.

usage: colors.py IMAGE

Prints "size WxH", "bands C" and "colors N". A palette PNG is streamed as its indices: the
colours are those of the palette entries its pixels use (two entries of one colour count once),
so a 1-gigapixel output costs an inflate and a histogram. Other images mark each colour in a
table of 2^24 flags (up to 3 bands; 16 MiB)."""

import sys

import numpy as np

from readers import PngStream, kind_of, open_image


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    try:
        r = None
        if kind_of(path) == "png":
            r = PngStream(path, indices=True)
            if r.ctype != 3:
                r.close()
                r = None
        if r is None:
            r = open_image(path, in_memory_max_mp=0)  # streamed, whatever the size
    except (OSError, ValueError) as e:
        sys.exit(f"colors: {e}")
    h, w, c = r.shape[0], r.shape[1], r.shape[2] if len(r.shape) == 3 else None
    palette = getattr(r, "indices", False) and r.palette
    step = 256
    if palette is not False:
        used = np.zeros(256, np.int64)
        for y0 in range(0, h, step):
            used += np.bincount(r.rows(y0, min(h, y0 + step)).ravel(), minlength=256)[:256]
        n = len({tuple(palette[i]) for i in np.flatnonzero(used)})
        c = 3
    else:
        seen = None
        for y0 in range(0, h, step):
            a = r.rows(y0, min(h, y0 + step))
            c = a.shape[2]
            if c > 3:
                sys.exit(f"colors: {c} bands: up to 3 are counted")
            if seen is None:
                seen = np.zeros(1 << (8 * c), bool)
            key = a[:, :, 0].astype(np.uint32)
            for b in range(1, c):
                key = (key << 8) | a[:, :, b]
            seen[key.ravel()] = True
        n = int(seen.sum())
    r.close()
    print(f"size {w}x{h}")
    print(f"bands {c}")
    print(f"colors {n}")


if __name__ == "__main__":
    main()
