//! `scssl._core`: scssl-metrics for Python. Every function takes NumPy arrays (embeddings as
//! float32, labels and batches as integer codes: the Python layer `scssl` turns any label
//! array into codes and gives the functions scib-metrics' names and signatures), releases the
//! GIL while it computes on all cores, and raises `ValueError` with scssl-metrics' message for
//! bad input.

use ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use scssl_data::Neighbors;
use scssl_metrics::report::{EvalInput, Metric};

type Codes<'py> = PyReadonlyArray1<'py, u32>;
/// A neighbour table handed to Python: (indices, distances).
type NeighborArrays<'py> = (Bound<'py, PyArray2<u32>>, Bound<'py, PyArray2<f32>>);
type Matrix<'py> = PyReadonlyArray2<'py, f32>;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A contiguous copy of the codes (NumPy may hand over a strided view).
fn codes(a: &Codes<'_>) -> Vec<u32> {
    a.as_array().iter().copied().collect()
}

fn view<'a>(a: &'a Matrix<'_>) -> ArrayView2<'a, f32> {
    a.as_array()
}

/// The neighbour table of a `NeighborsResults` (indices, distances; self first).
fn neighbors(indices: &PyReadonlyArray2<'_, u32>, distances: &Matrix<'_>) -> PyResult<Neighbors> {
    Neighbors::new(
        indices.as_array().to_owned(),
        distances.as_array().to_owned(),
    )
    .map_err(value_error)
}

fn check_finite(x: ArrayView2<'_, f32>, what: &str) -> PyResult<()> {
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((r, c), v)) => Err(PyValueError::new_err(format!(
            "{what} has a non-finite value {v} at row {r}, column {c}"
        ))),
        None => Ok(()),
    }
}

/// Runs `f` on an embedding (checked finite) and its label and batch codes, with the GIL
/// released; a metric error becomes a `ValueError`.
fn on_embedding_labels_batches<T: Send>(
    py: Python<'_>,
    x: &Matrix<'_>,
    labels: &Codes<'_>,
    batches: &Codes<'_>,
    f: impl FnOnce(ArrayView2<'_, f32>, &[u32], &[u32]) -> scssl_metrics::Result<T> + Send,
) -> PyResult<T> {
    let (x, labels, batches) = (view(x), codes(labels), codes(batches));
    check_finite(x, "X")?;
    py.detach(|| f(x, &labels, &batches)).map_err(value_error)
}

/// Label silhouette, rescaled to [0, 1] (scib-metrics' `silhouette_label`, `rescale=True`).
#[pyfunction]
fn silhouette_label(py: Python<'_>, x: Matrix<'_>, labels: Codes<'_>) -> PyResult<f64> {
    let (x, labels) = (view(&x), codes(&labels));
    check_finite(x, "X")?;
    py.detach(|| scssl_metrics::silhouette::silhouette_label(x, &labels, None))
        .map_err(value_error)
}

/// Isolated-label silhouette score (scib-metrics' `isolated_labels`, `rescale=True`).
#[pyfunction]
fn isolated_labels(
    py: Python<'_>,
    x: Matrix<'_>,
    labels: Codes<'_>,
    batches: Codes<'_>,
) -> PyResult<f64> {
    on_embedding_labels_batches(py, &x, &labels, &batches, |x, labels, batches| {
        scssl_metrics::silhouette::isolated_labels(x, labels, batches, None)
    })
}

/// Batch silhouette per label (scib-metrics' `silhouette_batch`, `rescale=True`); `None` where
/// undefined.
#[pyfunction]
fn silhouette_batch(
    py: Python<'_>,
    x: Matrix<'_>,
    labels: Codes<'_>,
    batches: Codes<'_>,
) -> PyResult<Option<f64>> {
    on_embedding_labels_batches(py, &x, &labels, &batches, |x, labels, batches| {
        scssl_metrics::silhouette::silhouette_batch(x, labels, batches)
    })
}

/// BRAS: the cosine, mean-other batch silhouette of scib-metrics 0.6 (`bras`).
#[pyfunction]
fn bras(
    py: Python<'_>,
    x: Matrix<'_>,
    labels: Codes<'_>,
    batches: Codes<'_>,
) -> PyResult<Option<f64>> {
    on_embedding_labels_batches(py, &x, &labels, &batches, |x, labels, batches| {
        scssl_metrics::silhouette::bras(x, labels, batches)
    })
}

/// Leiden NMI/ARI: with `resolution` None the sweep 0.2…2.0 (scib-metrics'
/// `optimize_resolution=True`), else that one resolution. Returns (nmi, ari, resolution).
#[pyfunction]
#[pyo3(signature = (indices, distances, labels, resolution=None, seed=0))]
fn nmi_ari_cluster_labels_leiden(
    py: Python<'_>,
    indices: PyReadonlyArray2<'_, u32>,
    distances: Matrix<'_>,
    labels: Codes<'_>,
    resolution: Option<f64>,
    seed: u64,
) -> PyResult<(f64, f64, f64)> {
    let nn = neighbors(&indices, &distances)?;
    let labels = codes(&labels);
    py.detach(|| -> scssl_metrics::Result<(f64, f64, f64)> {
        match resolution {
            None => {
                let r = scssl_metrics::cluster::nmi_ari_cluster_labels_leiden(&nn, &labels, seed)?;
                Ok((r.nmi, r.ari, r.resolution))
            }
            Some(res) => {
                if labels.len() != nn.n_cells() {
                    return Err(scssl_metrics::Error::Shape(format!(
                        "labels has {} entries, the neighbour table has {} cells",
                        labels.len(),
                        nn.n_cells()
                    )));
                }
                let w = scssl_data::neighbors::fuzzy_connectivities(&nn);
                let c = scssl_metrics::leiden::leiden(&w, res, 2, 0.01, seed);
                Ok((
                    scssl_metrics::cluster::nmi(&labels, &c),
                    scssl_metrics::cluster::ari(&labels, &c),
                    res,
                ))
            }
        }
    })
    .map_err(value_error)
}

/// Per-cell LISI of `codes` on the neighbour table at `perplexity`.
#[pyfunction]
fn lisi_knn<'py>(
    py: Python<'py>,
    indices: PyReadonlyArray2<'py, u32>,
    distances: Matrix<'py>,
    codes_: Codes<'py>,
    perplexity: f32,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let nn = neighbors(&indices, &distances)?;
    let c = codes(&codes_);
    let v = py
        .detach(|| scssl_metrics::lisi::lisi_knn(&nn, &c, perplexity))
        .map_err(value_error)?;
    Ok(v.into_pyarray(py))
}

