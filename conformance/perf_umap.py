"""The Python side of `cargo xtask perf umap`.

    python perf_umap.py run FILE.h5ad LAYOUT.f32     umap-learn (defaults, no random_state, so
                                                     its parallel SGD) on obsm['X_pca']
    python perf_umap.py score FILE.h5ad LAYOUT.f32   neighbourhood preservation (k = 15) of a layout

Each prints one JSON line.
"""
import json
import sys
import time
import warnings

import anndata as ad
import numpy as np

warnings.filterwarnings("ignore")
mode, path, layout_path = sys.argv[1:4]
x = ad.read_h5ad(path, backed="r").obsm["X_pca"][:].astype(np.float32)
if mode == "run":
    import umap

    t = time.time()
    layout = umap.UMAP().fit_transform(x)
    seconds = time.time() - t
    layout.astype("<f4").tofile(layout_path)
    print(json.dumps({"seconds": seconds, "cells": len(x)}))
else:
    from sklearn.neighbors import NearestNeighbors

    low = np.fromfile(layout_path, dtype="<f4").reshape(len(x), 2)
    k = 15
    a = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1).fit(low).kneighbors(low, return_distance=False)[:, 1:]
    kept = np.mean([len(set(p) & set(q)) / k for p, q in zip(a, b)])
    print(json.dumps({"preservation": float(kept)}))
