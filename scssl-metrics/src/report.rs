//! One entry point: build the neighbour graph once, run a chosen metric set, aggregate into
//! Bio / Batch / Total (0.6·Bio + 0.4·Batch), with per-metric timings, serde-serialisable.

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::ArrayView2;
use rayon::prelude::*;
use scssl_data::Neighbors;
use scssl_data::neighbors::{KnnMethod, knn};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_embedding, check_len};
use crate::registry::{MetricKind, MetricSpec};
use crate::silhouette;

/// A metric of the scIB set (names as scib-metrics' result keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Bio conservation: isolated labels (silhouette variant).
    IsolatedLabels,
    /// Bio conservation: Leiden NMI and ARI over the resolution sweep (two values:
    /// `nmi_ari_cluster_labels_leiden_nmi` and `…_ari`).
    NmiAriClusterLabelsLeiden,
    /// Bio conservation (optional): NMI and ARI of k-means clusters (k = the number of labels),
    /// scib-metrics' default clustering metric; scSSL-Bench's set uses Leiden.
    NmiAriClusterLabelsKmeans,
    /// Bio conservation: label silhouette.
    SilhouetteLabel,
    /// Bio conservation: cLISI on the 90-NN.
    ClisiKnn,
    /// Batch correction: batch silhouette per label.
    SilhouetteBatch,
    /// Batch correction: iLISI on the 90-NN.
    IlisiKnn,
    /// Batch correction: kBET acceptance per label on the 50-NN.
    KbetPerLabel,
    /// Batch correction (optional): BRAS, the cosine / mean-other batch silhouette that
    /// scib-metrics ≥ 0.6 uses instead of `silhouette_batch`. Not in scSSL-Bench's set.
    Bras,
    /// Batch correction: graph connectivity on the 15-NN.
    GraphConnectivity,
    /// Batch correction: PCR comparison against the pre-integration embedding.
    PcrComparison,
}

impl Metric {
    /// Every metric implemented so far, in scib-metrics' order.
    pub const ALL: [Metric; 9] = [
        Metric::IsolatedLabels,
        Metric::NmiAriClusterLabelsLeiden,
        Metric::SilhouetteLabel,
        Metric::ClisiKnn,
        Metric::SilhouetteBatch,
        Metric::IlisiKnn,
        Metric::KbetPerLabel,
        Metric::GraphConnectivity,
        Metric::PcrComparison,
    ];
    /// scib-metrics' key.
    pub fn key(self) -> &'static str {
        self.spec().key
    }
    /// Whether the metric scores bio conservation (else batch correction).
    pub fn is_bio(self) -> bool {
        self.spec().kind == MetricKind::Bio
    }
    /// The result keys the metric writes (two for the Leiden NMI/ARI pair).
    pub fn result_keys(self) -> Vec<&'static str> {
        self.spec().results.iter().map(|r| r.key).collect()
    }
    /// The metric's entry in the registry.
    pub fn spec(self) -> &'static MetricSpec {
        crate::registry::spec(self)
    }
}

/// The scores of one embedding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Metric key → value (`None` where undefined; the reason is in `notes`).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Why a metric is undefined.
    pub notes: BTreeMap<String, String>,
    /// Seconds per metric (and for the neighbour graph).
    pub timings: BTreeMap<String, f64>,
    /// Mean of the defined bio-conservation metrics.
    pub bio_conservation: Option<f64>,
    /// Mean of the defined batch-correction metrics.
    pub batch_correction: Option<f64>,
    /// 0.6·Bio + 0.4·Batch.
    pub total: Option<f64>,
}

/// Inputs of [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    /// The embedding (cells × dimensions).
    pub embedding: ArrayView2<'a, f32>,
    /// Cell-type codes.
    pub labels: &'a [u32],
    /// Batch codes.
    pub batches: &'a [u32],
    /// Pre-integration embedding for PCR comparison (e.g. 50 PCs of X).
    pub pre_integration: Option<ArrayView2<'a, f32>>,
}

/// One metric's result: its values (one per result key), seconds, why it is undefined.
type Outcome = (Vec<Option<f64>>, f64, Option<String>);

