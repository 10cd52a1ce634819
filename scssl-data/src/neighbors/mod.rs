//! Neighbour graphs: the [`Neighbors`] type (self in column 0 at distance exactly 0), exact
//! and approximate kNN, UMAP fuzzy connectivities, BBKNN and mutual nearest neighbours.

mod exact;
mod exact_self;
mod graph;
pub(crate) mod nndescent;
pub mod tiles;

pub use exact::{knn_exact, knn_query};
pub use graph::{
    Bbknn, MnnPairs, bbknn, fuzzy_connectivities, knn_within_groups, mutual_nearest_neighbors,
};
pub use nndescent::{MAX_LIST_FACTOR, NnDescentParams, RECALL_SAMPLE, knn_nndescent, min_list_len};

use ndarray::{Array2, ArrayView2, s};

use crate::error::{Error, Result};

/// A k-nearest-neighbour table: row `i` lists `k` cells ordered by distance, **cell `i` itself
/// first at distance exactly 0** (the convention of scib-metrics and pynndescent; UMAP's
/// connectivities depend on it).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    /// Neighbour ids, cells × k.
    pub indices: Array2<u32>,
    /// Euclidean distances, cells × k, non-decreasing along each row.
    pub distances: Array2<f32>,
}

impl Neighbors {
    /// Builds a table after checking shapes, the self-first convention and index bounds.
    pub fn new(indices: Array2<u32>, distances: Array2<f32>) -> Result<Self> {
        if indices.dim() != distances.dim() {
            return Err(Error::shape(
                "neighbour distances",
                format!("{:?}", indices.dim()),
                format!("{:?}", distances.dim()),
            ));
        }
        let n = indices.nrows();
        for i in 0..n {
            if indices.ncols() > 0 && (indices[[i, 0]] as usize != i || distances[[i, 0]] != 0.0) {
                return Err(Error::param(
                    "indices",
                    format!("row {i} must start with the cell itself at distance 0"),
                ));
            }
            if let Some(&bad) = indices.row(i).iter().find(|&&j| j as usize >= n) {
                return Err(Error::param(
                    "indices",
                    format!("row {i} names cell {bad}, but there are {n} cells"),
                ));
            }
        }
        Ok(Self { indices, distances })
    }
    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.indices.nrows()
    }
    /// Neighbours per cell, self included.
    pub fn k(&self) -> usize {
        self.indices.ncols()
    }
    /// The first `k` columns (scib-metrics' `subset_neighbors`).
    pub fn subset(&self, k: usize) -> Result<Neighbors> {
        if k == 0 || k > self.k() {
            return Err(Error::param(
                "k",
                format!("must be in 1..={}, got {k}", self.k()),
            ));
        }
        Ok(Neighbors {
            indices: self.indices.slice(s![.., ..k]).to_owned(),
            distances: self.distances.slice(s![.., ..k]).to_owned(),
        })
    }
}

/// How to find neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnMethod {
    /// Exact below 20,000 cells, or for k ≥ 30 below 400,000 cells; NN-descent otherwise (see
    /// [`auto_is_exact`]).
    #[default]
    Auto,
    /// Exact brute force (blocked matrix products).
    Exact,
    /// Approximate NN-descent with random-projection-tree initialisation.
    NnDescent,
}

/// Finds the `k` nearest neighbours (self included) of every row of `x`.
pub fn knn(x: ArrayView2<'_, f32>, k: usize, method: KnnMethod, seed: u64) -> Result<Neighbors> {
    match method {
        KnnMethod::Exact => knn_exact(x, k),
        KnnMethod::NnDescent => knn_nndescent(
            x,
            k,
            &NnDescentParams {
                seed,
                ..Default::default()
            },
        ),
        KnnMethod::Auto => {
            if auto_is_exact(x.nrows(), k) {
                knn_exact(x, k)
            } else {
                knn_nndescent(
                    x,
                    k,
                    &NnDescentParams {
                        seed,
                        // lists of ≥ 30 already hold enough candidates to escape local optima:
                        // recall 0.9998 for k = 90 at 200,000 cells without the 2× oversample,
                        // which costs 2.6× the time; shorter lists keep the default oversample
                        oversample: if k >= LARGE_K {
                            1.0
                        } else {
                            NnDescentParams::default().oversample
                        },
                        ..Default::default()
                    },
                )
            }
        }
    }
}

