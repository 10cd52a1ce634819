"""scib-metrics' metric functions with their names, signatures and return types (0.6), computed
by scssl-metrics. Values equal scib-metrics' within the project's metrics specification
(1e-4 for silhouettes, LISI, graph connectivity and PCR; 0.02 for Leiden NMI/ARI; 0.03 for
kBET). Where a metric is undefined for the input (one batch, one label, no batch variance)
the function returns NaN, as scib-metrics' arithmetic does."""
from __future__ import annotations

import math

import numpy as np

from . import _core
from ._inputs import codes, embedding
from .nearest_neighbors import NeighborsResults


def _nan(v):
    return math.nan if v is None else float(v)


def _neighbors(X, what="X") -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(X, NeighborsResults):
        raise ValueError(f"{what} must be a NeighborsResults (scssl.nearest_neighbors.nndescent)")
    return X._arrays()


def _only_default(name: str, value, default, why: str):
    if value != default:
        raise ValueError(f"{name}={value!r} is not supported: {why}")


def silhouette_label(X, labels, rescale: bool = True, chunk_size: int = 256) -> float:
    """Average silhouette width of the labels; rescaled to [0, 1] as (s + 1)/2 by default."""
    X = embedding(X)
    v = _core.silhouette_label(X, codes(labels, "labels", X.shape[0]))
    return float(v) if rescale else 2.0 * float(v) - 1.0


def isolated_labels(X, labels, batch, rescale: bool = True, iso_threshold=None) -> float:
    """Silhouette of the isolated labels: those present in the fewest batches."""
    _only_default(
        "iso_threshold", iso_threshold, None,
        "scssl takes the labels present in the fewest batches, scib-metrics' default",
    )
    X = embedding(X)
    n = X.shape[0]
    v = _core.isolated_labels(X, codes(labels, "labels", n), codes(batch, "batch", n))
    return float(v) if rescale else 2.0 * float(v) - 1.0


def silhouette_batch(X, labels, batch, rescale: bool = True, chunk_size: int = 256) -> float:
    """Batch silhouette within each label: 1 − |s| per cell (rescaled), averaged per label."""
    X = embedding(X)
    n = X.shape[0]
    v = _nan(_core.silhouette_batch(X, codes(labels, "labels", n), codes(batch, "batch", n)))
    return v if rescale else 1.0 - v


def bras(X, labels, batch, chunk_size: int = 256, metric: str = "cosine",
         between_cluster_distances: str = "mean_other") -> float:
    """BRAS (scib-metrics ≥ 0.6): the batch silhouette with cosine distances and the mean
    distance to the other batches."""
    _only_default("metric", metric, "cosine", "BRAS is computed with cosine distances")
    _only_default("between_cluster_distances", between_cluster_distances, "mean_other",
                  "BRAS uses the mean distance to the other batches")
    X = embedding(X)
    n = X.shape[0]
    return _nan(_core.bras(X, codes(labels, "labels", n), codes(batch, "batch", n)))


def nmi_ari_cluster_labels_leiden(X: NeighborsResults, labels, optimize_resolution: bool = True,
                                  resolution: float = 1.0, n_jobs: int = 1,
                                  seed: int = 0) -> dict[str, float]:
    """NMI and ARI of Leiden clusters of the kNN graph's UMAP connectivities against the labels;
    with ``optimize_resolution`` the resolution (0.2, 0.4, …, 2.0) with the best NMI."""
    idx, dist = _neighbors(X)
    nmi, ari, _ = _core.nmi_ari_cluster_labels_leiden(
        idx, dist, codes(labels, "labels", idx.shape[0]),
        None if optimize_resolution else float(resolution), int(seed),
    )
    return {"nmi": float(nmi), "ari": float(ari)}


def nmi_ari_cluster_labels_kmeans(X, labels, seed: int = 0) -> dict[str, float]:
    """NMI and ARI of k-means clusters (k = the number of labels; 10 random starts, the
    lowest mean distance kept, as scib-metrics' ``KMeans``) against the labels."""
    X = embedding(X)
    nmi, ari = _core.nmi_ari_cluster_labels_kmeans(X, codes(labels, "labels", X.shape[0]), int(seed))
    return {"nmi": float(nmi), "ari": float(ari)}


