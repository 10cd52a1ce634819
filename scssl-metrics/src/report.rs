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
use crate::{graph, lisi, pcr, silhouette};

/// A metric of the scIB set (names as scib-metrics' result keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Bio conservation: isolated labels (silhouette variant).
    IsolatedLabels,
    /// Bio conservation: Leiden NMI and ARI over the resolution sweep (two values:
    /// `nmi_ari_cluster_labels_leiden_nmi` and `…_ari`).
    NmiAriClusterLabelsLeiden,
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
        match self {
            Metric::IsolatedLabels => "isolated_labels",
            Metric::NmiAriClusterLabelsLeiden => "nmi_ari_cluster_labels_leiden",
            Metric::SilhouetteLabel => "silhouette_label",
            Metric::ClisiKnn => "clisi_knn",
            Metric::SilhouetteBatch => "silhouette_batch",
            Metric::IlisiKnn => "ilisi_knn",
            Metric::KbetPerLabel => "kbet_per_label",
            Metric::Bras => "bras",
            Metric::GraphConnectivity => "graph_connectivity",
            Metric::PcrComparison => "pcr_comparison",
        }
    }
    /// Whether the metric scores bio conservation (else batch correction).
    pub fn is_bio(self) -> bool {
        matches!(
            self,
            Metric::IsolatedLabels
                | Metric::NmiAriClusterLabelsLeiden
                | Metric::SilhouetteLabel
                | Metric::ClisiKnn
        )
    }
    /// The result keys the metric writes (two for the Leiden NMI/ARI pair).
    pub fn result_keys(self) -> Vec<&'static str> {
        match self {
            Metric::NmiAriClusterLabelsLeiden => vec![
                "nmi_ari_cluster_labels_leiden_nmi",
                "nmi_ari_cluster_labels_leiden_ari",
            ],
            m => vec![m.key()],
        }
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

/// One metric's result: (key, value) pairs (two for Leiden), seconds, why it is undefined.
type Outcome = (Vec<(String, Option<f64>)>, f64, Option<String>);

