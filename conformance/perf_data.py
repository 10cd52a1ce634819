"""The Python side of `cargo xtask perf data` (anndata + scanpy + pynndescent).

    python perf_data.py read FILE.h5ad
    python perf_data.py pipeline FILE.h5ad
    python perf_data.py knn FILE.h5ad PCA.f32 TRUTH.u32

Prints one JSON line with the timed seconds (and recall for knn).
"""
import json
import sys
import time

import numpy as np

step, path = sys.argv[1], sys.argv[2]
if step == "read":
    import anndata as ad

    t = time.perf_counter()
    a = ad.read_h5ad(path)
    print(json.dumps({"seconds": time.perf_counter() - t, "nnz": int(a.X.nnz)}))
elif step == "pipeline":
    import anndata as ad
    import scanpy as sc

    a = ad.read_h5ad(path)
    t = time.perf_counter()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=1000, batch_key="batch", subset=True)
    sc.pp.pca(a, n_comps=50, svd_solver="arpack")
    print(json.dumps({"seconds": time.perf_counter() - t}))
elif step == "knn":
    from pynndescent import NNDescent

    x = np.fromfile(sys.argv[3], dtype="<f4").reshape(-1, 50)
    truth = np.fromfile(sys.argv[4], dtype="<u4")
    n = x.shape[0]
    q = truth[: truth.size // 15 * 15].reshape(-1, 15)
    stride = max(1, n // q.shape[0])
    qs = np.arange(q.shape[0]) * stride

    def run():
        nnd = NNDescent(x, n_neighbors=15, random_state=0, low_memory=True, n_trees=min(64, 5 + int(round(np.sqrt(n) / 20))), n_iters=max(5, int(round(np.log2(n)))), max_candidates=60, n_jobs=-1)
        return nnd.neighbor_graph[0]

    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    t = time.perf_counter()
    idx = run()
    sec = time.perf_counter() - t
    hit = sum(len(set(idx[i][1:]) & set(q[k][1:])) for k, i in enumerate(qs))
    print(json.dumps({"seconds": sec, "first_call_seconds": first, "recall": hit / (q.shape[0] * 14)}))
else:
    raise SystemExit(f"unknown step {step}")
