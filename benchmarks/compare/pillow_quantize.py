#!/usr/bin/python3
"""Pillow's k-colour quantiser, as compare.sh's PNG rows run it: median cut refined by one
k-means pass, no dithering (Pillow dithers only when it converts to "P", not in quantize),
saved as a palette PNG with Pillow's defaults.

usage: pillow_quantize.py IN OUT.png K

The whole image is decoded in memory (Pillow holds RGB as 4 bytes a pixel), which is what
this row measures against chunkmeans."""

import sys

from PIL import Image


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Image.MAX_IMAGE_PIXELS = None  # past 179 MP Pillow refuses a "decompression bomb"
    Image.open(src).convert("RGB").quantize(k, method=Image.Quantize.MEDIANCUT,
                                            kmeans=1).save(out, format="PNG")


if __name__ == "__main__":
    main()