def _lisi(X, values, what, perplexity):
    idx, dist = _neighbors(X)
    c = codes(values, what, idx.shape[0])
    if perplexity is None:
        perplexity = max(idx.shape[1] // 3, 1)
    return _core.lisi_knn(idx, dist, c, float(perplexity)), int(c.max()) + 1 if c.size else 0


def clisi_knn(X: NeighborsResults, labels, perplexity: float | None = None,
              return_all: bool = False):
    """cLISI: (L − LISI)/(L − 1) per cell over the labels; the median unless ``return_all``."""
    lisi, n_labels = _lisi(X, labels, "labels", perplexity)
    if n_labels < 2:  # nothing to conserve: undefined
        return np.full(lisi.shape, np.nan) if return_all else math.nan
    scores = (n_labels - lisi) / (n_labels - 1)
    return scores if return_all else float(np.nanmedian(scores))


def ilisi_knn(X: NeighborsResults, batches, perplexity: float | None = None,
              return_all: bool = False):
    """iLISI: (LISI − 1)/(B − 1) per cell over the batches; the median unless ``return_all``."""
    lisi, n_batches = _lisi(X, batches, "batches", perplexity)
    if n_batches < 2:  # nothing to correct: undefined
        return np.full(lisi.shape, np.nan) if return_all else math.nan
    scores = (lisi - 1) / (n_batches - 1)
    return scores if return_all else float(np.nanmedian(scores))


def kbet_per_label(X: NeighborsResults, batches, labels, alpha: float = 0.05,
                   diffusion_n_comps: int = 100, return_df: bool = False) -> float:
    """kBET acceptance rate per label (scib's adaptation), averaged over labels."""
    _only_default("alpha", alpha, 0.05, "kBET is computed at scib-metrics' default level")
    _only_default("return_df", return_df, False, "scssl returns the score only")
    idx, dist = _neighbors(X)
    n = idx.shape[0]
    return _nan(_core.kbet_per_label(idx, dist, codes(batches, "batches", n),
                                     codes(labels, "labels", n)))


def graph_connectivity(X: NeighborsResults, labels) -> float:
    """Mean over labels of the largest connected component's share of the label's cells."""
    idx, dist = _neighbors(X)
    return float(_core.graph_connectivity(idx, dist, codes(labels, "labels", idx.shape[0])))


def pcr_comparison(X_pre, X_post, covariate, scale: bool = True, **kwargs) -> float:
    """(PCR before − PCR after)/PCR before, clipped at 0: how much of the variance the batch
    explained is gone after integration."""
    _only_default("scale", scale, True, "the comparison is scaled, scib-metrics' default")
    if kwargs.get("categorical", True) is not True:
        raise ValueError("categorical=False is not supported: the covariate is the batch")
    pre, post = embedding(X_pre, "X_pre"), embedding(X_post, "X_post")
    if pre.shape[0] != post.shape[0]:
        raise ValueError(f"X_pre has {pre.shape[0]} cells, X_post {post.shape[0]}")
    return _nan(_core.pcr_comparison(pre, post, codes(covariate, "covariate", pre.shape[0])))


def knn_annotation(reference, reference_labels, query, query_labels, k: int = 11) -> dict:
    """scSSL-Bench's cell-type annotation: a kNN classifier (k = 11) trained on the reference
    embedding predicts the query's labels; macro-F1 and accuracy over all query cells
    (``all``) and over the cell types both sides share (``shared_types``)."""
    ref, q = embedding(reference, "reference"), embedding(query, "query")
    ref_l, q_l = np.asarray(reference_labels), np.asarray(query_labels)
    if ref_l.shape[0] != ref.shape[0] or q_l.shape[0] != q.shape[0]:
        raise ValueError("each embedding needs one label per cell")
    # one code book for both sides, so equal names get equal codes
    both = codes(np.concatenate([ref_l.astype(str), q_l.astype(str)]), "labels")
    return _core.knn_annotation(ref, both[: ref.shape[0]].copy(), q,
                                both[ref.shape[0]:].copy(), int(k))


def predict_modality(reference, reference_protein, query, query_protein, k: int = 5):
    """scSSL-Bench's missing-modality prediction: each query cell's protein is the mean of its
    k = 5 nearest reference cells' (cosine); returns (prediction, scores) with the per-cell
    Pearson r's mean, min and max."""
    return _core.predict_modality(
        embedding(reference, "reference"), embedding(reference_protein, "reference_protein"),
        embedding(query, "query"), embedding(query_protein, "query_protein"), int(k),
    )
