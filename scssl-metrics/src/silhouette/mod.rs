//! Silhouette-based metrics: `silhouette_label`, `isolated_labels` and `silhouette_batch`, as
//! scib-metrics computes them (Euclidean distance, NaN silhouettes set to 0, rescaled scores).
//!
//! Distances come from blocked matrix products on centred data (no n×n memory), each tile of
//! products turned into distances once and used for both of its blocks (distances are
//! symmetric); each cell's per-label distance sums are tile sums in a fixed order accumulated as
//! fixed-point integers, whose addition is order-free, so results do not depend on the thread
//! count. The full silhouette is O(n²·d); compute it once with
//! [`silhouette_samples`] and pass it to both [`silhouette_label`] and [`isolated_labels`].

use crate::codes::{dense, members};
use crate::error::{Result, check_embedding, check_len};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

mod tiles;
use tiles::{SYMMETRIC_BLOCK, label_distance_sums};

/// Per-cell silhouette `s(i) = (b − a)/max(a, b)` with `a` the mean distance to the cell's own
/// label (excluding itself), `b` the smallest mean distance to another label; `NaN` (a label of
/// one cell, or a single label) is set to 0, as scib-metrics does.
pub fn silhouette_samples(x: ArrayView2<'_, f32>, labels: &[u32]) -> Result<Vec<f64>> {
    silhouette_samples_with(x, labels, Distance::Euclidean, Between::Nearest)
}

/// Distance used by the silhouette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// Euclidean (scib-metrics' default).
    Euclidean,
    /// Cosine distance `1 − cos` (BRAS).
    Cosine,
}

/// How `b(i)` is formed from the other groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Between {
    /// Mean distance to the nearest other group (the classic silhouette).
    Nearest,
    /// Mean distance to all cells of the other groups (BRAS).
    MeanOther,
}

/// [`silhouette_samples`] with a chosen distance and between-group rule.
pub fn silhouette_samples_with(
    x: ArrayView2<'_, f32>,
    labels: &[u32],
    distance: Distance,
    between: Between,
) -> Result<Vec<f64>> {
    check_embedding(x)?;
    check_len("labels", x.nrows(), labels.len())?;
    let (codes, k) = dense(labels);
    let n = x.nrows();
    if n == 0 {
        return Ok(vec![]);
    }
    let groups = members(&codes, k);
    let sizes: Vec<usize> = groups.iter().map(|m| m.len()).collect();
    // cells sorted by label, so that each label is a contiguous range of columns and the
    // per-label distance sums vectorise
    let order: Vec<usize> = groups.iter().flatten().copied().collect();
    let mut seg_start = vec![0usize; k + 1];
    for l in 0..k {
        seg_start[l + 1] = seg_start[l] + sizes[l];
    }
    let xs = x.select(Axis(0), &order);
    // centring keeps |x|² small, which keeps the |x|² + |y|² − 2x·y expansion accurate;
    // for the cosine distance rows are scaled to unit length instead
    let xc: Array2<f32> = match distance {
        Distance::Euclidean => {
            let mean = xs
                .mean_axis(Axis(0))
                .unwrap_or_else(|| ndarray::Array1::zeros(xs.ncols()));
            &xs - &mean
        }
        Distance::Cosine => {
            let mut u = xs.clone();
            for mut r in u.rows_mut() {
                let nrm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                if nrm > 0.0 {
                    r.mapv_inplace(|v| v / nrm);
                }
            }
            u
        }
    };
    let xc = xc.as_standard_layout().to_owned();
    let d = xc.ncols();
    let flat = xc.as_slice().unwrap_or(&[]);
    let norms: Vec<f32> = xc
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let sums = label_distance_sums(distance, flat, n, d, &norms, &seg_start);
    let blocks: Vec<(usize, &[f64])> = sums
        .chunks(SYMMETRIC_BLOCK * k.max(1))
        .enumerate()
        .map(|(b, c)| (b * SYMMETRIC_BLOCK, c))
        .collect();
    let sorted: Vec<Vec<f64>> = blocks
        .into_par_iter()
        .map(|(s, sums)| {
            let e = (s + sums.len() / k.max(1)).min(n);
            (0..(e - s))
                .map(|r| {
                    let own = codes[order[s + r]] as usize;
                    let row_sums = &sums[r * k..(r + 1) * k];
                    let a = row_sums[own] / (sizes[own] as f64 - 1.0);
                    let b = match between {
                        Between::Nearest => (0..k)
                            .filter(|&l| l != own && sizes[l] > 0)
                            .map(|l| row_sums[l] / sizes[l] as f64)
                            .fold(f64::INFINITY, f64::min),
                        Between::MeanOther => {
                            let others = n - sizes[own];
                            (0..k)
                                .filter(|&l| l != own)
                                .map(|l| row_sums[l])
                                .sum::<f64>()
                                / others as f64
                        }
                    };
                    let sil = (b - a) / a.max(b);
                    if sil.is_finite() { sil } else { 0.0 }
                })
                .collect()
        })
        .collect();
    // back to the input order
    let mut out = vec![0f64; n];
    for (p, v) in sorted.into_iter().flatten().enumerate() {
        out[order[p]] = v;
    }
    Ok(out)
}

