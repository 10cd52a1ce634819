//! The metric registry: one table of metric specifications (scib-metrics' key, the result keys
//! it writes with their display and short names, Bio or Batch, what it needs, the function,
//! why it can be undefined) from which [`crate::report::evaluate`], the aggregation into
//! Bio / Batch / Total, the bench report's columns and `cargo xtask perf` all read. A new
//! metric is one function and one entry here (plus its [`Metric`] variant, the serde name).

use ndarray::ArrayView2;
use scssl_data::Neighbors;

use crate::error::Result;
use crate::report::Metric;
use crate::{graph, lisi, pcr, silhouette};

/// Bio conservation or batch correction (scib-metrics' "Metric Type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Bio conservation.
    Bio,
    /// Batch correction.
    Batch,
}

impl MetricKind {
    /// scib-metrics' name of the kind ("Bio conservation", "Batch correction").
    pub fn display(self) -> &'static str {
        match self {
            MetricKind::Bio => "Bio conservation",
            MetricKind::Batch => "Batch correction",
        }
    }
    /// The key of the kind's aggregate in reports (`bio_conservation`, `batch_correction`).
    pub fn aggregate_key(self) -> &'static str {
        match self {
            MetricKind::Bio => "bio_conservation",
            MetricKind::Batch => "batch_correction",
        }
    }
}

/// What a metric needs besides the embedding, labels and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricNeeds {
    /// The k-nearest-neighbour graph with this many neighbours (a prefix of one 90-NN graph).
    pub knn: Option<usize>,
    /// The per-cell label silhouettes (shared by isolated labels and the label silhouette).
    pub silhouette: bool,
    /// The pre-integration embedding (PCR comparison).
    pub pre_integration: bool,
    /// LISI's kernel on the `knn` graph (shared by cLISI and iLISI).
    pub lisi_kernel: bool,
}

impl MetricNeeds {
    /// The embedding, labels and batches only.
    pub const EMBEDDING: MetricNeeds = MetricNeeds {
        knn: None,
        silhouette: false,
        pre_integration: false,
        lisi_kernel: false,
    };
    /// The shared per-cell label silhouettes.
    pub const SILHOUETTE: MetricNeeds = MetricNeeds {
        silhouette: true,
        ..MetricNeeds::EMBEDDING
    };
    /// The pre-integration embedding.
    pub const PRE_INTEGRATION: MetricNeeds = MetricNeeds {
        pre_integration: true,
        ..MetricNeeds::EMBEDDING
    };
}

/// One value a metric writes: its key in reports (scib-metrics' result key), its name in
/// scib-metrics' results table and plots, and a short column name for terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultName {
    /// Result key (`nmi_ari_cluster_labels_leiden_nmi`).
    pub key: &'static str,
    /// scib-metrics' display name (`Leiden NMI`).
    pub display: &'static str,
    /// Short column name (`leiden_nmi`).
    pub short: &'static str,
}

/// What a metric function is given: the embedding and codes, the shared neighbour graph and
/// silhouettes (present when the metric's [`MetricNeeds`] asks for them), and the seed.
pub struct MetricInput<'a> {
    /// The embedding (cells × dimensions).
    pub embedding: ArrayView2<'a, f32>,
    /// Cell-type codes.
    pub labels: &'a [u32],
    /// Batch codes.
    pub batches: &'a [u32],
    /// The pre-integration embedding, when given.
    pub pre_integration: Option<ArrayView2<'a, f32>>,
    /// The neighbour graph with `needs.knn` neighbours (borrowed when the caller's table has
    /// exactly that many: a copy of a 90-NN table at 100,000 cells is 72 MB).
    pub neighbors: Option<std::borrow::Cow<'a, Neighbors>>,
    /// Per-cell label silhouettes.
    pub silhouette: Option<&'a [f64]>,
    /// LISI's kernel on `neighbors`, when the metric asks for it.
    pub lisi_kernel: Option<&'a lisi::LisiKernel>,
    /// Seed of the randomised steps (Leiden, approximate kNN).
    pub seed: u64,
}