fn mean_defined(v: &[Option<f64>]) -> Option<f64> {
    let d: Vec<f64> = v
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

/// Runs `metrics` on one embedding. The 90-NN graph (exact below 20,000 cells, NN-descent
/// above; self first at distance 0) is built once and its 15-NN prefix reused.
pub fn evaluate(input: &EvalInput<'_>, metrics: &[Metric], seed: u64) -> Result<Report> {
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
    let needs_graph = metrics.iter().any(|m| {
        matches!(
            m,
            Metric::ClisiKnn
                | Metric::IlisiKnn
                | Metric::GraphConnectivity
                | Metric::KbetPerLabel
                | Metric::NmiAriClusterLabelsLeiden
        )
    });
    let t = Instant::now();
    let nn90: Option<Neighbors> = if needs_graph {
        Some(knn(x, 90.min(n), KnnMethod::Auto, seed)?)
    } else {
        None
    };
    r.timings
        .insert("neighbors".into(), t.elapsed().as_secs_f64());
    let needs_sil = metrics
        .iter()
        .any(|m| matches!(m, Metric::IsolatedLabels | Metric::SilhouetteLabel));
    let t = Instant::now();
    let sil = if needs_sil {
        Some(silhouette::silhouette_samples(x, input.labels)?)
    } else {
        None
    };
    let sil_time = t.elapsed().as_secs_f64();
    let subset = |k: usize| -> Result<Neighbors> {
        let g = nn90
            .as_ref()
            .ok_or_else(|| Error::Invalid("no neighbour graph".into()))?;
        Ok(g.subset(k.min(g.k()))?)
    };
    // one metric: its values (two for Leiden), seconds, and why it is undefined if it is
    let compute = |m: Metric| -> Result<Outcome> {
        let t = Instant::now();
        // Nothing to correct with one batch, nothing to conserve with one label: every metric
        // of that kind is undefined (graph connectivity and the label-agnostic ones included),
        // not a number computed against a constant.
        let undefined = if !m.is_bio() && n_batches < 2 {
            Some("a single batch: batch correction is undefined")
        } else if m.is_bio() && n_labels < 2 {
            Some("a single label: bio conservation is undefined")
        } else {
            None
        };
        if let Some(why) = undefined {
            let values = m
                .result_keys()
                .into_iter()
                .map(|k| (k.to_string(), None))
                .collect();
            return Ok((values, 0.0, Some(why.to_string())));
        }
        if m == Metric::NmiAriClusterLabelsLeiden {
            let res =
                crate::cluster::nmi_ari_cluster_labels_leiden(&subset(15)?, input.labels, seed)?;
            let v = vec![
                (
                    "nmi_ari_cluster_labels_leiden_nmi".to_string(),
                    Some(res.nmi),
                ),
                (
                    "nmi_ari_cluster_labels_leiden_ari".to_string(),
                    Some(res.ari),
                ),
            ];
            return Ok((v, t.elapsed().as_secs_f64(), None));
        }
        let mut note = None;
        let value: Option<f64> = match m {
            Metric::NmiAriClusterLabelsLeiden => None,
            Metric::KbetPerLabel => {
                crate::kbet::kbet_per_label(&subset(50)?, input.batches, input.labels)?
            }
            Metric::Bras => silhouette::bras(x, input.labels, input.batches)?,
            Metric::IsolatedLabels => Some(silhouette::isolated_labels(
                x,
                input.labels,
                input.batches,
                sil.as_deref(),
            )?),
            Metric::SilhouetteLabel => Some(silhouette::silhouette_label(
                x,
                input.labels,
                sil.as_deref(),
            )?),
            Metric::ClisiKnn => lisi::clisi_knn(&subset(90)?, input.labels)?,
            Metric::SilhouetteBatch => {
                silhouette::silhouette_batch(x, input.labels, input.batches)?
            }
            Metric::IlisiKnn => lisi::ilisi_knn(&subset(90)?, input.batches)?,
            Metric::GraphConnectivity => {
                Some(graph::graph_connectivity(&subset(15)?, input.labels)?)
            }
            Metric::PcrComparison => match input.pre_integration {
                Some(pre) => pcr::pcr_comparison(pre, x, input.batches)?,
                None => {
                    note = Some("no pre-integration embedding given".to_string());
                    None
                }
            },
        };
        let mut secs = t.elapsed().as_secs_f64();
        if matches!(m, Metric::IsolatedLabels | Metric::SilhouetteLabel) {
            secs += sil_time / 2.0; // the shared silhouette, split between its two users
        }
        if value.is_none() && note.is_none() {
            note = Some(match m {
                Metric::SilhouetteBatch | Metric::Bras => {
                    "every label has cells from only one batch (or one cell per batch)".to_string()
                }
                Metric::KbetPerLabel => {
                    "every label has fewer than 10 cells or a single batch".to_string()
                }
                Metric::PcrComparison => {
                    "the pre-integration embedding has no batch variance".to_string()
                }
                Metric::ClisiKnn => "a single label".to_string(),
                _ => "undefined for this input".to_string(),
            });
        }
        Ok((vec![(m.key().to_string(), value)], secs, note))
    };
    // the metrics run concurrently (each is parallel inside too); results keep their order
    let outcomes: Vec<_> = metrics
        .par_iter()
        .map(|&m| compute(m))
        .collect::<Result<_>>()?;
    for (&m, (values, secs, note)) in metrics.iter().zip(outcomes) {
        for (k, v) in values {
            r.metrics.insert(k, v);
        }
        r.timings.insert(m.key().into(), secs);
        if let Some(n) = note {
            r.notes.insert(m.key().into(), n);
        }
    }
    let collect = |bio: bool| -> Vec<Option<f64>> {
        metrics
            .iter()
            .filter(|m| m.is_bio() == bio)
            .flat_map(|m| m.result_keys())
            .map(|k| r.metrics.get(k).copied().flatten())
            .collect()
    };
    let (bio, batch) = (collect(true), collect(false));
    r.bio_conservation = mean_defined(&bio);
    r.batch_correction = mean_defined(&batch);
    // Total needs both aggregates, as scib-metrics' (NaN propagates); only when the caller
    // asked for metrics of one kind alone is Total that kind's aggregate.
    let asked_bio = metrics.iter().any(|m| m.is_bio());
    let asked_batch = metrics.iter().any(|m| !m.is_bio());
    r.total = match (r.bio_conservation, r.batch_correction) {
        (Some(b), Some(c)) => Some(0.6 * b + 0.4 * c),
        (Some(b), None) if !asked_batch => Some(b),
        (None, Some(c)) if !asked_bio => Some(c),
        _ => None,
    };
    Ok(r)
}

/// Min–max scales each metric across several reports (scib-metrics' `min_max_scale=True`),
/// then recomputes Bio, Batch and Total. A metric equal in every report scales to 0.
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
        let collect = |bio: bool| -> Vec<Option<f64>> {
            Metric::ALL
                .iter()
                .filter(|m| m.is_bio() == bio)
                .flat_map(|m| m.result_keys())
                .filter_map(|k| r.metrics.get(k).copied())
                .collect()
        };
        let (bio, batch) = (collect(true), collect(false));
        r.bio_conservation = mean_defined(&bio);
        r.batch_correction = mean_defined(&batch);
        r.total = r
            .bio_conservation
            .zip(r.batch_correction)
            .map(|(b, c)| 0.6 * b + 0.4 * c);
    }
}
