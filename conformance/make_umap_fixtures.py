"""Goldens for scssl-data's UMAP (`scssl_data::umap`) from umap-learn itself.

Writes fixtures/umap/:
  blobs.f32        a 1,500 × 16 float32 embedding (little-endian, row-major): 8 Gaussian
                   clusters of different sizes and spreads, some of them overlapping
  umap_golden.json umap-learn's find_ab_params for (spread, min_dist) = (1, 0.1) and (1, 0.5),
                   and the neighbourhood preservation of its default layout (share of each
                   point's 15 nearest neighbours in the embedding, self excluded, that are
                   among its 15 nearest in the layout) for seeds 0, 1, 2

    python conformance/make_umap_fixtures.py   (umap-learn from PyPI)
"""
import json
import os

import numpy as np
import umap
from sklearn.neighbors import NearestNeighbors

OUT = os.path.join(os.path.dirname(__file__), "fixtures", "umap")
os.makedirs(OUT, exist_ok=True)

rng = np.random.default_rng(7)
sizes = [400, 300, 250, 200, 150, 100, 60, 40]
centres = rng.normal(scale=6.0, size=(len(sizes), 16))
centres[1] = centres[0] + 2.5  # two clusters that touch
parts = [rng.normal(loc=c, scale=0.6 + 0.2 * i, size=(s, 16)) for i, (c, s) in enumerate(zip(centres, sizes))]
x = np.concatenate(parts).astype(np.float32)
x = x[rng.permutation(len(x))]
assert x.shape == (1500, 16)
x.astype("<f4").tofile(os.path.join(OUT, "blobs.f32"))


def preservation(high, low, k=15):
    a = NearestNeighbors(n_neighbors=k + 1).fit(high).kneighbors(high, return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1).fit(low).kneighbors(low, return_distance=False)[:, 1:]
    return float(np.mean([len(set(p) & set(q)) / k for p, q in zip(a, b)]))


kept = []
for seed in (0, 1, 2):
    layout = umap.UMAP(random_state=seed).fit_transform(x)
    kept.append(preservation(x, layout))
golden = {
    "umap_learn": umap.__version__,
    "ab_params": {
        "spread_1_min_dist_0.1": list(map(float, umap.umap_.find_ab_params(1.0, 0.1))),
        "spread_1_min_dist_0.5": list(map(float, umap.umap_.find_ab_params(1.0, 0.5))),
    },
    "preservation_k15_per_seed": kept,
    "preservation_k15_mean": float(np.mean(kept)),
}
with open(os.path.join(OUT, "umap_golden.json"), "w") as f:
    json.dump(golden, f, indent=1)
print(json.dumps(golden, indent=1))