/// From this many neighbours up, [`KnnMethod::Auto`] stays exact up to [`LARGE_K_EXACT_MAX`]
/// cells: NN-descent's work grows with k², the blocked exact search's does not.
pub const LARGE_K: usize = 30;
/// The largest cell count at which [`KnnMethod::Auto`] searches exactly for k ≥ [`LARGE_K`].
/// Exact search costs ~n²·d and NN-descent ~n·log n: for the metrics' 90-NN on 2 cores, exact
/// took 35 s and NN-descent (recall 0.999) 54 s at 200,000 cells × 50 dims, so the two cross
/// near 320,000 cells; at a million cells exact would take ~15 minutes, NN-descent ~5.
pub const LARGE_K_EXACT_MAX: usize = 400_000;

/// Whether [`KnnMethod::Auto`] searches exactly for `n` cells and `k` neighbours: below 20,000
/// cells, or for k ≥ [`LARGE_K`] up to [`LARGE_K_EXACT_MAX`] cells.
pub fn auto_is_exact(n: usize, k: usize) -> bool {
    n < 20_000 || (k >= LARGE_K && n <= LARGE_K_EXACT_MAX)
}

pub(crate) fn check_input(x: ArrayView2<'_, f32>, k: usize) -> Result<()> {
    let n = x.nrows();
    if k == 0 || k > n {
        return Err(Error::param(
            "k",
            format!("must be in 1..={n} (self included), got {k}"),
        ));
    }
    if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::param(
            "x",
            format!("embedding has a non-finite value {v} at row {i}, column {j}"),
        ));
    }
    Ok(())
}

/// `Σ term(a[i], b[i])` with eight independent accumulators (vectorises; the summation order
/// is fixed by the length alone, so results are the same on every CPU and thread count).
#[inline(always)]
fn sum_lanes(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += term(x[l], y[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&x, &y) in ra.iter().zip(rb) {
        s += term(x, y);
    }
    s
}

#[inline(always)]
pub(crate) fn sqdist_lanes(a: &[f32], b: &[f32]) -> f32 {
    sum_lanes(a, b, |x, y| (x - y) * (x - y))
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    sum_lanes(a, b, |x, y| x * y)
}

/// [`sum_lanes`] in AVX2 registers, written out: the compiler's own vectorisation of the
/// eight-lane loop shuffles lanes between half registers. The same operations in the same
/// order (multiply, then add; no fused multiply-add), so the same bits as [`sum_lanes`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn sum_lanes_avx2(a: &[f32], b: &[f32], squared_difference: bool) -> f32 {
    use std::arch::x86_64::*;
    let len = a.len().min(b.len());
    let chunks = len / 8;
    let mut acc = _mm256_setzero_ps();
    for c in 0..chunks {
        // SAFETY: `c * 8 + 8 <= len`, inside both slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_ps(a.as_ptr().add(c * 8)),
                _mm256_loadu_ps(b.as_ptr().add(c * 8)),
            )
        };
        let term = if squared_difference {
            let diff = _mm256_sub_ps(x, y);
            _mm256_mul_ps(diff, diff)
        } else {
            _mm256_mul_ps(x, y)
        };
        acc = _mm256_add_ps(acc, term);
    }
    let mut s = reduce_lanes_avx2(acc);
    for i in chunks * 8..len {
        s += if squared_difference {
            (a[i] - b[i]) * (a[i] - b[i])
        } else {
            a[i] * b[i]
        };
    }
    s
}

/// The eight lanes' sum in [`sum_lanes`]' order: (acc0 + acc4, acc1 + acc5, acc2 + acc6,
/// acc3 + acc7), then pairs, then the two halves, i.e.
/// ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn reduce_lanes_avx2(acc: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let quad = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let pairs = _mm_add_ps(quad, _mm_movehdup_ps(quad));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehl_ps(pairs, pairs)))
}

/// [`sqdist_lanes`] of `a` against four rows at once.
#[inline(always)]
pub(crate) fn sqdist4_lanes(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    b.map(|b| sqdist_lanes(a, b))
}

