//! Invariants of the metrics (proptest): label permutation invariance, scores in [0, 1], a
//! label-leaking embedding scores high on bio conservation, a pure-batch embedding low on batch.

use ndarray::Array2;
use proptest::prelude::*;
use scssl_metrics::report::{EvalInput, Metric, evaluate};
use scssl_metrics::{annotate, cluster};

/// Every metric, with the embedding as its own pre-integration embedding.
fn evaluate_all(x: &Array2<f32>, labels: &[u32], batches: &[u32]) -> scssl_metrics::report::Report {
    evaluate(
        &EvalInput {
            embedding: x.view(),
            labels,
            batches,
            pre_integration: Some(x.view()),
        },
        &Metric::ALL,
        0,
    )
    .unwrap()
}

fn blobs(
    n: usize,
    k: u32,
    nb: u32,
    sep: f32,
    batch_shift: f32,
    seed: u64,
) -> (Array2<f32>, Vec<u32>, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<u32> = (0..n).map(|i| i as u32 % k).collect();
    let batches: Vec<u32> = (0..n).map(|_| r.random_range(0..nb)).collect();
    let x = Array2::from_shape_fn((n, 4), |(i, j)| {
        let l = labels[i] as f32;
        let b = batches[i] as f32;
        (if j == 0 { l * sep } else { 0.0 })
            + (if j == 1 { b * batch_shift } else { 0.0 })
            + r.random::<f32>()
    });
    (x, labels, batches)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn scores_in_unit_interval_and_label_permutation_invariant(seed in 0u64..1000, k in 2u32..5, shift in 0.0f32..5.0) {
        let (x, labels, batches) = blobs(120, k, 2, 3.0, shift, seed);
        let r = evaluate(&EvalInput { embedding: x.view(), labels: &labels, batches: &batches, pre_integration: Some(x.view()) }, &Metric::ALL, 0).unwrap();
        for (key, v) in &r.metrics {
            if let Some(v) = v {
                prop_assert!((-1e-9..=1.0 + 1e-9).contains(v), "{} = {}", key, v);
            }
        }
        // renaming labels (a permutation of codes) changes nothing
        let perm: Vec<u32> = labels.iter().map(|&l| (l + 1) % k + 10).collect();
        let r2 = evaluate(&EvalInput { embedding: x.view(), labels: &perm, batches: &batches, pre_integration: Some(x.view()) }, &Metric::ALL, 0).unwrap();
        for (key, v) in &r.metrics {
            let w = r2.metrics[key];
            match (v, w) {
                // LISI runs in f32 as in scib-metrics: summation order of labels moves the last bits
                (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-6, "{}: {} vs {}", key, a, b),
                (a, b) => prop_assert_eq!(a.is_some(), b.is_some()),
            }
        }
        prop_assert!((cluster::nmi(&labels, &perm) - 1.0).abs() < 1e-12);
        prop_assert!((cluster::ari(&labels, &perm) - 1.0).abs() < 1e-12);
    }
}

#[test]
fn leaking_labels_score_high_bio_and_pure_batch_scores_low_batch() {
    let (x, labels, batches) = blobs(300, 3, 2, 20.0, 0.0, 1);
    let r = evaluate(
        &EvalInput {
            embedding: x.view(),
            labels: &labels,
            batches: &batches,
            pre_integration: None,
        },
        &Metric::ALL,
        0,
    )
    .unwrap();
    assert!(r.bio_conservation.unwrap() > 0.9, "{:?}", r.metrics);
    // an embedding that only encodes the batch
    let pure = Array2::from_shape_fn((300, 2), |(i, j)| {
        if j == 0 {
            batches[i] as f32 * 50.0
        } else {
            (i % 5) as f32 * 0.01
        }
    });
    let r = evaluate(
        &EvalInput {
            embedding: pure.view(),
            labels: &labels,
            batches: &batches,
            pre_integration: None,
        },
        &Metric::ALL,
        0,
    )
    .unwrap();
    assert!(
        r.metrics["ilisi_knn"].unwrap() < 0.05 && r.metrics["silhouette_batch"].unwrap() < 0.3,
        "{:?}",
        r.metrics
    );
    // one batch: batch metrics undefined with a reason, bio metrics still computed
    let one = vec![0u32; 300];
    let r = evaluate_all(&x, &labels, &one);
    assert_eq!(r.metrics["ilisi_knn"], None);
    assert!(r.notes["ilisi_knn"].contains("single batch"));
    assert_eq!(
        r.metrics["graph_connectivity"], None,
        "no batch to connect across"
    );
    assert!(r.metrics["silhouette_label"].is_some());
    assert!(r.bio_conservation.is_some());
    assert_eq!(r.batch_correction, None);
    assert_eq!(r.total, None, "Total needs both aggregates");
    // one label: bio metrics undefined with a reason (not NMI 0 against a constant)
    let one_label = vec![0u32; 300];
    let r = evaluate_all(&x, &one_label, &batches);
    for k in [
        "isolated_labels",
        "nmi_ari_cluster_labels_leiden_nmi",
        "nmi_ari_cluster_labels_leiden_ari",
        "silhouette_label",
        "clisi_knn",
    ] {
        assert_eq!(r.metrics[k], None, "{k}");
    }
    assert!(r.notes["silhouette_label"].contains("single label"));
    assert!(r.metrics["ilisi_knn"].is_some() && r.batch_correction.is_some());
    assert_eq!((r.bio_conservation, r.total), (None, None));
    // asking for bio metrics alone: Total is Bio
    let bio_only = [Metric::SilhouetteLabel, Metric::IsolatedLabels];
    let r = evaluate(
        &EvalInput {
            embedding: x.view(),
            labels: &labels,
            batches: &batches,
            pre_integration: None,
        },
        &bio_only,
        0,
    )
    .unwrap();
    assert_eq!(r.total, r.bio_conservation);
    assert!(r.total.is_some());
    // bad input is an error naming the problem
    let mut bad = x.clone();
    bad[[3, 1]] = f32::NAN;
    let e = evaluate(
        &EvalInput {
            embedding: bad.view(),
            labels: &labels,
            batches: &batches,
            pre_integration: None,
        },
        &Metric::ALL,
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 3") && e.contains("column 1"), "{e}");
    assert!(
        evaluate(
            &EvalInput {
                embedding: x.view(),
                labels: &labels[..10],
                batches: &batches,
                pre_integration: None
            },
            &Metric::ALL,
            0
        )
        .is_err()
    );
    // annotation on the leaking embedding is perfect
    let a = annotate::annotate(x.view(), &labels, x.view(), &labels, 11).unwrap();
    assert_eq!(a.all.accuracy, 1.0);
}
