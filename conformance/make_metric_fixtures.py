"""Golden values for scssl-metrics, computed with scib-metrics on committed fixture embeddings.

    python conformance/make_metric_fixtures.py

scib-metrics 0.6.x needs Python >= 3.12; this machine's Python is 3.11, so the goldens come
from scib-metrics 0.5.10, whose metric values equal 0.6.1's except for Leiden seeding and
three error paths (metrics.md, "Both versions give the same metric values").

Writes conformance/fixtures/metrics/: for each case, the embedding (f32), the pre-integration
embedding (f32), labels and batches (u32), the exact pynndescent 90-NN arrays scib-metrics used
(u32 indices, f32 distances), and golden.json with every metric value.
"""
import json
import os
import random
from importlib.metadata import version

import numpy as np
import scib_metrics
from scib_metrics.nearest_neighbors import pynndescent

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "metrics")


def case(name, n, d, n_types, n_batches, batch_shift, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_types, size=n)
    batches = rng.integers(0, n_batches, size=n)
    centers = rng.normal(0, 3, size=(n_types, d))
    shifts = rng.normal(0, batch_shift, size=(n_batches, d))
    x = (centers[labels] + shifts[batches] + rng.normal(0, 1, size=(n, d))).astype(np.float32)
    pre = (centers[labels] + 3 * shifts[batches] + rng.normal(0, 1, size=(n, d))).astype(np.float32)
    nn = pynndescent(x, n_neighbors=90, random_state=0, n_jobs=1)
    nn15, nn50 = nn.subset_neighbors(15), nn.subset_neighbors(50)
    lab = np.array([f"type_{l}" for l in labels])
    bat = np.array([f"batch_{b}" for b in batches])
    res = {
        "isolated_labels": float(scib_metrics.isolated_labels(x, lab, bat)),
        "silhouette_label": float(scib_metrics.silhouette_label(x, lab)),
        "clisi_knn": float(scib_metrics.clisi_knn(nn, lab)),
        "silhouette_batch": float(scib_metrics.silhouette_batch(x, lab, bat)),
        "ilisi_knn": float(scib_metrics.ilisi_knn(nn, bat)),
        "graph_connectivity": float(scib_metrics.graph_connectivity(nn15, lab)),
        "pcr_comparison": float(scib_metrics.pcr_comparison(pre, x, bat, categorical=True)),
    }
    # 0.5.x leaves igraph's RNG unseeded: seed Python's `random`, which igraph draws from
    random.seed(42)
    leiden = scib_metrics.nmi_ari_cluster_labels_leiden(nn15, lab, optimize_resolution=True)
    res["nmi_ari_cluster_labels_leiden_nmi"] = float(leiden["nmi"])
    res["nmi_ari_cluster_labels_leiden_ari"] = float(leiden["ari"])
    try:
        res["kbet_per_label"] = float(scib_metrics.kbet_per_label(nn50, bat, lab))
    except Exception as e:  # kept for later sessions; not all versions run on current numpy
        res["kbet_per_label_error"] = repr(e)
    d_ = os.path.join(OUT, name)
    os.makedirs(d_, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(d_, "embedding.f32"))
    pre.astype("<f4").tofile(os.path.join(d_, "pre.f32"))
    labels.astype("<u4").tofile(os.path.join(d_, "labels.u32"))
    batches.astype("<u4").tofile(os.path.join(d_, "batches.u32"))
    nn.indices.astype("<u4").tofile(os.path.join(d_, "knn_indices.u32"))
    nn.distances.astype("<f4").tofile(os.path.join(d_, "knn_distances.f32"))
    meta = {"n": n, "d": d, "k": 90, "metrics": res, "versions": {"scib-metrics": version("scib-metrics"), "jax": version("jax"), "pynndescent": version("pynndescent")}}
    with open(os.path.join(d_, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, res)


if __name__ == "__main__":
    case("mixed", 600, 10, 6, 3, 0.3, 1)
    case("batchy", 500, 8, 4, 2, 3.0, 2)
