#!/usr/bin/python3
"""The out-of-core Python way: a dask.array over the TIFF's tiles (tifffile's zarr store),
scikit-learn's MiniBatchKMeans fitted on a seeded random sample of pixels, then map_blocks
predict over the whole array, written tile row by tile row with tifffile (tiled 512, deflate).

usage: dask_kmeans.py IN.tif OUT.tif K [SAMPLE_PIXELS]

The sample: 4096 random pixels from each of SAMPLE_PIXELS/4096 random chunks (default
262144 pixels from 64 chunks, all chunks when there are fewer), read in parallel by dask.
MiniBatchKMeans(n_clusters=K, random_state=0, n_init=3) on it (float32)."""

import sys

import dask
import dask.array as da
import numpy as np
import tifffile
import zarr

from tiffio import log, ncpu, write_tiled


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n_sample = int(sys.argv[4]) if len(sys.argv) == 5 else 262144
    from sklearn.cluster import MiniBatchKMeans

    tool = "dask"
    dask.config.set(scheduler="threads", num_workers=ncpu())
    store = tifffile.imread(src, aszarr=True)
    x = da.from_zarr(zarr.open(store, mode="r"))
    if x.ndim == 2:
        x = x[:, :, None]
    h, w, c = x.shape
    log(tool, f"{w}x{h}x{c} as {x.numblocks[0]}x{x.numblocks[1]} chunks of {x.chunksize}")

    rng = np.random.default_rng(0)
    per_block = 4096
    nb_y, nb_x = x.numblocks[0], x.numblocks[1]
    n_blocks = min(nb_y * nb_x, max(1, n_sample // per_block))
    picks = rng.choice(nb_y * nb_x, size=n_blocks, replace=False)

    def sample_block(block, seed):
        p = block.reshape(-1, block.shape[-1])
        r = np.random.default_rng(seed).integers(0, p.shape[0], size=min(per_block, p.shape[0]))
        return p[r].astype(np.float32)

    parts = [dask.delayed(sample_block)(x.blocks[int(i) // nb_x, int(i) % nb_x], int(i))
             for i in picks]
    sample = np.concatenate(dask.compute(*parts))
    log(tool, f"sample of {sample.shape[0]} pixels from {n_blocks} chunks; fitting k={k}")
    km = MiniBatchKMeans(n_clusters=k, random_state=0, n_init=3).fit(sample)
    centres = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
    log(tool, f"fitted in {km.n_iter_} steps; predicting and writing {dst}")

    def recolour(block):
        p = block.reshape(-1, block.shape[-1]).astype(np.float32)
        return centres[km.predict(p)].reshape(block.shape)

    y = x.map_blocks(recolour, dtype=np.uint8)

    def bands():  # one row of output tiles at a time, its chunks computed in parallel
        for i, y0 in enumerate(range(0, h, 512)):
            if i % 16 == 0:
                log(tool, f"row {y0} of {h}")
            yield y[y0:y0 + 512].compute()

    write_tiled(dst, h, w, c, bands(), tile=512)
    store.close()
    log(tool, "done")


if __name__ == "__main__":
    main()
