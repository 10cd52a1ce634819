"""Every metric function against the goldens scib-metrics computed on the same embeddings
(conformance/make_metric_fixtures.py), within the metrics specification's tolerances."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import scssl
from scssl.nearest_neighbors import NeighborsResults, nndescent

FIXTURES = Path(__file__).resolve().parents[2] / "conformance" / "fixtures" / "metrics"


def load(name):
    d = FIXTURES / name
    meta = json.loads((d / "golden.json").read_text())
    n, dim, k = meta["n"], meta["d"], meta["k"]
    f32 = lambda f, shape: np.fromfile(d / f, dtype="<f4").reshape(shape)
    u32 = lambda f: np.fromfile(d / f, dtype="<u4")
    return {
        "x": f32("embedding.f32", (n, dim)),
        "pre": f32("pre.f32", (n, dim)),
        # the labels as scib-metrics saw them: strings
        "labels": np.array([f"type_{v}" for v in u32("labels.u32")]),
        "batches": np.array([f"batch_{v}" for v in u32("batches.u32")]),
        "nn": NeighborsResults(
            indices=u32("knn_indices.u32").reshape(n, k).astype(np.int64),
            distances=f32("knn_distances.f32", (n, k)),
        ),
        "golden": meta["metrics"],
    }


CASES = ["mixed", "batchy"]


@pytest.mark.parametrize("name", CASES)
def test_embedding_metrics_equal_scib_metrics(name):
    c = load(name)
    g = c["golden"]
    assert scssl.silhouette_label(c["x"], c["labels"]) == pytest.approx(g["silhouette_label"], abs=1e-4)
    assert scssl.isolated_labels(c["x"], c["labels"], c["batches"]) == pytest.approx(
        g["isolated_labels"], abs=1e-4)
    assert scssl.silhouette_batch(c["x"], c["labels"], c["batches"]) == pytest.approx(
        g["silhouette_batch"], abs=1e-4)
    assert scssl.pcr_comparison(c["pre"], c["x"], c["batches"], categorical=True) == pytest.approx(
        g["pcr_comparison"], abs=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_graph_metrics_on_scib_metrics_own_neighbours(name):
    c = load(name)
    g, nn = c["golden"], c["nn"]
    assert scssl.clisi_knn(nn, c["labels"]) == pytest.approx(g["clisi_knn"], abs=1e-4)
    assert scssl.ilisi_knn(nn, c["batches"]) == pytest.approx(g["ilisi_knn"], abs=1e-4)
    assert scssl.graph_connectivity(nn.subset_neighbors(15), c["labels"]) == pytest.approx(
        g["graph_connectivity"], abs=1e-4)
    leiden = scssl.nmi_ari_cluster_labels_leiden(nn.subset_neighbors(15), c["labels"])
    assert set(leiden) == {"nmi", "ari"}
    assert leiden["nmi"] == pytest.approx(g["nmi_ari_cluster_labels_leiden_nmi"], abs=0.02)
    assert leiden["ari"] == pytest.approx(g["nmi_ari_cluster_labels_leiden_ari"], abs=0.02)
    assert scssl.kbet_per_label(nn.subset_neighbors(50), c["batches"], c["labels"]) == pytest.approx(
        g["kbet_per_label"], abs=0.03)


@pytest.mark.parametrize("name", CASES)
def test_our_neighbours_give_the_same_values(name):
    c = load(name)
    nn = nndescent(c["x"], n_neighbors=90)
    assert nn.n_neighbors == 90 and nn.n_samples == c["x"].shape[0]
    assert (nn.indices[:, 0] == np.arange(nn.n_samples)).all()
    assert scssl.clisi_knn(nn, c["labels"]) == pytest.approx(c["golden"]["clisi_knn"], abs=1e-3)
    assert scssl.ilisi_knn(nn, c["batches"]) == pytest.approx(c["golden"]["ilisi_knn"], abs=1e-3)


def test_options_and_return_types_follow_scib_metrics():
    c = load("mixed")
    x, labels, batches, nn = c["x"], c["labels"], c["batches"], c["nn"]
    s = scssl.silhouette_label(x, labels)
    assert scssl.silhouette_label(x, labels, rescale=False) == pytest.approx(2 * s - 1)
    per_cell = scssl.clisi_knn(nn, labels, return_all=True)
    assert per_cell.shape == (x.shape[0],)
    assert float(np.median(per_cell)) == pytest.approx(scssl.clisi_knn(nn, labels))
    one = scssl.nmi_ari_cluster_labels_leiden(nn.subset_neighbors(15), labels,
                                              optimize_resolution=False, resolution=1.0)
    assert 0 <= one["nmi"] <= 1
    assert 0 <= scssl.bras(x, labels, batches) <= 1
    # labels of any dtype: integer codes give the same value as their names
    codes = np.unique(labels, return_inverse=True)[1]
    assert scssl.silhouette_label(x, codes) == pytest.approx(s)
    import pandas as pd
    assert scssl.silhouette_label(x, pd.Categorical(labels)) == pytest.approx(s)


def test_undefined_metrics_are_nan_and_bad_input_is_a_value_error():
    c = load("mixed")
    x, labels = c["x"], c["labels"]
    one_batch = np.zeros(x.shape[0], dtype=int)
    assert math.isnan(scssl.ilisi_knn(c["nn"], one_batch))
    assert math.isnan(scssl.silhouette_batch(x, labels, one_batch))
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3, column 2"):
        scssl.silhouette_label(bad, labels)
    with pytest.raises(ValueError, match="entries"):
        scssl.silhouette_label(x, labels[:-1])
    with pytest.raises(ValueError, match="missing values"):
        scssl.silhouette_label(x, np.array([None] + list(labels[1:]), dtype=object))
    with pytest.raises(ValueError, match="NeighborsResults"):
        scssl.clisi_knn(x, labels)
    with pytest.raises(ValueError, match="not supported"):
        scssl.kbet_per_label(c["nn"], c["batches"], labels, alpha=0.1)


def test_annotation_and_modality_prediction():
    c = load("mixed")
    x, labels = c["x"], c["labels"]
    ref, query = x[:400], x[400:]
    a = scssl.knn_annotation(ref, labels[:400], query, labels[400:])
    assert set(a) == {"all", "shared_types"}
    assert 0.5 < a["all"]["accuracy"] <= 1 and a["all"]["n_query"] == 200
    protein = x @ np.random.default_rng(0).normal(size=(x.shape[1], 5)).astype(np.float32)
    pred, scores = scssl.predict_modality(ref, protein[:400], query, protein[400:])
    assert pred.shape == (200, 5) and scores["pearson_mean"] > 0.5