/// Runs `metrics` on one embedding. The 90-NN graph (`KnnMethod::Auto`: exact up to 400,000
/// cells, NN-descent above; self first at distance 0) is built once and its 15-NN prefix
/// reused.
pub fn evaluate(input: &EvalInput<'_>, metrics: &[Metric], seed: u64) -> Result<Report> {
    evaluate_with_neighbors(input, metrics, seed, None)
}

/// [`evaluate`] on a neighbour table the caller already has (self first; e.g. the 90-NN that
/// scib-metrics' `Benchmarker.prepare` computes): it must have at least as many neighbours as
/// the widest metric asks for (90 for LISI), or it is an error that says so. `None` builds one.
pub fn evaluate_with_neighbors(
    input: &EvalInput<'_>,
    metrics: &[Metric],
    seed: u64,
    neighbors: Option<&Neighbors>,
) -> Result<Report> {
    let x = input.embedding;
    check_embedding(x)?;
    check_len("labels", x.nrows(), input.labels.len())?;
    check_len("batches", x.nrows(), input.batches.len())?;
    let n = x.nrows();
    if n < 2 {
        return Err(Error::Invalid(format!(
            "an embedding needs at least 2 cells, got {n}"
        )));
    }
    let mut r = Report {
        metrics: BTreeMap::new(),
        notes: BTreeMap::new(),
        timings: BTreeMap::new(),
        bio_conservation: None,
        batch_correction: None,
        total: None,
    };
    let n_batches = crate::codes::dense(input.batches).1;
    let n_labels = crate::codes::dense(input.labels).1;
    let specs: Vec<&MetricSpec> = metrics.iter().map(|m| m.spec()).collect();
    let widest = specs.iter().filter_map(|s| s.needs.knn).max();
    let t = Instant::now();
    let built;
    let graph: Option<&Neighbors> = match (widest, neighbors) {
        (Some(k), Some(given)) => {
            if given.n_cells() != n {
                return Err(Error::Shape(format!(
                    "the neighbour table has {} cells, the embedding {n}",
                    given.n_cells()
                )));
            }
            if given.k() < k.min(n) {
                return Err(Error::Invalid(format!(
                    "the neighbour table has {} neighbours per cell; the metrics need {}",
                    given.k(),
                    k.min(n)
                )));
            }
            Some(given)
        }
        // one 90-NN graph (or the widest asked for); each metric takes its prefix
        (Some(_), None) => {
            built = knn(x, 90.min(n), KnnMethod::Auto, seed)?;
            Some(&built)
        }
        (None, _) => None,
    };
    r.timings
        .insert("neighbors".into(), t.elapsed().as_secs_f64());
    let users_of_silhouette = specs.iter().filter(|s| s.needs.silhouette).count();
    let t = Instant::now();
    let sil = if users_of_silhouette > 0 {
        Some(silhouette::silhouette_samples(x, input.labels)?)
    } else {
        None
    };
    let sil_time = t.elapsed().as_secs_f64();
    // LISI's kernel depends on the distances only: computed once for cLISI and iLISI (all
    // kernel users ask for the same neighbours)
    let kernel_users: Vec<&&MetricSpec> = specs.iter().filter(|s| s.needs.lisi_kernel).collect();
    let t = Instant::now();
    let lisi_kernel = match (kernel_users.first().and_then(|s| s.needs.knn), graph) {
        (Some(k), Some(g))
            if kernel_users.len() > 1 && kernel_users.iter().all(|s| s.needs.knn == Some(k)) =>
        {
            let nn = first_neighbours(g, k)?;
            Some(crate::lisi::lisi_kernel(
                &nn,
                crate::lisi::default_perplexity(nn.k()),
            )?)
        }
        _ => None,
    };
    let kernel_time = t.elapsed().as_secs_f64();
    // one metric: its values, seconds, and why it is undefined if it is
    let compute = |spec: &MetricSpec| -> Result<Outcome> {
        let t = Instant::now();
        // Nothing to correct with one batch, nothing to conserve with one label: every metric
        // of that kind is undefined (graph connectivity and the label-agnostic ones included),
        // not a number computed against a constant.
        let undefined = match spec.kind {
            MetricKind::Batch if n_batches < 2 => {
                Some("a single batch: batch correction is undefined")
            }
            MetricKind::Bio if n_labels < 2 => {
                Some("a single label: bio conservation is undefined")
            }
            _ => None,
        };
        if let Some(why) = undefined {
            return Ok((vec![None; spec.results.len()], 0.0, Some(why.to_string())));
        }
        if spec.needs.pre_integration && input.pre_integration.is_none() {
            let why = "no pre-integration embedding given".to_string();
            return Ok((vec![None; spec.results.len()], 0.0, Some(why)));
        }
        let neighbors = match (spec.needs.knn, graph) {
            (Some(k), Some(g)) => Some(first_neighbours(g, k)?),
            _ => None,
        };
        let metric_input = crate::registry::MetricInput {
            embedding: x,
            labels: input.labels,
            batches: input.batches,
            pre_integration: input.pre_integration,
            neighbors,
            silhouette: sil.as_deref(),
            lisi_kernel: lisi_kernel.as_ref().filter(|_| spec.needs.lisi_kernel),
            seed,
        };
        let values = (spec.compute)(&metric_input)?;
        if values.len() != spec.results.len() {
            return Err(Error::Invalid(format!(
                "{} returned {} values for {} result keys",
                spec.key,
                values.len(),
                spec.results.len()
            )));
        }
        let mut secs = t.elapsed().as_secs_f64();
        if spec.needs.silhouette {
            // the shared silhouette, split between its users
            secs += sil_time / users_of_silhouette as f64;
        }
        if spec.needs.lisi_kernel && lisi_kernel.is_some() {
            secs += kernel_time / kernel_users.len() as f64;
        }
        let note = values
            .iter()
            .any(Option::is_none)
            .then(|| spec.undefined.to_string());
        Ok((values, secs, note))
    };
    // the metrics run concurrently (each is parallel inside too), the costliest started first;
    // results keep their order
    let mut by_cost: Vec<usize> = (0..specs.len()).collect();
    by_cost.sort_by_key(|&i| std::cmp::Reverse(specs[i].cost));
    let mut outcomes: Vec<(usize, Outcome)> = by_cost
        .par_iter()
        .with_max_len(1)
        .map(|&i| compute(specs[i]).map(|o| (i, o)))
        .collect::<Result<_>>()?;
    outcomes.sort_by_key(|e| e.0);
    let outcomes = outcomes.into_iter().map(|e| e.1);
    for (spec, (values, secs, note)) in specs.iter().zip(outcomes) {
        for (name, v) in spec.results.iter().zip(values) {
            r.metrics.insert(name.key.to_string(), v);
        }
        r.timings.insert(spec.key.into(), secs);
        if let Some(n) = note {
            r.notes.insert(spec.key.into(), n);
        }
    }
    (r.bio_conservation, r.batch_correction, r.total) = crate::registry::aggregate(&r.metrics);
    Ok(r)
}

