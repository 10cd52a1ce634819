"""scssl: scIB metrics as scib-metrics computes them, in Rust.

A drop-in for scib-metrics: ``import scssl as scib_metrics`` gives the same metric functions
(names, arguments, return types of scib-metrics 0.6), ``scssl.nearest_neighbors`` the
neighbour search and ``NeighborsResults``, and ``scssl.benchmark`` the ``Benchmarker``. The work
runs in Rust on all cores with the GIL released.
"""
from . import _core
from . import benchmark, nearest_neighbors
from ._metrics import (
    bras,
    clisi_knn,
    graph_connectivity,
    ilisi_knn,
    isolated_labels,
    kbet_per_label,
    knn_annotation,
    nmi_ari_cluster_labels_kmeans,
    nmi_ari_cluster_labels_leiden,
    pcr_comparison,
    predict_modality,
    silhouette_batch,
    silhouette_label,
)

__version__ = _core.__version__

__all__ = [
    "bras",
    "clisi_knn",
    "graph_connectivity",
    "ilisi_knn",
    "isolated_labels",
    "kbet_per_label",
    "benchmark",
    "knn_annotation",
    "nearest_neighbors",
    "nmi_ari_cluster_labels_kmeans",
    "nmi_ari_cluster_labels_leiden",
    "pcr_comparison",
    "predict_modality",
    "silhouette_batch",
    "silhouette_label",
]
