//! Silhouette-based metrics: `silhouette_label`, `isolated_labels` and `silhouette_batch`, as
//! scib-metrics computes them (Euclidean distance, NaN silhouettes set to 0, rescaled scores).
//!
//! Distances come from blocked matrix products on centred data (no n×n memory), each tile of
//! products turned into distances once and used for both of its blocks (distances are
//! symmetric); each cell's per-label distance sums are tile sums in a fixed order accumulated as
//! fixed-point integers, whose addition is order-free, so results do not depend on the thread
//! count. The full silhouette is O(n²·d); compute it once with
//! [`silhouette_samples`] and pass it to both [`silhouette_label`] and [`isolated_labels`].

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use faer::{Mat, MatRef, Par};

use crate::codes::{dense, members};
use crate::error::{Result, check_embedding, check_len};

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

/// Rows per block of the symmetric distance sums: a 256 × 256 tile of dot products (256 KB)
/// stays in L2.
const SYMMETRIC_BLOCK: usize = 256;

/// For every cell `i` (rows of `flat`, sorted by label so that label `l` is the column range
/// `seg_start[l]..seg_start[l + 1]`), the sum of its distances to each label's cells, itself
/// excluded: `n × k` values, row-major.
///
/// Distances are symmetric, so each tile of dot products between two blocks of 256 cells is
/// computed once, turned into distances in place (one square root per pair), and summed both
/// ways: by rows into the first block's cells, by columns into the second's. Each tile's partial
/// sums are f32 sums in a fixed order (at most 256 terms); they are accumulated as 64-bit
/// fixed-point integers (scaled so that no total can overflow), whose addition is exact and
/// order-free, so tiles can be added from any thread in any order and the result does not
/// depend on the thread count.
fn label_distance_sums(
    distance: Distance,
    flat: &[f32],
    n: usize,
    d: usize,
    norms: &[f32],
    seg_start: &[usize],
) -> Vec<f64> {
    let k = seg_start.len() - 1;
    let b = SYMMETRIC_BLOCK;
    // a bound on any total: n times the largest possible distance (centred rows: at most twice
    // the largest norm; cosine: 2), with room to spare
    let max_norm = norms.iter().fold(0f32, |m, &v| m.max(v)).sqrt() as f64;
    let largest = match distance {
        Distance::Euclidean => 2.0 * max_norm,
        Distance::Cosine => 2.0,
    };
    let bound = 4.0 * (n as f64 + 1.0) * (largest + 1e-30);
    let scale = (1u64 << 61) as f64 / bound;
    let totals: Vec<AtomicU64> = (0..n * k).map(|_| AtomicU64::new(0)).collect();
    let add = |i: usize, l: usize, v: f64| {
        // two's complement keeps the addition exact whatever the sign
        totals[i * k + l].fetch_add((v * scale).round() as i64 as u64, Ordering::Relaxed);
    };
    let all = MatRef::from_row_major_slice(flat, n, d);
    let n_blocks = n.div_ceil(b);
    (0..n_blocks).into_par_iter().for_each(|bi| {
        let (i0, i1) = (bi * b, ((bi + 1) * b).min(n));
        let rows_i = all.subrows(i0, i1 - i0);
        // column r: cell i0 + r's dot products (then distances) with the other block's cells
        let mut tile = Mat::<f32>::zeros(b, b);
        let mut column_sums = vec![0f32; b];
        for bj in bi..n_blocks {
            let (j0, j1) = (bj * b, ((bj + 1) * b).min(n));
            faer::linalg::matmul::matmul(
                tile.as_mut().submatrix_mut(0, 0, j1 - j0, i1 - i0),
                faer::Accum::Replace,
                all.subrows(j0, j1 - j0),
                rows_i.transpose(),
                1.0,
                Par::Seq,
            );
            let blocks = TileBlocks {
                distance,
                norms,
                seg_start,
                rows: (i0, i1),
                cols: (j0, j1),
            };
            sum_tile(&blocks, &mut tile, &mut column_sums, &add);
        }
    });
    totals
        .into_iter()
        .map(|t| t.into_inner() as i64 as f64 / scale)
        .collect()
}