/// The caller's silhouette samples (checked for length), or freshly computed ones kept in `slot`.
fn given_or_computed<'a>(
    x: ArrayView2<'_, f32>,
    labels: &[u32],
    samples: Option<&'a [f64]>,
    slot: &'a mut Vec<f64>,
) -> Result<&'a [f64]> {
    match samples {
        Some(s) => {
            check_len("silhouette samples", x.nrows(), s.len())?;
            Ok(s)
        }
        None => {
            *slot = silhouette_samples(x, labels)?;
            Ok(slot)
        }
    }
}

/// `silhouette_label`: `(mean silhouette + 1)/2` over all cells. Pass `samples` from
/// [`silhouette_samples`] to reuse them, or `None` to compute them.
pub fn silhouette_label(
    x: ArrayView2<'_, f32>,
    labels: &[u32],
    samples: Option<&[f64]>,
) -> Result<f64> {
    let mut owned = Vec::new();
    let s = given_or_computed(x, labels, samples, &mut owned)?;
    let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
    Ok((mean + 1.0) / 2.0)
}

/// The labels scib-metrics treats as isolated: those present in the fewest batches (every label
/// when all labels span the same number of batches). Returned as dense label codes.
pub fn isolated_label_codes(labels: &[u32], batches: &[u32]) -> Vec<u32> {
    let (lc, k) = dense(labels);
    let (bc, _) = dense(batches);
    let mut seen: Vec<std::collections::BTreeSet<u32>> = vec![Default::default(); k];
    for (l, b) in lc.iter().zip(&bc) {
        seen[*l as usize].insert(*b);
    }
    let min = seen.iter().map(|s| s.len()).min().unwrap_or(0);
    (0..k as u32)
        .filter(|&l| seen[l as usize].len() <= min)
        .collect()
}

/// `isolated_labels` (ASW variant, as scib-metrics computes it): the all-label silhouette,
/// rescaled per cell to `(s + 1)/2`, averaged within each isolated label, then over them.
pub fn isolated_labels(
    x: ArrayView2<'_, f32>,
    labels: &[u32],
    batches: &[u32],
    samples: Option<&[f64]>,
) -> Result<f64> {
    check_len("batches", x.nrows(), batches.len())?;
    let mut owned = Vec::new();
    let s = given_or_computed(x, labels, samples, &mut owned)?;
    let (lc, k) = dense(labels);
    let groups = members(&lc, k);
    let iso = isolated_label_codes(labels, batches);
    let per: Vec<f64> = iso
        .iter()
        .map(|&l| {
            let m = &groups[l as usize];
            m.iter().map(|&i| (s[i] + 1.0) / 2.0).sum::<f64>() / m.len() as f64
        })
        .collect();
    Ok(per.iter().sum::<f64>() / per.len().max(1) as f64)
}

/// `silhouette_batch`: for each label with cells from at least two batches (and not one cell
/// per batch), the batch silhouette of its cells, per cell `1 − |s|`, averaged within the label,
/// then over labels. `None` when every label is skipped (scib-metrics raises there).
pub fn silhouette_batch(
    x: ArrayView2<'_, f32>,
    labels: &[u32],
    batches: &[u32],
) -> Result<Option<f64>> {
    silhouette_batch_with(x, labels, batches, Distance::Euclidean, Between::Nearest)
}

/// `bras` (scib-metrics ≥ 0.6's default batch silhouette): [`silhouette_batch`] with the cosine
/// distance and the mean distance to all other batches.
pub fn bras(x: ArrayView2<'_, f32>, labels: &[u32], batches: &[u32]) -> Result<Option<f64>> {
    silhouette_batch_with(x, labels, batches, Distance::Cosine, Between::MeanOther)
}