impl MetricInput<'_> {
    fn graph(&self) -> Result<&Neighbors> {
        self.neighbors
            .as_deref()
            .ok_or_else(|| crate::Error::Invalid("the metric's neighbour graph is missing".into()))
    }
    /// The shared LISI kernel, or one computed here.
    fn lisi_kernel(&self) -> Result<std::borrow::Cow<'_, lisi::LisiKernel>> {
        Ok(match self.lisi_kernel {
            Some(k) => std::borrow::Cow::Borrowed(k),
            None => {
                let g = self.graph()?;
                std::borrow::Cow::Owned(lisi::lisi_kernel(g, lisi::default_perplexity(g.k()))?)
            }
        })
    }
}

/// One metric of the scIB set.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    /// The metric.
    pub metric: Metric,
    /// scib-metrics' function name and the key of its timing and notes.
    pub key: &'static str,
    /// The values it writes, in order (two for the Leiden NMI/ARI pair).
    pub results: &'static [ResultName],
    /// Bio conservation or batch correction.
    pub kind: MetricKind,
    /// What it needs.
    pub needs: MetricNeeds,
    /// Whether scSSL-Bench's metric set has it ([`Metric::ALL`]); BRAS is an option.
    pub default: bool,
    /// Rough share of the CPU time at 100,000 cells, after the shared neighbours, silhouettes
    /// and LISI kernel (percent). Metrics that run concurrently start longest first, so the
    /// coarse pieces (a Leiden resolution, a large label's diffusion map) do not end up alone
    /// on one core at the end.
    pub cost: u8,
    /// Why its value can be missing for an input (notes name it).
    pub undefined: &'static str,
    /// The function: one value per entry of `results`, `None` where undefined.
    pub compute: fn(&MetricInput<'_>) -> Result<Vec<Option<f64>>>,
}

const fn result(key: &'static str, display: &'static str, short: &'static str) -> ResultName {
    ResultName {
        key,
        display,
        short,
    }
}

const fn knn(k: usize) -> MetricNeeds {
    MetricNeeds {
        knn: Some(k),
        ..MetricNeeds::EMBEDDING
    }
}

/// LISI's needs: the 90-NN graph and the kernel on it.
const LISI: MetricNeeds = MetricNeeds {
    lisi_kernel: true,
    ..knn(90)
};

