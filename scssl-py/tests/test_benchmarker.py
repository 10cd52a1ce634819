"""The Benchmarker: scib-metrics' README example with only the import changed, the results
table's layout, and its values against the goldens scib-metrics computed on the same data."""
import json
from pathlib import Path

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from scssl.benchmark import (  # noqa: E402
    SCSSL_BENCH_BATCH,
    SCSSL_BENCH_BIO,
    BatchCorrection,
    Benchmarker,
    BioConservation,
)

FIXTURES = Path(__file__).resolve().parents[2] / "conformance" / "fixtures" / "metrics"


def fixture_adata(name="mixed"):
    d = FIXTURES / name
    meta = json.loads((d / "golden.json").read_text())
    n, dim = meta["n"], meta["d"]
    x = np.fromfile(d / "embedding.f32", dtype="<f4").reshape(n, dim)
    pre = np.fromfile(d / "pre.f32", dtype="<f4").reshape(n, dim)
    labels = np.array([f"type_{v}" for v in np.fromfile(d / "labels.u32", dtype="<u4")])
    batches = np.array([f"batch_{v}" for v in np.fromfile(d / "batches.u32", dtype="<u4")])
    rng = np.random.default_rng(0)
    adata = ad.AnnData(
        X=np.abs(pre @ rng.normal(size=(dim, 40))).astype(np.float32),
        obs=pd.DataFrame({"batch": pd.Categorical(batches), "cell_type": pd.Categorical(labels)},
                         index=[f"c{i}" for i in range(n)]),
    )
    adata.obsm["scVI"] = x
    adata.obsm["Unintegrated"] = pre
    adata.obsm["X_pre"] = pre
    return adata, meta["metrics"]


def test_the_scib_metrics_readme_example_runs_with_only_the_import_changed(tmp_path):
    adata, _ = fixture_adata()
    bm = Benchmarker(
        adata,
        batch_key="batch",
        label_key="cell_type",
        embedding_obsm_keys=["Unintegrated", "scVI"],
        n_jobs=6,
    )
    bm.benchmark()
    bm.plot_results_table(show=False, save_dir=str(tmp_path))
    df = bm.get_results()
    # scib-metrics 0.6's defaults: k-means NMI/ARI and BRAS
    assert list(df.index) == ["Unintegrated", "scVI", "Metric Type"]
    for col in ["Isolated labels", "KMeans NMI", "KMeans ARI", "Silhouette label", "cLISI", "BRAS",
                "iLISI", "KBET", "Graph connectivity", "PCR comparison", "Batch correction",
                "Bio conservation", "Total"]:
        assert col in df.columns, col
    assert df.loc["Metric Type", "cLISI"] == "Bio conservation"
    assert df.loc["Metric Type", "BRAS"] == "Batch correction"
    assert df.loc["Metric Type", "Total"] == "Aggregate score"
    assert (tmp_path / "scib_results.svg").stat().st_size > 1000
    assert (tmp_path / "scib_results.png").stat().st_size > 1000
    # the integrated embedding beats the unintegrated one on batch correction
    assert df.loc["scVI", "Batch correction"] > df.loc["Unintegrated", "Batch correction"]


def test_the_table_equals_scib_metrics_values_for_the_benchmarks_metric_set():
    adata, golden = fixture_adata()
    bm = Benchmarker(adata, "batch", "cell_type", ["scVI"],
                     bio_conservation_metrics=SCSSL_BENCH_BIO,
                     batch_correction_metrics=SCSSL_BENCH_BATCH,
                     pre_integrated_embedding_obsm_key="X_pre", progress_bar=False)
    bm.benchmark()
    raw = bm.get_results(clean_names=False)
    tolerance = {"nmi_ari_cluster_labels_leiden_nmi": 0.02, "nmi_ari_cluster_labels_leiden_ari": 0.02,
                 "kbet_per_label": 0.03}
    bio = ["isolated_labels", "nmi_ari_cluster_labels_leiden_nmi", "nmi_ari_cluster_labels_leiden_ari",
           "silhouette_label", "clisi_knn"]
    batch = ["silhouette_batch", "ilisi_knn", "kbet_per_label", "graph_connectivity", "pcr_comparison"]
    for key in bio + batch:
        assert raw.loc["scVI", key] == pytest.approx(golden[key], abs=tolerance.get(key, 1e-3)), key
    # the aggregates as scib-metrics forms them from those values
    want_bio = np.mean([golden[k] for k in bio])
    want_batch = np.mean([golden[k] for k in batch])
    assert raw.loc["scVI", "Bio conservation"] == pytest.approx(want_bio, abs=0.01)
    assert raw.loc["scVI", "Batch correction"] == pytest.approx(want_batch, abs=0.01)
    assert raw.loc["scVI", "Total"] == pytest.approx(0.6 * want_bio + 0.4 * want_batch, abs=0.01)
    scaled = bm.get_results(min_max_scale=True)
    assert scaled.loc["scVI", "Leiden NMI"] == 0.0  # one row: every column scales to 0