/// kBET acceptance per label (scib-metrics' `kbet_per_label`, alpha 0.05); `None` where
/// undefined.
#[pyfunction]
fn kbet_per_label(
    py: Python<'_>,
    indices: PyReadonlyArray2<'_, u32>,
    distances: Matrix<'_>,
    batches: Codes<'_>,
    labels: Codes<'_>,
) -> PyResult<Option<f64>> {
    let nn = neighbors(&indices, &distances)?;
    let (batches, labels) = (codes(&batches), codes(&labels));
    py.detach(|| scssl_metrics::kbet::kbet_per_label(&nn, &batches, &labels))
        .map_err(value_error)
}

/// Graph connectivity (scib-metrics' `graph_connectivity`).
#[pyfunction]
fn graph_connectivity(
    py: Python<'_>,
    indices: PyReadonlyArray2<'_, u32>,
    distances: Matrix<'_>,
    labels: Codes<'_>,
) -> PyResult<f64> {
    let nn = neighbors(&indices, &distances)?;
    let labels = codes(&labels);
    py.detach(|| scssl_metrics::graph::graph_connectivity(&nn, &labels))
        .map_err(value_error)
}

/// PCR comparison (scib-metrics' `pcr_comparison`, `scale=True`); `None` where undefined.
#[pyfunction]
fn pcr_comparison(
    py: Python<'_>,
    x_pre: Matrix<'_>,
    x_post: Matrix<'_>,
    batches: Codes<'_>,
) -> PyResult<Option<f64>> {
    let (pre, post, batches) = (view(&x_pre), view(&x_post), codes(&batches));
    check_finite(pre, "X_pre")?;
    check_finite(post, "X_post")?;
    py.detach(|| scssl_metrics::pcr::pcr_comparison(pre, post, &batches))
        .map_err(value_error)
}