/// Every metric, in scib-metrics' table order (bio conservation first).
pub static REGISTRY: [MetricSpec; 11] = [
    MetricSpec {
        metric: Metric::IsolatedLabels,
        key: "isolated_labels",
        results: &[result("isolated_labels", "Isolated labels", "iso_labels")],
        kind: MetricKind::Bio,
        needs: MetricNeeds::SILHOUETTE,
        default: true,
        cost: 1,
        undefined: "undefined for this input",
        compute: |i| {
            Ok(vec![Some(silhouette::isolated_labels(
                i.embedding,
                i.labels,
                i.batches,
                i.silhouette,
            )?)])
        },
    },
    MetricSpec {
        metric: Metric::NmiAriClusterLabelsLeiden,
        key: "nmi_ari_cluster_labels_leiden",
        results: &[
            result(
                "nmi_ari_cluster_labels_leiden_nmi",
                "Leiden NMI",
                "leiden_nmi",
            ),
            result(
                "nmi_ari_cluster_labels_leiden_ari",
                "Leiden ARI",
                "leiden_ari",
            ),
        ],
        kind: MetricKind::Bio,
        needs: knn(15),
        default: true,
        cost: 40,
        undefined: "undefined for this input",
        compute: |i| {
            let r = crate::cluster::nmi_ari_cluster_labels_leiden(i.graph()?, i.labels, i.seed)?;
            Ok(vec![Some(r.nmi), Some(r.ari)])
        },
    },
    MetricSpec {
        metric: Metric::NmiAriClusterLabelsKmeans,
        key: "nmi_ari_cluster_labels_kmeans",
        results: &[
            result(
                "nmi_ari_cluster_labels_kmeans_nmi",
                "KMeans NMI",
                "kmeans_nmi",
            ),
            result(
                "nmi_ari_cluster_labels_kmeans_ari",
                "KMeans ARI",
                "kmeans_ari",
            ),
        ],
        kind: MetricKind::Bio,
        needs: MetricNeeds::EMBEDDING,
        default: false,
        cost: 10,
        undefined: "undefined for this input",
        compute: |i| {
            let (nmi, ari) =
                crate::cluster::nmi_ari_cluster_labels_kmeans(i.embedding, i.labels, i.seed)?;
            Ok(vec![Some(nmi), Some(ari)])
        },
    },
    MetricSpec {
        metric: Metric::SilhouetteLabel,
        key: "silhouette_label",
        results: &[result("silhouette_label", "Silhouette label", "sil_label")],
        kind: MetricKind::Bio,
        needs: MetricNeeds::SILHOUETTE,
        default: true,
        cost: 1,
        undefined: "undefined for this input",
        compute: |i| {
            Ok(vec![Some(silhouette::silhouette_label(
                i.embedding,
                i.labels,
                i.silhouette,
            )?)])
        },
    },
    MetricSpec {
        metric: Metric::ClisiKnn,
        key: "clisi_knn",
        results: &[result("clisi_knn", "cLISI", "clisi_knn")],
        kind: MetricKind::Bio,
        needs: LISI,
        default: true,
        cost: 2,
        undefined: "a single label",
        compute: |i| {
            Ok(vec![lisi::clisi_from_kernel(
                &*i.lisi_kernel()?,
                i.graph()?,
                i.labels,
            )?])
        },
    },
    MetricSpec {
        metric: Metric::SilhouetteBatch,
        key: "silhouette_batch",
        results: &[result("silhouette_batch", "Silhouette batch", "sil_batch")],
        kind: MetricKind::Batch,
        needs: MetricNeeds::EMBEDDING,
        default: true,
        cost: 3,
        undefined: "every label has cells from only one batch (or one cell per batch)",
        compute: |i| {
            Ok(vec![silhouette::silhouette_batch(
                i.embedding,
                i.labels,
                i.batches,
            )?])
        },
    },
    MetricSpec {
        metric: Metric::IlisiKnn,
        key: "ilisi_knn",
        results: &[result("ilisi_knn", "iLISI", "ilisi_knn")],
        kind: MetricKind::Batch,
        needs: LISI,
        default: true,
        cost: 2,
        undefined: "undefined for this input",
        compute: |i| {
            Ok(vec![lisi::ilisi_from_kernel(
                &*i.lisi_kernel()?,
                i.graph()?,
                i.batches,
            )?])
        },
    },
    MetricSpec {
        metric: Metric::KbetPerLabel,
        key: "kbet_per_label",
        results: &[result("kbet_per_label", "KBET", "kbet")],
        kind: MetricKind::Batch,
        needs: knn(50),
        default: true,
        cost: 45,
        undefined: "every label has fewer than 10 cells or a single batch",
        compute: |i| {
            Ok(vec![crate::kbet::kbet_per_label(
                i.graph()?,
                i.batches,
                i.labels,
            )?])
        },
    },
    MetricSpec {
        metric: Metric::Bras,
        key: "bras",
        results: &[result("bras", "BRAS", "bras")],
        kind: MetricKind::Batch,
        needs: MetricNeeds::EMBEDDING,
        default: false,
        cost: 3,
        undefined: "every label has cells from only one batch (or one cell per batch)",
        compute: |i| Ok(vec![silhouette::bras(i.embedding, i.labels, i.batches)?]),
    },
    MetricSpec {
        metric: Metric::GraphConnectivity,
        key: "graph_connectivity",
        results: &[result(
            "graph_connectivity",
            "Graph connectivity",
            "graph_conn",
        )],
        kind: MetricKind::Batch,
        needs: knn(15),
        default: true,
        cost: 1,
        undefined: "undefined for this input",
        compute: |i| Ok(vec![Some(graph::graph_connectivity(i.graph()?, i.labels)?)]),
    },
    MetricSpec {
        metric: Metric::PcrComparison,
        key: "pcr_comparison",
        results: &[result("pcr_comparison", "PCR comparison", "pcr")],
        kind: MetricKind::Batch,
        needs: MetricNeeds::PRE_INTEGRATION,
        default: true,
        cost: 1,
        undefined: "the pre-integration embedding has no batch variance",
        compute: |i| match i.pre_integration {
            Some(pre) => Ok(vec![pcr::pcr_comparison(pre, i.embedding, i.batches)?]),
            None => Ok(vec![None]),
        },
    },
];

/// The specification of `metric`.
pub fn spec(metric: Metric) -> &'static MetricSpec {
    // every variant has its entry (checked by a test); the first entry is never reached
    REGISTRY
        .iter()
        .find(|s| s.metric == metric)
        .unwrap_or(&REGISTRY[0])
}

