"""Golden results table of scib-metrics' own `Benchmarker` on the committed metric fixtures, for
the `scssl` Python package's tests (scssl-py/tests/test_benchmarker.py).

    python conformance/make_benchmarker_fixtures.py

Builds the same AnnData as the tests (the `mixed` case: its embedding as obsm['scVI'], its
pre-integration embedding as obsm['Unintegrated'] and as the pre-integrated key), runs
scib-metrics' Benchmarker with Leiden and k-means NMI/ARI and its default batch set (BRAS,
iLISI, kBET, graph connectivity, PCR), and writes get_results(clean_names=False) and
get_results(min_max_scale=True) to fixtures/metrics/benchmarker_golden.json.
"""
import json
import os
import random
from importlib.metadata import version

import anndata as ad
import numpy as np
import pandas as pd
from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "fixtures", "metrics", "mixed")

meta = json.load(open(os.path.join(D, "golden.json")))
n, dim = meta["n"], meta["d"]
x = np.fromfile(os.path.join(D, "embedding.f32"), dtype="<f4").reshape(n, dim)
pre = np.fromfile(os.path.join(D, "pre.f32"), dtype="<f4").reshape(n, dim)
labels = np.array([f"type_{v}" for v in np.fromfile(os.path.join(D, "labels.u32"), dtype="<u4")])
batches = np.array([f"batch_{v}" for v in np.fromfile(os.path.join(D, "batches.u32"), dtype="<u4")])
adata = ad.AnnData(
    X=np.zeros((n, 1), dtype=np.float32),
    obs=pd.DataFrame({"batch": pd.Categorical(batches), "cell_type": pd.Categorical(labels)},
                     index=[f"c{i}" for i in range(n)]),
)
adata.obsm["scVI"] = x
adata.obsm["Unintegrated"] = pre
adata.obsm["X_pre"] = pre

random.seed(42)  # 0.5.x draws igraph's Leiden from Python's `random`
bm = Benchmarker(adata, "batch", "cell_type", ["Unintegrated", "scVI"],
                 bio_conservation_metrics=BioConservation(nmi_ari_cluster_labels_leiden=True,
                                                          nmi_ari_cluster_labels_kmeans=True),
                 batch_correction_metrics=BatchCorrection(),
                 pre_integrated_embedding_obsm_key="X_pre", n_jobs=1, progress_bar=False)
bm.benchmark()


def table(df):
    out = {}
    for emb in df.index:
        out[emb] = {c: (v if isinstance(v, str) else float(v)) for c, v in df.loc[emb].items()}
    return out


golden = {
    "case": "mixed",
    "embeddings": ["Unintegrated", "scVI"],
    "raw": table(bm.get_results(clean_names=False)),
    "clean_scaled": table(bm.get_results(min_max_scale=True)),
    "versions": {"scib-metrics": version("scib-metrics"), "anndata": version("anndata"),
                 "pynndescent": version("pynndescent")},
}
with open(os.path.join(HERE, "fixtures", "metrics", "benchmarker_golden.json"), "w") as f:
    json.dump(golden, f, indent=1)
print(json.dumps(golden["raw"], indent=1))
