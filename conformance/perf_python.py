"""One side of `cargo xtask perf python`: the same metric set (isolated labels, Leiden NMI/ARI,
label silhouette, cLISI; BRAS, iLISI, kBET, graph connectivity, PCR comparison) through a
Benchmarker, either scssl's (`ours`, the `scssl` package) or scib-metrics' (`scib`), on the same simulated
embedding (30 dimensions, 10 cell types, 4 batches with a batch shift; the pre-integration
embedding has a three times larger shift), in one process.

    python perf_python.py {ours,scib} CELLS

scib-metrics compiles its JAX functions on first use: both sides first run the whole
Benchmarker on 1,000 cells (not timed), so the timed run excludes compilation. Prints one JSON
line: seconds (prepare + benchmark), each part, peak RSS of the process, and the Total.
"""
import json
import resource
import sys
import time
import warnings

import anndata as ad
import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
side, n = sys.argv[1], int(sys.argv[2])

if side == "ours":
    from scssl.benchmark import BatchCorrection, Benchmarker, BioConservation
else:
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

# the same metric set on both sides: scSSL-Bench's bio set (Leiden NMI/ARI) and the
# Benchmarker's batch set (BRAS in scib-metrics 0.5.10 and 0.6)
bio = BioConservation(nmi_ari_cluster_labels_leiden=True, nmi_ari_cluster_labels_kmeans=False)
batch = BatchCorrection()


def simulated(n, d=30, types=10, batches=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, types, n)
    bs = rng.integers(0, batches, n)
    centers = rng.normal(0, 3, (types, d))
    shifts = rng.normal(0, 0.5, (batches, d))
    emb = (centers[labels] + shifts[bs] + rng.normal(0, 1, (n, d))).astype(np.float32)
    pre = (centers[labels] + 3 * shifts[bs] + rng.normal(0, 1, (n, d))).astype(np.float32)
    a = ad.AnnData(
        X=np.zeros((n, 1), dtype=np.float32),
        obs=pd.DataFrame({"batch": pd.Categorical([f"b{b}" for b in bs]),
                          "cell_type": pd.Categorical([f"t{t}" for t in labels])},
                         index=[f"c{i}" for i in range(n)]),
    )
    a.obsm["X_emb"], a.obsm["X_pre"] = emb, pre
    return a


def run(adata):
    bm = Benchmarker(adata, "batch", "cell_type", ["X_emb"], bio_conservation_metrics=bio,
                     batch_correction_metrics=batch, pre_integrated_embedding_obsm_key="X_pre",
                     n_jobs=-1, progress_bar=False)
    t0 = time.perf_counter()
    bm.prepare()
    t1 = time.perf_counter()
    bm.benchmark()
    t2 = time.perf_counter()
    return bm.get_results(min_max_scale=False), t1 - t0, t2 - t1


run(simulated(1000, seed=1))  # warm-up (scib-metrics: JAX compilation)
df, prep, bench = run(simulated(n))
print(json.dumps({
    "side": side, "cells": n, "seconds": prep + bench, "prepare_s": prep, "benchmark_s": bench,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "total": float(df.loc["X_emb", "Total"]),
}))
