//! Agreement between two labelings: NMI (arithmetic normalisation) and ARI, as scikit-learn
//! computes them.

use crate::codes::dense;

fn contingency(a: &[u32], b: &[u32]) -> (Vec<Vec<u64>>, Vec<u64>, Vec<u64>) {
    let (ca, ka) = dense(a);
    let (cb, kb) = dense(b);
    let mut t = vec![vec![0u64; kb]; ka];
    for (x, y) in ca.iter().zip(&cb) {
        t[*x as usize][*y as usize] += 1;
    }
    let ra: Vec<u64> = t.iter().map(|r| r.iter().sum()).collect();
    let rb: Vec<u64> = (0..kb).map(|j| t.iter().map(|r| r[j]).sum()).collect();
    (t, ra, rb)
}

fn entropy(counts: &[u64], n: f64) -> f64 {
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// `normalized_mutual_info_score(a, b, average_method="arithmetic")`.
pub fn nmi(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len() as f64;
    let (t, ra, rb) = contingency(a, b);
    if (ra.len() == 1 && rb.len() == 1) || a.is_empty() {
        return 1.0;
    }
    let mut mi = 0.0;
    for (i, row) in t.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            if c > 0 {
                let c = c as f64;
                mi += c / n * ((c * n) / (ra[i] as f64 * rb[j] as f64)).ln();
            }
        }
    }
    let (ha, hb) = (entropy(&ra, n), entropy(&rb, n));
    let denom = (ha + hb) / 2.0;
    if denom <= 0.0 {
        1.0
    } else {
        (mi / denom).clamp(0.0, 1.0)
    }
}

/// `adjusted_rand_score(a, b)`.
pub fn ari(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len() as u64;
    let (t, ra, rb) = contingency(a, b);
    // special cases as scikit-learn: identical trivial partitions are a perfect match
    if ra.len() == rb.len() && (ra.len() <= 1 || ra.len() as u64 == n) {
        return 1.0;
    }
    let c2 = |x: u64| (x * x.saturating_sub(1) / 2) as f64;
    let sum_comb: f64 = t.iter().flatten().map(|&c| c2(c)).sum();
    let sa: f64 = ra.iter().map(|&c| c2(c)).sum();
    let sb: f64 = rb.iter().map(|&c| c2(c)).sum();
    let total = c2(n);
    let expected = sa * sb / total;
    let max = (sa + sb) / 2.0;
    if max == expected {
        1.0
    } else {
        (sum_comb - expected) / (max - expected)
    }
}

/// The result of the Leiden resolution sweep.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeidenNmiAri {
    /// NMI of the best resolution.
    pub nmi: f64,
    /// ARI at that resolution (not maximised separately).
    pub ari: f64,
    /// The resolution with the best NMI.
    pub resolution: f64,
}

/// `nmi_ari_cluster_labels_leiden`: Leiden (modularity) on the UMAP connectivities of the kNN
/// table (scSSL-Bench: 15-NN) at resolutions 0.2, 0.4, …, 2.0; the resolution with the best NMI
/// against `labels` (first on ties) and its NMI and ARI. Resolutions run in parallel, each with
/// the same seed, so the result does not depend on the thread count.
pub fn nmi_ari_cluster_labels_leiden(
    nn: &scssl_data::Neighbors,
    labels: &[u32],
    seed: u64,
) -> crate::Result<LeidenNmiAri> {
    use rayon::prelude::*;
    crate::error::check_len("labels", nn.n_cells(), labels.len())?;
    let graph = crate::leiden::LeidenGraph::new(&scssl_data::neighbors::fuzzy_connectivities(nn));
    let res: Vec<f64> = (1..=10).map(|x| 2.0 * x as f64 / 10.0).collect();
    // one resolution per task (rayon otherwise hands out runs of several, and a thread that
    // finishes its other work cannot take them over)
    let scores: Vec<(f64, f64)> = res
        .par_iter()
        .with_max_len(1)
        .map(|&r| {
            let c = graph.cluster(r, 2, 0.01, seed);
            (nmi(labels, &c), ari(labels, &c))
        })
        .collect();
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.0 > scores[best].0 {
            best = i;
        }
    }
    Ok(LeidenNmiAri {
        nmi: scores[best].0,
        ari: scores[best].1,
        resolution: res[best],
    })
}