/// Where one tile of [`label_distance_sums`] lies: cells `rows.0..rows.1` (the tile's columns)
/// against cells `cols.0..cols.1` (its rows).
struct TileBlocks<'a> {
    distance: Distance,
    norms: &'a [f32],
    seg_start: &'a [usize],
    rows: (usize, usize),
    cols: (usize, usize),
}

impl TileBlocks<'_> {
    /// The labels that meet cells `lo..hi`, with the part of that range each one covers.
    fn labels_in(&self, lo: usize, hi: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let seg_start = self.seg_start;
        let k = seg_start.len() - 1;
        let first = seg_start.partition_point(|&s| s <= lo).saturating_sub(1);
        (first..k)
            .take_while(move |&l| seg_start[l] < hi)
            .filter_map(move |l| {
                let (a, c) = (seg_start[l].max(lo), seg_start[l + 1].min(hi));
                (a < c).then_some((l, a, c))
            })
    }
}

/// Turns one tile of dot products into distances and adds its per-label sums, by rows and (for
/// an off-diagonal tile) by columns, with the widest vectors this CPU has. Every operation is
/// element-wise or summed in an order fixed by [`sum_lanes`], so every CPU gives the same bits.
fn sum_tile(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    add: &(dyn Fn(usize, usize, f64) + Sync),
) {
    use scssl_data::simd::{Level, level};
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: each version runs only on a CPU that has its features.
        Level::Avx512 => return unsafe { sum_tile_avx512(blocks, tile, column_sums, add) },
        Level::Avx2 => return unsafe { sum_tile_avx2(blocks, tile, column_sums, add) },
        Level::Baseline => {}
    }
    sum_tile_lanes(blocks, tile, column_sums, add)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_tile_avx512(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    add: &(dyn Fn(usize, usize, f64) + Sync),
) {
    sum_tile_lanes(blocks, tile, column_sums, add)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_tile_avx2(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    add: &(dyn Fn(usize, usize, f64) + Sync),
) {
    sum_tile_lanes(blocks, tile, column_sums, add)
}

#[inline(always)]
fn sum_tile_lanes(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    add: &(dyn Fn(usize, usize, f64) + Sync),
) {
    let (i0, i1) = blocks.rows;
    let (j0, j1) = blocks.cols;
    let diagonal = i0 == j0;
    let norms = blocks.norms;
    for r in 0..(i1 - i0) {
        let col = &mut tile.col_as_slice_mut(r)[..j1 - j0];
        to_distances(blocks.distance, norms[i0 + r], &norms[j0..j1], col);
        if diagonal {
            // the cell itself: exactly 0, not the expansion's rounding residue
            col[r] = 0.0;
        }
    }
    // by rows: cell i's distances to the other block, per label
    for r in 0..(i1 - i0) {
        let col = &tile.col_as_slice(r)[..j1 - j0];
        for (l, a, c) in blocks.labels_in(j0, j1) {
            add(i0 + r, l, sum_lanes(&col[a - j0..c - j0]));
        }
    }
    if diagonal {
        // a diagonal tile is symmetric: its rows already hold every pair
        return;
    }
    // by columns: each cell of the other block's distances to this block, per label
    let sums = &mut column_sums[..j1 - j0];
    for (l, a, c) in blocks.labels_in(i0, i1) {
        sums.fill(0.0);
        for i in a..c {
            for (s, &v) in sums.iter_mut().zip(&tile.col_as_slice(i - i0)[..j1 - j0]) {
                *s += v;
            }
        }
        for (jj, &v) in sums.iter().enumerate() {
            add(j0 + jj, l, v as f64);
        }
    }
}

/// `dots[j] ← distance(i, j)` from the dot products and the squared norms (element-wise).
#[inline(always)]
fn to_distances(distance: Distance, ni: f32, norms: &[f32], dots: &mut [f32]) {
    match distance {
        Distance::Euclidean => {
            for (v, &nj) in dots.iter_mut().zip(norms) {
                *v = (ni + nj - 2.0 * *v).max(0.0).sqrt();
            }
        }
        Distance::Cosine => {
            for v in dots.iter_mut() {
                *v = (1.0 - *v).max(0.0);
            }
        }
    }
}

/// Σ values with eight f32 accumulators (sixteen values at a time, added in two halves), summed
/// in f64: a fixed order that vectorises at every width.
#[inline(always)]
fn sum_lanes(values: &[f32]) -> f64 {
    let mut acc = [0f32; 8];
    let c16 = values.chunks_exact(16);
    let rest = c16.remainder();
    for v in c16 {
        for l in 0..8 {
            acc[l] += v[l];
        }
        for l in 0..8 {
            acc[l] += v[8 + l];
        }
    }
    let c8 = rest.chunks_exact(8);
    let tail = c8.remainder();
    for v in c8 {
        for l in 0..8 {
            acc[l] += v[l];
        }
    }
    let tail: f32 = tail.iter().sum();
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
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

    #[test]
    fn every_tile_kernel_version_gives_the_same_bits() {
        // labels that straddle both blocks, lengths with 16-lane, 8-lane and tail parts
        let seg_start = [0usize, 29, 61, 300, 317, 512];
        let norms: Vec<f32> = (0..512).map(|j| (j as f32 * 0.37).sin() + 1.5).collect();
        for distance in [Distance::Euclidean, Distance::Cosine] {
            for (rows, cols) in [((0, 256), (256, 512)), ((256, 512), (256, 512))] {
                let blocks = TileBlocks {
                    distance,
                    norms: &norms,
                    seg_start: &seg_start,
                    rows,
                    cols,
                };
                let dots = Mat::<f32>::from_fn(SYMMETRIC_BLOCK, SYMMETRIC_BLOCK, |a, b| {
                    ((a * 31 + b * 17) as f32 * 0.013).cos() * 0.4
                });
                let run = |dispatched: bool| {
                    let got = std::sync::Mutex::new(Vec::new());
                    let add = |i: usize, l: usize, v: f64| {
                        got.lock().unwrap().push((i, l, v.to_bits()));
                    };
                    let (mut tile, mut sums) = (dots.clone(), vec![0f32; SYMMETRIC_BLOCK]);
                    if dispatched {
                        sum_tile(&blocks, &mut tile, &mut sums, &add);
                    } else {
                        sum_tile_lanes(&blocks, &mut tile, &mut sums, &add);
                    }
                    got.into_inner().unwrap()
                };
                let lanes = run(false);
                assert_eq!(lanes, run(true), "{distance:?} {rows:?}");
                // the sums against a direct f64 computation
                let dist = |i: usize, j: usize| {
                    if i == j {
                        return 0.0;
                    }
                    let dot = dots[(j - cols.0, i - rows.0)] as f64;
                    match distance {
                        Distance::Euclidean => (norms[i] as f64 + norms[j] as f64 - 2.0 * dot)
                            .max(0.0)
                            .sqrt(),
                        Distance::Cosine => (1.0 - dot).max(0.0),
                    }
                };
                let mut want = std::collections::HashMap::<(usize, usize), f64>::new();
                for i in rows.0..rows.1 {
                    for j in cols.0..cols.1 {
                        let label_of = |c: usize| seg_start.partition_point(|&s| s <= c) - 1;
                        *want.entry((i, label_of(j))).or_default() += dist(i, j);
                        if rows != cols {
                            *want.entry((j, label_of(i))).or_default() += dist(i, j);
                        }
                    }
                }
                let mut got = std::collections::HashMap::<(usize, usize), f64>::new();
                for (i, l, v) in lanes {
                    *got.entry((i, l)).or_default() += f64::from_bits(v);
                }
                assert_eq!(got.len(), want.len());
                for (key, w) in want {
                    let g = got[&key];
                    assert!((g - w).abs() < 1e-5 * (1.0 + w), "{key:?}: {g} vs {w}");
                }
            }
        }
    }
}
