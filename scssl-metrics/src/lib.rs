//! # scssl-metrics
//!
//! Scores of an embedding, as scib-metrics 0.6.1 computes them (see the project's metrics
//! specification), plus kNN cell-type annotation and kNN missing-modality prediction. Depends
//! on `scssl-data` without its I/O features: no HDF5, no deep-learning framework.
//!
//! - bio conservation: [`silhouette::isolated_labels`],
//!   [`cluster::nmi_ari_cluster_labels_leiden`] (Leiden on the UMAP connectivities of the 15-NN,
//!   resolutions 0.2…2.0), [`silhouette::silhouette_label`], [`lisi::clisi_knn`];
//! - batch correction: [`silhouette::silhouette_batch`] (and [`silhouette::bras`] as an
//!   option), [`lisi::ilisi_knn`], [`kbet::kbet_per_label`], [`graph::graph_connectivity`],
//!   [`pcr::pcr_comparison`];
//! - [`report::evaluate`]: one neighbour graph (90-NN, exact or NN-descent, self first at
//!   distance 0; the 15- and 50-NN are its prefixes), the chosen metrics, Bio/Batch/Total
//!   (0.6·Bio + 0.4·Batch, undefined metrics left out of their group's mean, optional
//!   [`report::min_max_scale`]), per-metric timings, serde-serialisable;
//! - [`registry`]: the one table of metric specifications (keys, display and short names, Bio or
//!   Batch, needs, the function, why undefined) that `evaluate`, the aggregation, the bench
//!   report and `cargo xtask perf` read: a new metric is one function and one entry;
//! - [`query`]: scSSL-Bench's query-to-reference protocol (held-out batches as the query,
//!   annotation on the joint and RNA embeddings, protein prediction and annotation with the
//!   predicted protein), for any model the caller trains;
//! - [`annotate::annotate`] (kNN, k = 11, macro-F1 and accuracy with and without the shared
//!   cell types filter) and [`annotate::modality_prediction`] (cosine kNN, k = 5, per-cell Pearson).
//!
//! Values equal scib-metrics' within the specification's tolerances (1e-4 for silhouettes,
//! LISI, graph connectivity and PCR; 0.02 for Leiden NMI/ARI; 0.03 for kBET), checked against
//! goldens in `conformance/`.
//!
//! ```
//! use ndarray::Array2;
//! use scssl_metrics::report::{EvalInput, Metric, evaluate};
//!
//! // 200 cells: two cell types, two batches mixed within each type
//! let x = Array2::from_shape_fn((200, 5), |(i, j)| if i < 100 { j as f32 } else { 10.0 + j as f32 } + (i % 7) as f32 * 0.1);
//! let labels: Vec<u32> = (0..200).map(|i| (i >= 100) as u32).collect();
//! let batches: Vec<u32> = (0..200).map(|i| (i % 2) as u32).collect();
//! let r = evaluate(&EvalInput { embedding: x.view(), labels: &labels, batches: &batches, pre_integration: None }, &Metric::ALL, 0)?;
//! assert!(r.metrics["silhouette_label"].unwrap() > 0.9);
//! assert!(r.total.is_some());
//! # Ok::<(), scssl_metrics::Error>(())
//! ```

pub mod annotate;
pub mod cluster;
pub mod codes;
mod error;
pub mod graph;
pub mod kbet;
pub mod leiden;
pub mod lisi;
pub mod pcr;
pub mod query;
pub mod registry;
pub mod report;
pub mod silhouette;

pub use error::{Error, Result};