/// The first `k` neighbours of each cell in `g` (all of them when `g` has no more than `k`):
/// `g` itself when that is all of it, a copy otherwise.
fn first_neighbours(g: &Neighbors, k: usize) -> Result<std::borrow::Cow<'_, Neighbors>> {
    Ok(if k >= g.k() {
        std::borrow::Cow::Borrowed(g)
    } else {
        std::borrow::Cow::Owned(g.subset(k)?)
    })
}

/// Min–max scales each metric across several reports (scib-metrics' `min_max_scale=True`),
/// then recomputes Bio, Batch and Total with the same aggregation as [`evaluate`]. A metric
/// equal in every report scales to 0.
pub fn min_max_scale(reports: &mut [Report]) {
    let keys: Vec<String> = reports
        .first()
        .map(|r| r.metrics.keys().cloned().collect())
        .unwrap_or_default();
    for k in &keys {
        let vals: Vec<f64> = reports
            .iter()
            .filter_map(|r| r.metrics.get(k).copied().flatten())
            .collect();
        let (lo, hi) = vals
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        for r in reports.iter_mut() {
            if let Some(Some(v)) = r.metrics.get_mut(k) {
                *v = if hi > lo { (*v - lo) / (hi - lo) } else { 0.0 };
            }
        }
    }
    for r in reports.iter_mut() {
        (r.bio_conservation, r.batch_correction, r.total) = crate::registry::aggregate(&r.metrics);
    }
}