/// [`silhouette_batch`] with a chosen distance and between-group rule.
pub fn silhouette_batch_with(
    x: ArrayView2<'_, f32>,
    labels: &[u32],
    batches: &[u32],
    distance: Distance,
    between: Between,
) -> Result<Option<f64>> {
    check_embedding(x)?;
    check_len("labels", x.nrows(), labels.len())?;
    check_len("batches", x.nrows(), batches.len())?;
    let (lc, k) = dense(labels);
    let mut scores = vec![];
    for cells in members(&lc, k) {
        let b: Vec<u32> = cells.iter().map(|&i| batches[i]).collect();
        let n_b = dense(&b).1;
        if n_b == 1 || n_b == cells.len() {
            continue;
        }
        let sub = x.select(Axis(0), &cells);
        let s = silhouette_samples_with(sub.view(), &b, distance, between)?;
        scores.push(s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64);
    }
    Ok((!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// sklearn's silhouette_samples by direct definition.
    fn naive(x: &Array2<f32>, labels: &[u32]) -> Vec<f64> {
        let n = x.nrows();
        let d = |i: usize, j: usize| {
            x.row(i)
                .iter()
                .zip(x.row(j))
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let ls: std::collections::BTreeSet<u32> = labels.iter().copied().collect();
        (0..n)
            .map(|i| {
                let own: Vec<usize> = (0..n)
                    .filter(|&j| labels[j] == labels[i] && j != i)
                    .collect();
                let a = own.iter().map(|&j| d(i, j)).sum::<f64>() / own.len() as f64;
                let b = ls
                    .iter()
                    .filter(|&&l| l != labels[i])
                    .map(|&l| {
                        let o: Vec<usize> = (0..n).filter(|&j| labels[j] == l).collect();
                        o.iter().map(|&j| d(i, j)).sum::<f64>() / o.len() as f64
                    })
                    .fold(f64::INFINITY, f64::min);
                let s = (b - a) / a.max(b);
                if s.is_finite() { s } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn symmetric_tiles_match_the_definition_and_ignore_the_thread_count() {
        // more cells than three blocks, labels of uneven sizes that straddle block edges
        let n = 3 * SYMMETRIC_BLOCK + 117;
        let x = Array2::from_shape_fn((n, 4), |(i, c)| {
            ((i * 7919 + c * 104_729) % 1009) as f32 / 97.0 + (i % 5) as f32 * 3.0
        });
        let l: Vec<u32> = (0..n).map(|i| ((i * i) % 7 % 5) as u32).collect();
        let got = silhouette_samples(x.view(), &l).unwrap();
        for (i, (a, b)) in got.iter().zip(naive(&x, &l)).enumerate() {
            assert!((a - b).abs() < 1e-5, "cell {i}: {a} vs {b}");
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| silhouette_samples(x.view(), &l).unwrap());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one), bits(&got), "1 thread against the pool");
    }

    #[test]
    fn matches_the_definition() {
        let x = array![
            [0.0f32, 0.0],
            [0.1, 0.0],
            [5.0, 5.0],
            [5.2, 4.9],
            [10.0, 0.0],
            [0.2, 0.3],
            [9.0, 1.0]
        ];
        let l = [0, 0, 1, 1, 2, 0, 2];
        let got = silhouette_samples(x.view(), &l).unwrap();
        for (a, b) in got.iter().zip(naive(&x, &l)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // a singleton label gets 0; one label overall gives 0 everywhere
        let s = silhouette_samples(x.view(), &[0, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!(s[4], 0.0);
        assert!(
            silhouette_samples(x.view(), &[3; 7])
                .unwrap()
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn cosine_mean_other_matches_its_definition() {
        let x = array![
            [1.0f32, 0.0],
            [0.9, 0.2],
            [0.0, 1.0],
            [0.1, 0.8],
            [0.7, 0.7]
        ];
        let l = [0, 0, 1, 1, 2];
        let got =
            silhouette_samples_with(x.view(), &l, Distance::Cosine, Between::MeanOther).unwrap();
        let unit: Vec<Vec<f64>> = x
            .rows()
            .into_iter()
            .map(|r| {
                let n = r.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt();
                r.iter().map(|&v| v as f64 / n).collect()
            })
            .collect();
        let d = |i: usize, j: usize| {
            1.0 - unit[i]
                .iter()
                .zip(&unit[j])
                .map(|(a, b)| a * b)
                .sum::<f64>()
        };
        for i in 0..5 {
            let own: Vec<usize> = (0..5).filter(|&j| l[j] == l[i] && j != i).collect();
            let other: Vec<usize> = (0..5).filter(|&j| l[j] != l[i]).collect();
            let a = own.iter().map(|&j| d(i, j)).sum::<f64>() / own.len() as f64;
            let b = other.iter().map(|&j| d(i, j)).sum::<f64>() / other.len() as f64;
            let want = if own.is_empty() {
                0.0
            } else {
                (b - a) / a.max(b)
            };
            assert!(
                (got[i] - want).abs() < 1e-5,
                "cell {i}: {} vs {want}",
                got[i]
            );
        }
    }

    #[test]
    fn isolated_and_batch_variants() {
        let x = array![[0.0f32], [0.1], [0.2], [5.0], [5.1], [5.3]];
        let labels = [0, 0, 0, 1, 1, 1];
        let batches = [0, 1, 0, 1, 0, 1];
        // both labels span both batches: all labels are isolated
        assert_eq!(isolated_label_codes(&labels, &batches), vec![0, 1]);
        let iso = isolated_labels(x.view(), &labels, &batches, None).unwrap();
        let lab = silhouette_label(x.view(), &labels, None).unwrap();
        assert!(
            (iso - lab).abs() < 1e-12,
            "balanced labels: iso == label ASW"
        );
        // a label in one batch only is the isolated one
        assert_eq!(isolated_label_codes(&[0, 0, 1, 1], &[0, 1, 0, 0]), vec![1]);
        let sb = silhouette_batch(x.view(), &labels, &batches)
            .unwrap()
            .unwrap();
        assert!((0.0..=1.0).contains(&sb));
        assert_eq!(
            silhouette_batch(x.view(), &labels, &[0; 6]).unwrap(),
            None,
            "one batch: every label skipped"
        );
        assert!(silhouette_samples(array![[f32::NAN]].view(), &[0]).is_err());
        assert!(silhouette_samples(x.view(), &[0, 1]).is_err());
    }
}