/// The k nearest neighbours of every row (self first at distance 0): exact below 20,000
/// rows (for k ≥ 30 up to 400,000 rows), NN-descent above. Returns (indices, distances).
#[pyfunction]
#[pyo3(signature = (x, n_neighbors, seed=0))]
fn nearest_neighbors<'py>(
    py: Python<'py>,
    x: Matrix<'py>,
    n_neighbors: usize,
    seed: u64,
) -> PyResult<NeighborArrays<'py>> {
    let x = view(&x);
    check_finite(x, "X")?;
    let nn = py
        .detach(|| {
            scssl_data::neighbors::knn(x, n_neighbors, scssl_data::neighbors::KnnMethod::Auto, seed)
        })
        .map_err(value_error)?;
    Ok((nn.indices.into_pyarray(py), nn.distances.into_pyarray(py)))
}

/// The metric set on one embedding, as scssl's `evaluate`: one neighbour table (the given
/// `indices`/`distances`, else a 90-NN built here), the label silhouettes shared, the metrics
/// run concurrently. Returns ({result key: value or None}, {metric: why undefined}).
#[pyfunction]
#[pyo3(signature = (x, labels, batches, metrics, pre=None, indices=None, distances=None, seed=0))]
fn evaluate<'py>(
    py: Python<'py>,
    x: Matrix<'py>,
    labels: Codes<'py>,
    batches: Codes<'py>,
    metrics: Vec<String>,
    pre: Option<Matrix<'py>>,
    indices: Option<PyReadonlyArray2<'py, u32>>,
    distances: Option<Matrix<'py>>,
    seed: u64,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    let chosen: Vec<Metric> = metrics
        .iter()
        .map(|k| {
            scssl_metrics::registry::REGISTRY
                .iter()
                .find(|s| s.key == k)
                .map(|s| s.metric)
                .ok_or_else(|| PyValueError::new_err(format!("unknown metric {k:?}")))
        })
        .collect::<PyResult<_>>()?;
    let graph = match (&indices, &distances) {
        (Some(i), Some(d)) => Some(neighbors(i, d)?),
        (None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "give both indices and distances, or neither",
            ));
        }
    };
    let (x, labels, batches) = (view(&x), codes(&labels), codes(&batches));
    check_finite(x, "X")?;
    let pre_view = pre.as_ref().map(view);
    let input = EvalInput {
        embedding: x,
        labels: &labels,
        batches: &batches,
        pre_integration: pre_view,
    };
    let report = py
        .detach(|| {
            scssl_metrics::report::evaluate_with_neighbors(&input, &chosen, seed, graph.as_ref())
        })
        .map_err(value_error)?;
    let values = PyDict::new(py);
    for (k, v) in &report.metrics {
        values.set_item(k, *v)?;
    }
    let notes = PyDict::new(py);
    for (k, v) in &report.notes {
        notes.set_item(k, v)?;
    }
    Ok((values, notes))
}

/// kNN annotation of the query from the reference (k neighbours, majority vote): macro-F1 and
/// accuracy over all query cells and over the cell types both sides share.
#[pyfunction]
#[pyo3(signature = (reference, reference_labels, query, query_labels, k=11))]
fn knn_annotation<'py>(
    py: Python<'py>,
    reference: Matrix<'py>,
    reference_labels: Codes<'py>,
    query: Matrix<'py>,
    query_labels: Codes<'py>,
    k: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (r, q) = (view(&reference), view(&query));
    check_finite(r, "reference")?;
    check_finite(q, "query")?;
    let (rl, ql) = (codes(&reference_labels), codes(&query_labels));
    let a = py
        .detach(|| scssl_metrics::annotate::annotate(r, &rl, q, &ql, k))
        .map_err(value_error)?;
    let out = PyDict::new(py);
    for (name, s) in [("all", &a.all), ("shared_types", &a.shared_types)] {
        let d = PyDict::new(py);
        d.set_item("macro_f1", s.macro_f1)?;
        d.set_item("accuracy", s.accuracy)?;
        d.set_item("n_query", s.n_query)?;
        out.set_item(name, d)?;
    }
    Ok(out)
}

