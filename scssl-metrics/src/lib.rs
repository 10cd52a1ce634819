//! # scssl-metrics
//!
//! Scores of an embedding: the scIB metric set as scib-metrics 0.6.1 computes it, kNN cell-type
//! annotation and kNN missing-modality prediction.
//!
//! **Contract** (from the project architecture; implementation tracked in the issue queue):
//! - pure functions over `ArrayView2<f32>`, label/batch codes and `scssl_data::Neighbors`:
//!   silhouette label/batch, isolated labels, Leiden NMI/ARI over a resolution sweep,
//!   cLISI/iLISI, kBET per label, graph connectivity, PCR comparison; Bio/Batch/Total
//!   aggregation (0.6·Bio + 0.4·Batch);
//! - kNN classifier (k = 11) macro-F1/accuracy; cosine kNN (k = 5) protein prediction with
//!   per-cell Pearson mean/min/max;
//! - one entry point that builds the neighbour graph once and runs a chosen metric set in
//!   parallel, returning a serde-serialisable report;
//! - depends on `scssl-data` without its HDF5/zarr features: no system library, no
//!   deep-learning framework.
//!
//! This release ships only the contract: no metric is implemented yet.