/// k-means as scib-metrics' `KMeans(n_clusters)` runs it: the data centred on its mean,
/// `n_init` runs from `k` distinct random cells, Lloyd iterations until the mean Euclidean
/// distance to the nearest centre changes by less than `tol` (or `max_iter` passes), an empty
/// cluster's centre at the data mean; the run with the lowest mean distance wins (the first on
/// ties). Runs are seeded `seed + run`, so the result does not depend on the thread count.
pub fn kmeans(
    x: ndarray::ArrayView2<'_, f32>,
    k: usize,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
) -> crate::Result<Vec<u32>> {
    use rand::SeedableRng;
    use rand::seq::index::sample;
    use rayon::prelude::*;
    crate::error::check_embedding(x)?;
    let (n, d) = x.dim();
    if k == 0 || k > n {
        return Err(crate::Error::Invalid(format!(
            "k-means needs 1 ≤ k ≤ cells, got k = {k} for {n} cells"
        )));
    }
    let mean = x
        .mean_axis(ndarray::Axis(0))
        .unwrap_or_else(|| ndarray::Array1::zeros(d));
    let xc = &x - &mean;
    let assign = |centres: &ndarray::Array2<f32>| -> (Vec<u32>, f64) {
        let nearest: Vec<(u32, f64)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let row = xc.row(i);
                let mut best = (0u32, f64::INFINITY);
                for (c, centre) in centres.rows().into_iter().enumerate() {
                    let d2: f64 = row
                        .iter()
                        .zip(centre)
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum();
                    if d2 < best.1 {
                        best = (c as u32, d2);
                    }
                }
                (best.0, best.1.sqrt())
            })
            .collect();
        let inertia = nearest.iter().map(|p| p.1).sum::<f64>() / n as f64;
        (nearest.into_iter().map(|p| p.0).collect(), inertia)
    };
    let run = |r: usize| -> (f64, Vec<u32>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(r as u64));
        let first = sample(&mut rng, n, k);
        let mut centres = ndarray::Array2::<f32>::zeros((k, d));
        for (c, i) in first.iter().enumerate() {
            centres.row_mut(c).assign(&xc.row(i));
        }
        let (mut labels, mut inertia) = assign(&centres);
        for _ in 0..max_iter {
            let mut sums = ndarray::Array2::<f64>::zeros((k, d));
            let mut counts = vec![0usize; k];
            for (i, &c) in labels.iter().enumerate() {
                counts[c as usize] += 1;
                for (s, v) in sums.row_mut(c as usize).iter_mut().zip(xc.row(i)) {
                    *s += *v as f64;
                }
            }
            for c in 0..k {
                let count = counts[c].max(1) as f64;
                for (t, s) in centres.row_mut(c).iter_mut().zip(sums.row(c)) {
                    *t = (*s / count) as f32;
                }
            }
            let (new_labels, new_inertia) = assign(&centres);
            let converged = (inertia - new_inertia).abs() < tol;
            labels = new_labels;
            inertia = new_inertia;
            if converged {
                break;
            }
        }
        (inertia, labels)
    };
    let runs: Vec<(f64, Vec<u32>)> = (0..n_init.max(1)).map(run).collect();
    let best = runs
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.0.total_cmp(&b.1.0).then(a.0.cmp(&b.0)))
        .map_or(0, |(i, _)| i);
    Ok(runs.into_iter().nth(best).map(|r| r.1).unwrap_or_default())
}

/// `nmi_ari_cluster_labels_kmeans` (scib-metrics ≥ 0.5's default clustering metric): k-means
/// with k = the number of labels (10 runs, as scib-metrics' `KMeans`), then NMI and ARI of the
/// clusters against the labels. Returns (nmi, ari).
pub fn nmi_ari_cluster_labels_kmeans(
    x: ndarray::ArrayView2<'_, f32>,
    labels: &[u32],
    seed: u64,
) -> crate::Result<(f64, f64)> {
    crate::error::check_len("labels", x.nrows(), labels.len())?;
    let k = dense(labels).1;
    let clusters = kmeans(x, k, 10, 300, 1e-4, seed)?;
    Ok((nmi(labels, &clusters), ari(labels, &clusters)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_finds_separated_clusters_and_is_seeded() {
        // three tight groups far apart
        let x = ndarray::Array2::from_shape_fn((90, 2), |(i, j)| {
            (i / 30) as f32 * 10.0 + ((i * 7 + j * 3) % 5) as f32 * 0.1
        });
        let labels: Vec<u32> = (0..90).map(|i| (i / 30) as u32).collect();
        let (nmi_v, ari_v) = nmi_ari_cluster_labels_kmeans(x.view(), &labels, 0).unwrap();
        assert!((nmi_v - 1.0).abs() < 1e-12 && (ari_v - 1.0).abs() < 1e-12);
        assert_eq!(
            kmeans(x.view(), 3, 10, 300, 1e-4, 5).unwrap(),
            kmeans(x.view(), 3, 10, 300, 1e-4, 5).unwrap()
        );
        assert!(kmeans(x.view(), 0, 1, 10, 1e-4, 0).is_err());
    }

    #[test]
    fn known_values() {
        // sklearn: nmi([0,0,1,1],[0,0,1,1]) = 1; ari = 1; permutation invariant
        assert!((nmi(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        assert!((ari(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        // sklearn.metrics.adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
        assert!((ari(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.5714285714285715).abs() < 1e-12);
        // normalized_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.8
        assert!((nmi(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.8).abs() < 1e-12);
        // adjusted_rand_score([0,0,0,1,1,1],[0,1,2,0,1,2]) = -0.36363636363636365
        assert!(
            (ari(&[0, 0, 0, 1, 1, 1], &[0, 1, 2, 0, 1, 2]) + 0.36363636363636365).abs() < 1e-12
        );
        assert!(nmi(&[0, 0, 0, 1, 1, 1], &[0, 1, 2, 0, 1, 2]).abs() < 1e-12);
    }
}