/// Missing-modality prediction: each query cell's protein as the mean of its k nearest
/// reference cells' (cosine), scored by per-cell Pearson r. Returns (prediction, scores).
#[pyfunction]
#[pyo3(signature = (reference, reference_protein, query, query_protein, k=5))]
fn predict_modality<'py>(
    py: Python<'py>,
    reference: Matrix<'py>,
    reference_protein: Matrix<'py>,
    query: Matrix<'py>,
    query_protein: Matrix<'py>,
    k: usize,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyDict>)> {
    let (r, rp, q, qp) = (
        view(&reference),
        view(&reference_protein),
        view(&query),
        view(&query_protein),
    );
    for (a, what) in [(r, "reference"), (q, "query")] {
        check_finite(a, what)?;
    }
    let (pred, s): (Array2<f32>, _) = py
        .detach(|| scssl_metrics::annotate::modality_prediction(r, rp, q, qp, k))
        .map_err(value_error)?;
    let d = PyDict::new(py);
    d.set_item("pearson_mean", s.pearson_mean)?;
    d.set_item("pearson_min", s.pearson_min)?;
    d.set_item("pearson_max", s.pearson_max)?;
    d.set_item("n_undefined", s.n_undefined)?;
    Ok((pred.into_pyarray(py), d))
}

/// NMI and ARI of k-means clusters (k = the number of labels) against the labels
/// (scib-metrics' `nmi_ari_cluster_labels_kmeans`). Returns (nmi, ari).
#[pyfunction]
#[pyo3(signature = (x, labels, seed=0))]
fn nmi_ari_cluster_labels_kmeans(
    py: Python<'_>,
    x: Matrix<'_>,
    labels: Codes<'_>,
    seed: u64,
) -> PyResult<(f64, f64)> {
    let (x, labels) = (view(&x), codes(&labels));
    check_finite(x, "X")?;
    py.detach(|| scssl_metrics::cluster::nmi_ari_cluster_labels_kmeans(x, &labels, seed))
        .map_err(value_error)
}

/// The first `n_comps` principal components of `x` (zero-centred; scanpy's `tl.pca` up to
/// sign), as the pre-integration embedding.
#[pyfunction]
fn pca<'py>(
    py: Python<'py>,
    x: Matrix<'py>,
    n_comps: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let x = view(&x);
    check_finite(x, "X")?;
    let n_comps = n_comps
        .min(x.nrows().saturating_sub(1))
        .min(x.ncols())
        .max(1);
    let p = py
        .detach(|| scssl_data::pp::pca_dense(x, n_comps))
        .map_err(value_error)?;
    Ok(p.embedding.into_pyarray(py))
}

/// The metric registry as Python sees it: one dict per metric (key, kind, default, results
/// with key / display / short names).
#[pyfunction]
fn registry(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    scssl_metrics::registry::REGISTRY
        .iter()
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("key", s.key)?;
            d.set_item("kind", s.kind.display())?;
            d.set_item("default", s.default)?;
            d.set_item("needs_pre_integration", s.needs.pre_integration)?;
            let results: Vec<(&str, &str, &str)> = s
                .results
                .iter()
                .map(|r| (r.key, r.display, r.short))
                .collect();
            d.set_item("results", results)?;
            Ok(d)
        })
        .collect()
}

/// Threads the computations use (rayon's pool: all cores unless RAYON_NUM_THREADS says).
#[pyfunction]
fn n_threads() -> usize {
    rayon::current_num_threads()
}

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(silhouette_label, m)?)?;
    m.add_function(wrap_pyfunction!(isolated_labels, m)?)?;
    m.add_function(wrap_pyfunction!(silhouette_batch, m)?)?;
    m.add_function(wrap_pyfunction!(bras, m)?)?;
    m.add_function(wrap_pyfunction!(nmi_ari_cluster_labels_leiden, m)?)?;
    m.add_function(wrap_pyfunction!(nmi_ari_cluster_labels_kmeans, m)?)?;
    m.add_function(wrap_pyfunction!(pca, m)?)?;
    m.add_function(wrap_pyfunction!(lisi_knn, m)?)?;
    m.add_function(wrap_pyfunction!(kbet_per_label, m)?)?;
    m.add_function(wrap_pyfunction!(graph_connectivity, m)?)?;
    m.add_function(wrap_pyfunction!(pcr_comparison, m)?)?;
    m.add_function(wrap_pyfunction!(nearest_neighbors, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(knn_annotation, m)?)?;
    m.add_function(wrap_pyfunction!(predict_modality, m)?)?;
    m.add_function(wrap_pyfunction!(registry, m)?)?;
    m.add_function(wrap_pyfunction!(n_threads, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