def test_metric_switches_and_keyword_arguments():
    adata, golden = fixture_adata()
    bm = Benchmarker(adata, "batch", "cell_type", ["scVI"],
                     bio_conservation_metrics=BioConservation(isolated_labels=False,
                                                              nmi_ari_cluster_labels_kmeans=False,
                                                              silhouette_label={"rescale": False},
                                                              clisi_knn=False),
                     batch_correction_metrics=None, progress_bar=False)
    bm.prepare()
    assert "X_pca" in adata.obsm and adata.obsm["X_pca"].shape == (adata.n_obs, 40)
    bm.benchmark()
    df = bm.get_results()
    assert list(df.columns) == ["Silhouette label", "Bio conservation"]
    # keyword arguments reach the metric: the unscaled silhouette
    assert df.loc["scVI", "Silhouette label"] == pytest.approx(2 * golden["silhouette_label"] - 1, abs=1e-4)
    with pytest.raises(ValueError, match="Either batch or bio"):
        Benchmarker(adata, "batch", "cell_type", ["scVI"], None, None)


def test_bad_input_raises_python_errors_with_our_messages():
    adata, _ = fixture_adata()
    with pytest.raises(KeyError, match="celltype"):
        Benchmarker(adata, "batch", "celltype", ["scVI"])
    with pytest.raises(KeyError, match="X_scanvi"):
        Benchmarker(adata, "batch", "cell_type", ["X_scanvi"])
    adata.obsm["scVI"][5, 1] = np.nan
    bm = Benchmarker(adata, "batch", "cell_type", ["scVI"], progress_bar=False)
    with pytest.raises(ValueError, match="row 5, column 1"):
        bm.benchmark()


def test_the_table_equals_scib_metrics_own_benchmarker():
    """scib-metrics 0.5.10's Benchmarker on the same AnnData and metric set
    (conformance/make_benchmarker_fixtures.py): same rows, columns, kinds and values."""
    golden = json.loads((FIXTURES / "benchmarker_golden.json").read_text())
    adata, _ = fixture_adata(golden["case"])
    bm = Benchmarker(adata, "batch", "cell_type", golden["embeddings"],
                     bio_conservation_metrics=BioConservation(nmi_ari_cluster_labels_leiden=True,
                                                              nmi_ari_cluster_labels_kmeans=True),
                     batch_correction_metrics=BatchCorrection(),
                     pre_integrated_embedding_obsm_key="X_pre", progress_bar=False)
    bm.benchmark()
    raw = bm.get_results(clean_names=False)
    want = golden["raw"]
    assert list(raw.index) == list(want)
    assert list(raw.columns) == list(want["Metric Type"])
    tolerance = {"nmi_ari_cluster_labels_leiden_nmi": 0.02, "nmi_ari_cluster_labels_leiden_ari": 0.02,
                 "nmi_ari_cluster_labels_kmeans_nmi": 0.02, "nmi_ari_cluster_labels_kmeans_ari": 0.02,
                 "kbet_per_label": 0.03}
    for emb in golden["embeddings"]:
        for col, v in want[emb].items():
            assert raw.loc[emb, col] == pytest.approx(v, abs=tolerance.get(col, 1e-3)), (emb, col)
    for col, kind in want["Metric Type"].items():
        assert raw.loc["Metric Type", col] == kind
    # min–max scaling maps a column's two values to 0 and 1: compared where the embeddings
    # really differ (a column equal to 1e-4 scales to 0 or 1 on rounding alone)
    scaled = bm.get_results(min_max_scale=True)
    from scssl.benchmark import metric_name_cleaner
    compared = 0
    for key, clean in metric_name_cleaner.items():
        if key not in want["Metric Type"]:
            continue
        spread = abs(want["scVI"][key] - want["Unintegrated"][key])
        if spread < 0.05:
            continue
        compared += 1
        for emb in golden["embeddings"]:
            assert scaled.loc[emb, clean] == pytest.approx(golden["clean_scaled"][emb][clean], abs=1e-6)
    assert compared >= 4  # BRAS, iLISI, kBET, PCR
