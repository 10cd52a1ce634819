"""scib-metrics' ``Benchmarker`` (``scib_metrics.benchmark``), computed by scssl-metrics.

The constructor, ``prepare``, ``benchmark``, ``get_results`` and ``plot_results_table`` take the
same arguments and return the same shapes as scib-metrics 0.6's, and ``BioConservation`` and
``BatchCorrection`` have its defaults (k-means NMI/ARI rather than Leiden, BRAS as the batch
silhouette; scib-metrics 0.5.10's Benchmarker has the same defaults). ``BatchCorrection``
also has ``silhouette_batch``, the batch silhouette that scSSL-Bench reports (and that
scib-metrics' Benchmarker used before BRAS); scSSL-Bench's whole set is
``scssl.benchmark.SCSSL_BENCH_BIO`` with ``SCSSL_BENCH_BATCH``.
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import _core, _metrics
from ._inputs import codes, embedding
from .nearest_neighbors import NeighborsResults, nndescent

Kwargs = dict[str, Any]
MetricType = bool | Kwargs

_METRIC_TYPE = "Metric Type"
_AGGREGATE_SCORE = "Aggregate score"

#: Metric result keys → the names of scib-metrics' results table, read off scssl-metrics'
#: metric registry (the names its bench reports use too).
metric_name_cleaner = {key: display for spec in _core.registry() for key, display, _ in spec["results"]}


@dataclass(frozen=True)
class BioConservation:
    """Bio-conservation metrics to run: ``True``/``False``, or a dict of keyword arguments."""

    isolated_labels: MetricType = True
    nmi_ari_cluster_labels_leiden: MetricType = False
    nmi_ari_cluster_labels_kmeans: MetricType = True
    silhouette_label: MetricType = True
    clisi_knn: MetricType = True


@dataclass(frozen=True)
class BatchCorrection:
    """Batch-correction metrics to run: ``True``/``False``, or a dict of keyword arguments.
    ``silhouette_batch`` is scSSL-Bench's batch silhouette (off by default, as in
    scib-metrics, whose Benchmarker uses BRAS)."""

    bras: MetricType = True
    silhouette_batch: MetricType = False
    ilisi_knn: MetricType = True
    kbet_per_label: MetricType = True
    graph_connectivity: MetricType = True
    pcr_comparison: MetricType = True


#: scSSL-Bench's metric set (Leiden NMI/ARI and the batch silhouette).
SCSSL_BENCH_BIO = BioConservation(nmi_ari_cluster_labels_leiden=True, nmi_ari_cluster_labels_kmeans=False)
SCSSL_BENCH_BATCH = BatchCorrection(bras=False, silhouette_batch=True)


# How each metric is called on one embedding: (function, what it reads)
_CALLS: dict[str, Callable] = {
    "isolated_labels": lambda e, f: f(e.X, e.labels, e.batch),
    "nmi_ari_cluster_labels_leiden": lambda e, f: f(e.nn[15], e.labels),
    "nmi_ari_cluster_labels_kmeans": lambda e, f: f(e.X, e.labels),
    "silhouette_label": lambda e, f: f(e.X, e.labels),
    "clisi_knn": lambda e, f: f(e.nn[90], e.labels),
    "graph_connectivity": lambda e, f: f(e.nn[15], e.labels),
    "bras": lambda e, f: f(e.X, e.labels, e.batch),
    "silhouette_batch": lambda e, f: f(e.X, e.labels, e.batch),
    "pcr_comparison": lambda e, f: f(e.X_pre, e.X, e.batch, categorical=True),
    "ilisi_knn": lambda e, f: f(e.nn[90], e.batch),
    "kbet_per_label": lambda e, f: f(e.nn[50], e.batch, e.labels),
}
_FUNCTIONS: dict[str, Callable] = {name: getattr(_metrics, name) for name in _CALLS}
# each metric's result keys, from the registry
_REGISTRY: dict[str, list[str]] = {spec["key"]: [r[0] for r in spec["results"]] for spec in _core.registry()}


@dataclass
class _Embedding:
    X: np.ndarray
    labels: np.ndarray
    batch: np.ndarray
    X_pre: np.ndarray
    nn: dict


def _progress(items, desc: str, enabled: bool):
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc)
    except ImportError:
        items = list(items)

        def gen():
            for i, item in enumerate(items):
                print(f"\r{desc}: {i + 1}/{len(items)}", end="", file=sys.stderr, flush=True)
                yield item
            print(file=sys.stderr)

        return gen()


class Benchmarker:
    """Benchmarking pipeline for the single-cell integration task (scib-metrics' signature).

    Parameters
    ----------
    adata
        AnnData with the embeddings in ``obsm`` and a normalised, non-integrated ``X``.
    batch_key, label_key
        ``obs`` columns of the batch and the cell type.
    embedding_obsm_keys
        ``obsm`` keys of the embeddings to score.
    bio_conservation_metrics, batch_correction_metrics
        Which metrics to run (``None`` turns a kind off).
    pre_integrated_embedding_obsm_key
        ``obsm`` key of a non-integrated embedding; ``None``: 50 PCs of ``X`` (as scanpy's
        ``tl.pca`` computes them, up to sign) are computed in ``prepare``.
    n_jobs
        Accepted for scib-metrics' signature: scssl uses every core (``RAYON_NUM_THREADS``
        limits it).
    progress_bar
        Show progress for ``prepare`` and ``benchmark``.
    """

    def __init__(self, adata, batch_key: str, label_key: str, embedding_obsm_keys: list[str],
                 bio_conservation_metrics: BioConservation | None = BioConservation(),
                 batch_correction_metrics: BatchCorrection | None = BatchCorrection(),
                 pre_integrated_embedding_obsm_key: str | None = None, n_jobs: int = 1,
                 progress_bar: bool = True):
        if bio_conservation_metrics is None and batch_correction_metrics is None:
            raise ValueError("Either batch or bio metrics must be defined.")
        for key, what in ((batch_key, "batch_key"), (label_key, "label_key")):
            if key not in adata.obs:
                raise KeyError(f"{what} {key!r} is not a column of adata.obs "
                               f"(columns: {', '.join(map(str, adata.obs.columns))})")
        for key in embedding_obsm_keys:
            if key not in adata.obsm:
                raise KeyError(f"embedding {key!r} is not in adata.obsm "
                               f"(keys: {', '.join(adata.obsm.keys())})")
        if pre_integrated_embedding_obsm_key is not None and pre_integrated_embedding_obsm_key not in adata.obsm:
            raise KeyError(f"pre_integrated_embedding_obsm_key {pre_integrated_embedding_obsm_key!r} "
                           "is not in adata.obsm")
        self._adata = adata
        self._batch_key = batch_key
        self._label_key = label_key
        self._embedding_obsm_keys = list(embedding_obsm_keys)
        self._pre_integrated_embedding_obsm_key = pre_integrated_embedding_obsm_key
        self._bio_conservation_metrics = bio_conservation_metrics
        self._batch_correction_metrics = batch_correction_metrics
        self._n_jobs = n_jobs
        self._progress_bar = progress_bar
        self._neighbor_values = (15, 50, 90)
        self._emb: dict[str, _Embedding] = {}
        self._results = pd.DataFrame(columns=self._embedding_obsm_keys + [_METRIC_TYPE])
        self._prepared = False
        self._benchmarked = False
        self._metric_collection_dict = {}
        if bio_conservation_metrics is not None:
            self._metric_collection_dict["Bio conservation"] = bio_conservation_metrics
        if batch_correction_metrics is not None:
            self._metric_collection_dict["Batch correction"] = batch_correction_metrics

    def prepare(self, neighbor_computer: Callable[[np.ndarray, int], NeighborsResults] | None = None) -> None:
        """Computes the pre-integration PCA (when no key was given) and each embedding's
        90-nearest-neighbour graph (``neighbor_computer(X, 90)`` if given, else scssl's)."""
        from . import _core

        ad = self._adata
        if self._pre_integrated_embedding_obsm_key is None:
            pcs = _core.pca(embedding(ad.X, "adata.X"), 50)
            ad.obsm["X_pca"] = pcs
            self._pre_integrated_embedding_obsm_key = "X_pca"
        labels = np.asarray(ad.obs[self._label_key].values)
        batch = np.asarray(ad.obs[self._batch_key].values)
        pre = embedding(ad.obsm[self._pre_integrated_embedding_obsm_key], "the pre-integrated embedding")
        for key in _progress(self._embedding_obsm_keys, "Computing neighbors", self._progress_bar):
            X = embedding(ad.obsm[key], f"obsm[{key!r}]")
            k = max(self._neighbor_values)
            nn = neighbor_computer(X, k) if neighbor_computer is not None else nndescent(X, k)
            self._emb[key] = _Embedding(X=X, labels=labels, batch=batch, X_pre=pre,
                                        nn={n: nn.subset_neighbors(n) for n in self._neighbor_values})
        self._prepared = True

    def benchmark(self) -> None:
        """Runs every chosen metric on every embedding."""
        if self._benchmarked:
            warnings.warn("The benchmark has already been run. Running it again will overwrite the "
                          "previous results.", UserWarning)
        if not self._prepared:
            self.prepare()
        for key in _progress(self._embedding_obsm_keys, "Embeddings", self._progress_bar):
            e = self._emb[key]
            chosen = [(metric_type, name, use)
                      for metric_type, collection in self._metric_collection_dict.items()
                      for name, use in asdict(collection).items() if use]
            # the metrics with default settings in one call: one neighbour table, the label
            # silhouettes computed once, the metrics run concurrently
            shared = [name for _, name, use in chosen if use is True]
            values = {}
            if shared:
                n = e.X.shape[0]
                idx, dist = e.nn[max(self._neighbor_values)]._arrays()
                values, _ = _core.evaluate(e.X, codes(e.labels, "labels", n), codes(e.batch, "batch", n),
                                           shared, e.X_pre, idx, dist, 0)
            for metric_type, name, use in chosen:
                if use is True:
                    spec = _REGISTRY[name]
                    if len(spec) == 1:
                        self._set(name, key, values[spec[0]], metric_type)
                    else:
                        for result_key in spec:
                            self._set(result_key, key, values[result_key], metric_type)
                    continue
                fn = (lambda f, kw: (lambda *a, **k: f(*a, **{**kw, **k})))(_FUNCTIONS[name], use)
                value = _CALLS[name](e, fn)
                if isinstance(value, dict):
                    for sub, v in value.items():
                        self._set(f"{name}_{sub}", key, v, metric_type)
                else:
                    self._set(name, key, value, metric_type)
        self._benchmarked = True

    def _set(self, row: str, embedding_key: str, value, metric_type: str) -> None:
        self._results.loc[row, embedding_key] = np.nan if value is None else float(value)
        self._results.loc[row, _METRIC_TYPE] = metric_type

    def get_results(self, min_max_scale: bool = False, clean_names: bool = True) -> pd.DataFrame:
        """The results table: one row per embedding, one column per metric, the aggregates
        (Bio conservation, Batch correction, Total = 0.6·Bio + 0.4·Batch), and a last row
        ``Metric Type`` naming each column's kind."""
        df = self._results.transpose()
        df.index.name = "Embedding"
        df = df.loc[df.index != _METRIC_TYPE].astype(np.float64)
        if min_max_scale:
            lo, hi = df.min(axis=0), df.max(axis=0)
            span = (hi - lo).replace(0, 1.0)
            df = (df - lo) / span
        if clean_names:
            df = df.rename(columns=metric_name_cleaner)
        df = df.transpose()
        df[_METRIC_TYPE] = self._results[_METRIC_TYPE].values
        per_class = df.groupby(_METRIC_TYPE).mean().transpose()
        if self._batch_correction_metrics is not None and self._bio_conservation_metrics is not None:
            per_class["Total"] = 0.4 * per_class["Batch correction"] + 0.6 * per_class["Bio conservation"]
        df = pd.concat([df.transpose(), per_class], axis=1).astype(object)
        df.loc[_METRIC_TYPE, per_class.columns] = _AGGREGATE_SCORE
        return df

    def plot_results_table(self, min_max_scale: bool = False, show: bool = True,
                           save_dir: str | None = None):
        """The results table as scib-metrics draws it: a row per embedding ranked by Total, a
        coloured circle per metric, bars for the aggregates. Needs matplotlib; saves
        ``scib_results.svg`` (and ``.png``) in ``save_dir``. Returns the matplotlib figure."""
        from ._plot import results_table

        df = self.get_results(min_max_scale=min_max_scale)
        fig = results_table(df, _METRIC_TYPE, _AGGREGATE_SCORE)
        if save_dir is not None:
            import os

            os.makedirs(save_dir, exist_ok=True)
            fig.savefig(os.path.join(save_dir, "scib_results.svg"), facecolor=fig.get_facecolor(), dpi=300)
            fig.savefig(os.path.join(save_dir, "scib_results.png"), facecolor=fig.get_facecolor(), dpi=150)
        if show:
            import matplotlib.pyplot as plt

            plt.show()
        return fig


__all__ = ["Benchmarker", "BioConservation", "BatchCorrection", "SCSSL_BENCH_BIO", "SCSSL_BENCH_BATCH",
           "metric_name_cleaner"]