/// The metric and value names of a result key (`nmi_ari_cluster_labels_leiden_ari`).
pub fn result_name(key: &str) -> Option<(&'static MetricSpec, &'static ResultName)> {
    REGISTRY
        .iter()
        .find_map(|s| s.results.iter().find(|r| r.key == key).map(|r| (s, r)))
}

/// Every result key in table order: the default set's, then the optional ones (BRAS).
pub fn result_keys() -> impl Iterator<Item = &'static ResultName> {
    REGISTRY
        .iter()
        .filter(|s| s.default)
        .chain(REGISTRY.iter().filter(|s| !s.default))
        .flat_map(|s| s.results.iter())
}

/// Bio, Batch and Total of a set of metric values (result key → value): the mean of the
/// defined values of each kind, and Total = 0.6·Bio + 0.4·Batch, which, as scib-metrics',
/// needs both aggregates; only when the values hold metrics of one kind alone is Total that
/// kind's aggregate. The one aggregation of the crate: [`crate::report::evaluate`] and
/// [`crate::report::min_max_scale`] both call it.
pub fn aggregate(
    values: &std::collections::BTreeMap<String, Option<f64>>,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let of_kind = |kind: MetricKind| -> (bool, Option<f64>) {
        let present: Vec<Option<f64>> = REGISTRY
            .iter()
            .filter(|s| s.kind == kind)
            .flat_map(|s| s.results.iter())
            .filter_map(|r| values.get(r.key).copied())
            .collect();
        let defined: Vec<f64> = present
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let mean =
            (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
        (!present.is_empty(), mean)
    };
    let (asked_bio, bio) = of_kind(MetricKind::Bio);
    let (asked_batch, batch) = of_kind(MetricKind::Batch);
    let total = match (bio, batch) {
        (Some(b), Some(c)) => Some(0.6 * b + 0.4 * c),
        (Some(b), None) if !asked_batch => Some(b),
        (None, Some(c)) if !asked_bio => Some(c),
        _ => None,
    };
    (bio, batch, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_metric_has_one_entry_and_unique_result_keys() {
        for m in Metric::ALL
            .iter()
            .copied()
            .chain([Metric::Bras, Metric::NmiAriClusterLabelsKmeans])
        {
            assert_eq!(
                REGISTRY.iter().filter(|s| s.metric == m).count(),
                1,
                "{m:?}"
            );
            assert_eq!(spec(m).metric, m);
        }
        let keys: Vec<&str> = result_keys().map(|r| r.key).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(keys.len(), 13);
        assert_eq!(
            keys[10..],
            [
                "nmi_ari_cluster_labels_kmeans_nmi",
                "nmi_ari_cluster_labels_kmeans_ari",
                "bras"
            ]
        );
        assert_eq!(
            result_name("nmi_ari_cluster_labels_leiden_ari").map(|(s, r)| (s.key, r.display)),
            Some(("nmi_ari_cluster_labels_leiden", "Leiden ARI"))
        );
    }

    #[test]
    fn aggregation_counts_optional_metrics_and_the_one_kind_rule() {
        let v = |pairs: &[(&str, Option<f64>)]| -> BTreeMap<String, Option<f64>> {
            pairs.iter().map(|(k, x)| (k.to_string(), *x)).collect()
        };
        // BRAS is a batch metric like any other
        let (bio, batch, total) = aggregate(&v(&[
            ("silhouette_label", Some(0.5)),
            ("ilisi_knn", Some(0.2)),
            ("bras", Some(0.4)),
        ]));
        assert_eq!(bio, Some(0.5));
        assert!((batch.unwrap() - 0.3).abs() < 1e-12);
        assert!((total.unwrap() - (0.3 + 0.12)).abs() < 1e-12);
        // one kind asked: Total is its aggregate
        assert_eq!(aggregate(&v(&[("ilisi_knn", Some(0.2))])).2, Some(0.2));
        // both asked, one undefined: no Total (as scib-metrics' NaN)
        let (_, batch, total) =
            aggregate(&v(&[("silhouette_label", Some(0.5)), ("ilisi_knn", None)]));
        assert_eq!((batch, total), (None, None));
    }
}
