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
    let w = scssl_data::neighbors::fuzzy_connectivities(nn);
    let res: Vec<f64> = (1..=10).map(|x| 2.0 * x as f64 / 10.0).collect();
    let scores: Vec<(f64, f64)> = res
        .par_iter()
        .map(|&r| {
            let c = crate::leiden::leiden(&w, r, 2, 0.01, seed);
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

#[cfg(test)]
mod tests {
    use super::*;

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
