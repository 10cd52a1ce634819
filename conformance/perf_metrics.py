"""The Python side of `cargo xtask perf metrics`: scib-metrics on the same simulated embedding.

    python perf_metrics.py DIR [--warmup]

Reads DIR/{embedding,pre}.f32 (n × 30) and DIR/{labels,batches}.u32 and times, per metric, the
calls scSSL-Bench's Benchmarker makes (pynndescent 90-NN once, then every metric). With
--warmup it first runs everything on 1,000 cells and reports that time as JIT compilation.
Prints one JSON line.
"""
import json
import os
import random
import sys
import time

import numpy as np
import scib_metrics
from scib_metrics.nearest_neighbors import pynndescent


def load(d):
    x = np.fromfile(os.path.join(d, "embedding.f32"), dtype="<f4").reshape(-1, 30)
    pre = np.fromfile(os.path.join(d, "pre.f32"), dtype="<f4").reshape(-1, 30)
    lab = np.array([f"t{v}" for v in np.fromfile(os.path.join(d, "labels.u32"), dtype="<u4")])
    bat = np.array([f"b{v}" for v in np.fromfile(os.path.join(d, "batches.u32"), dtype="<u4")])
    return x, pre, lab, bat


def run(x, pre, lab, bat):
    t = {}
    s = time.perf_counter()
    nn = pynndescent(x, n_neighbors=90, random_state=0, n_jobs=-1)
    t["neighbors"] = time.perf_counter() - s
    nn15, nn50 = nn.subset_neighbors(15), nn.subset_neighbors(50)
    random.seed(42)
    calls = [
        ("isolated_labels", lambda: scib_metrics.isolated_labels(x, lab, bat)),
        ("nmi_ari_cluster_labels_leiden", lambda: scib_metrics.nmi_ari_cluster_labels_leiden(nn15, lab, optimize_resolution=True)),
        ("silhouette_label", lambda: scib_metrics.silhouette_label(x, lab)),
        ("clisi_knn", lambda: scib_metrics.clisi_knn(nn, lab)),
        ("silhouette_batch", lambda: scib_metrics.silhouette_batch(x, lab, bat)),
        ("ilisi_knn", lambda: scib_metrics.ilisi_knn(nn, bat)),
        ("kbet_per_label", lambda: scib_metrics.kbet_per_label(nn50, bat, lab)),
        ("graph_connectivity", lambda: scib_metrics.graph_connectivity(nn15, lab)),
        ("pcr_comparison", lambda: scib_metrics.pcr_comparison(pre, x, bat, categorical=True)),
    ]
    for name, f in calls:
        s = time.perf_counter()
        try:
            f()
        except Exception as e:  # a failing metric is reported, the others still run
            t[name + "_error"] = repr(e)
        t[name] = time.perf_counter() - s
    return t


d = sys.argv[1]
out = {}
if "--warmup" in sys.argv:
    x, pre, lab, bat = load(d)
    s = time.perf_counter()
    run(x[:1000], pre[:1000], lab[:1000], bat[:1000])
    out["jit_seconds"] = time.perf_counter() - s
x, pre, lab, bat = load(d)
s = time.perf_counter()
out["timings"] = run(x, pre, lab, bat)
out["seconds"] = time.perf_counter() - s
print(json.dumps(out))
