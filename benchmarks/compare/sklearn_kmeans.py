#!/usr/bin/python3
"""The in-memory way: read the whole TIFF with tifffile, fit scikit-learn's k-means on every
pixel, predict every pixel, write the recoloured image (tiled 512, deflate) with tifffile.

usage: sklearn_kmeans.py minibatch|kmeans IN.tif OUT.tif K

minibatch: MiniBatchKMeans(n_clusters=K, random_state=0, n_init=3) (scikit-learn 1.2's default
n_init, given explicitly); kmeans: KMeans(n_clusters=K, n_init=1, random_state=0), Lloyd.
Pixels go to scikit-learn as float64, what it makes of 8-bit input itself: with float32 its
Lloyd loop sums ~10^7 pixels per centre in float32 and, at 100 MP, ends far from the optimum."""

import sys

import numpy as np
import tifffile

from tiffio import log, ncpu, write_tiled


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("minibatch", "kmeans"):
        sys.exit(__doc__)
    mode, src, dst, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from sklearn.cluster import KMeans, MiniBatchKMeans

    tool = f"sklearn {mode}"
    log(tool, f"reading {src}")
    img = tifffile.imread(src, maxworkers=ncpu())
    if img.ndim == 2:
        img = img[:, :, None]
    h, w, c = img.shape
    x = img.reshape(-1, c).astype(np.float64)
    del img
    log(tool, f"{w}x{h}x{c}: fitting k={k} on {x.shape[0]} pixels")
    if mode == "minibatch":
        km = MiniBatchKMeans(n_clusters=k, random_state=0, n_init=3)
    else:
        km = KMeans(n_clusters=k, n_init=1, random_state=0)
    km.fit(x)
    log(tool, f"fitted in {km.n_iter_} iterations (inertia {km.inertia_:.6g}); predicting")
    labels = km.predict(x)
    del x
    centres = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
    log(tool, f"writing {dst}")
    out = centres[labels].reshape(h, w, c)
    del labels
    write_tiled(dst, h, w, c, (out[y:y + 512] for y in range(0, h, 512)))
    log(tool, "done")


if __name__ == "__main__":
    main()