/// [`sqdist_avx2`] of `a` against four rows at once: four independent sums that overlap in the
/// pipeline, each the same operations in the same order as one [`sqdist_avx2`] (the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn sqdist4_avx2(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let len = b.iter().fold(a.len(), |len, b| len.min(b.len()));
    let chunks = len / 8;
    let mut acc = [_mm256_setzero_ps(); 4];
    for c in 0..chunks {
        // SAFETY: `c * 8 + 8 <= len`, inside every slice.
        let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(c * 8)) };
        for (acc, b) in acc.iter_mut().zip(&b) {
            // SAFETY: as above.
            let y = unsafe { _mm256_loadu_ps(b.as_ptr().add(c * 8)) };
            let diff = _mm256_sub_ps(x, y);
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(diff, diff));
        }
    }
    let mut out = [0f32; 4];
    for ((out, acc), b) in out.iter_mut().zip(acc).zip(&b) {
        let mut s = reduce_lanes_avx2(acc);
        for i in chunks * 8..len {
            s += (a[i] - b[i]) * (a[i] - b[i]);
        }
        *out = s;
    }
    out
}

/// [`sqdist_lanes`] in AVX2 registers (the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn sqdist_avx2(a: &[f32], b: &[f32]) -> f32 {
    sum_lanes_avx2(a, b, true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    sum_lanes_avx2(a, b, false)
}

/// Squared Euclidean distance (AVX2 when the CPU has it; identical results either way, since
/// no fused multiply-add is used).
#[inline]
pub(crate) fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() >= crate::simd::Level::Avx2 {
        // SAFETY: the CPU supports AVX2 (AVX-512 implies it).
        return unsafe { sqdist_avx2(a, b) };
    }
    sqdist_lanes(a, b)
}

/// Dot product (AVX2 when the CPU has it; identical results either way, since no fused
/// multiply-add is used).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() >= crate::simd::Level::Avx2 {
        // SAFETY: the CPU supports AVX2 (AVX-512 implies it).
        return unsafe { dot_avx2(a, b) };
    }
    dot_lanes(a, b)
}

/// Euclidean distance.
#[inline]
pub(crate) fn dist(a: &[f32], b: &[f32]) -> f32 {
    sqdist(a, b).sqrt()
}

/// Fraction of true neighbours (self excluded) found by `approx`.
pub fn recall(approx: &Neighbors, truth: &Neighbors) -> f64 {
    let n = truth.n_cells();
    let mut hit = 0usize;
    let mut tot = 0usize;
    for i in 0..n {
        let t: std::collections::HashSet<u32> =
            truth.indices.row(i).iter().skip(1).copied().collect();
        hit += approx
            .indices
            .row(i)
            .iter()
            .skip(1)
            .filter(|j| t.contains(j))
            .count();
        tot += t.len();
    }
    if tot == 0 {
        1.0
    } else {
        hit as f64 / tot as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched distance and dot product give the eight-lane definition's bits, for
    /// lengths with and without a tail.
    #[test]
    fn vector_versions_give_the_definitions_bits() {
        let mut state = 1u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 20.0 - 10.0
        };
        for len in 0..70 {
            let a: Vec<f32> = (0..len).map(|_| next()).collect();
            let b: Vec<f32> = (0..len).map(|_| next()).collect();
            assert_eq!(
                sqdist(&a, &b).to_bits(),
                sqdist_lanes(&a, &b).to_bits(),
                "{len}"
            );
            assert_eq!(sqdist(&b, &a).to_bits(), sqdist(&a, &b).to_bits(), "{len}");
            assert_eq!(dot(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits(), "{len}");
            let rows = [&b[..], &a[..], &b[..], &a[..]];
            let four = sqdist4_lanes(&a, rows).map(f32::to_bits);
            assert_eq!(four, rows.map(|r| sqdist_lanes(&a, r).to_bits()), "{len}");
            #[cfg(target_arch = "x86_64")]
            if crate::simd::level() >= crate::simd::Level::Avx2 {
                // SAFETY: the CPU has AVX2.
                let avx2 = unsafe { sqdist4_avx2(&a, rows) }.map(f32::to_bits);
                assert_eq!(avx2, four, "{len}");
            }
        }
    }
}
