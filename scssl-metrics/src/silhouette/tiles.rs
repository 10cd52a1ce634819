//! The silhouette's O(n²) kernel: per-label distance sums from blocked matrix products, each
//! tile of products turned into distances once and summed both ways.

use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use faer::{Mat, MatRef, Par};

use super::Distance;

/// Rows per block of the symmetric distance sums: a 256 × 256 tile of dot products (256 KB)
/// stays in L2.
pub(super) const SYMMETRIC_BLOCK: usize = 256;

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
pub(super) fn label_distance_sums(
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
        totals[i * k + l].fetch_add(to_fixed(v, scale), Ordering::Relaxed);
    };
    let all = MatRef::from_row_major_slice(flat, n, d);
    let n_blocks = n.div_ceil(b);
    (0..n_blocks).into_par_iter().for_each(|bi| {
        let (i0, i1) = (bi * b, ((bi + 1) * b).min(n));
        let rows_i = all.subrows(i0, i1 - i0);
        // column r: cell i0 + r's dot products (then distances) with the other block's cells
        let mut tile = Mat::<f32>::zeros(b, b);
        let mut column_sums = vec![0f32; b];
        // this block's cells' sums, added here alone (an atomic addition per cell, label and
        // tile cost more than the distances' square roots), then once to the totals
        let mut own = vec![0u64; (i1 - i0) * k];
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
            let mut sink = Sink {
                own: &mut own,
                scale,
                add: &add,
            };
            sum_tile(&blocks, &mut tile, &mut column_sums, &mut sink);
        }
        for (r, sums) in own.chunks(k.max(1)).enumerate() {
            for (l, &v) in sums.iter().enumerate() {
                totals[(i0 + r) * k + l].fetch_add(v, Ordering::Relaxed);
            }
        }
    });
    totals
        .into_iter()
        .map(|t| t.into_inner() as i64 as f64 / scale)
        .collect()
}

/// A sum in 64-bit fixed point (`scale` units per distance unit): two's complement keeps the
/// addition exact, whatever the sign and order.
fn to_fixed(v: f64, scale: f64) -> u64 {
    (v * scale).round() as i64 as u64
}

/// Where a tile's sums go: the sums of the task's own block's cells (cells × labels, fixed point)
/// into `own`, the other block's through the shared `add`.
struct Sink<'a> {
    own: &'a mut [u64],
    scale: f64,
    add: &'a (dyn Fn(usize, usize, f64) + Sync),
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
    sink: &mut Sink<'_>,
) {
    use scssl_data::simd::{Level, level};
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: each version runs only on a CPU that has its features.
        Level::Avx512 => return unsafe { sum_tile_avx512(blocks, tile, column_sums, sink) },
        Level::Avx2 => return unsafe { sum_tile_avx2(blocks, tile, column_sums, sink) },
        Level::Baseline => {}
    }
    sum_tile_lanes(blocks, tile, column_sums, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_tile_avx512(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    sink: &mut Sink<'_>,
) {
    sum_tile_lanes(blocks, tile, column_sums, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_tile_avx2(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    sink: &mut Sink<'_>,
) {
    sum_tile_lanes(blocks, tile, column_sums, sink)
}

#[inline(always)]
fn sum_tile_lanes(
    blocks: &TileBlocks<'_>,
    tile: &mut Mat<f32>,
    column_sums: &mut [f32],
    sink: &mut Sink<'_>,
) {
    let (i0, i1) = blocks.rows;
    let (j0, j1) = blocks.cols;
    let diagonal = i0 == j0;
    let norms = blocks.norms;
    let k = blocks.seg_start.len() - 1;
    let labels_j: Vec<(usize, usize, usize)> = blocks.labels_in(j0, j1).collect();
    let sums = &mut column_sums[..j1 - j0];
    // One pass over the tile, a column (one cell of this block) at a time while it is in L1:
    // its distances, its per-label sums over the other block, and its share of the other
    // block's cells' sums over this block's label (the cells are sorted by label, so each label
    // is a run of columns, added in order; a diagonal tile is symmetric and its columns already
    // hold every pair).
    for (l, a, c) in blocks.labels_in(i0, i1) {
        sums.fill(0.0);
        for i in a..c {
            let r = i - i0;
            let col = &mut tile.col_as_slice_mut(r)[..j1 - j0];
            to_distances(blocks.distance, norms[i], &norms[j0..j1], col);
            if diagonal {
                // the cell itself: exactly 0, not the expansion's rounding residue
                col[r] = 0.0;
            }
            let own = &mut sink.own[r * k..(r + 1) * k];
            for &(lj, aj, cj) in &labels_j {
                let v = to_fixed(sum_lanes(&col[aj - j0..cj - j0]), sink.scale);
                own[lj] = own[lj].wrapping_add(v);
            }
            if !diagonal {
                for (s, &v) in sums.iter_mut().zip(col.iter()) {
                    *s += v;
                }
            }
        }
        if !diagonal {
            for (jj, &v) in sums.iter().enumerate() {
                (sink.add)(j0 + jj, l, v as f64);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
                    let k = seg_start.len() - 1;
                    let scale = (1u64 << 40) as f64;
                    let mut own = vec![0u64; (rows.1 - rows.0) * k];
                    let mut sink = Sink {
                        own: &mut own,
                        scale,
                        add: &add,
                    };
                    if dispatched {
                        sum_tile(&blocks, &mut tile, &mut sums, &mut sink);
                    } else {
                        sum_tile_lanes(&blocks, &mut tile, &mut sums, &mut sink);
                    }
                    let mut got = got.into_inner().unwrap();
                    // this block's cells' sums, back from fixed point
                    for (p, &v) in own.iter().enumerate().filter(|e| *e.1 != 0) {
                        let value = v as i64 as f64 / scale;
                        got.push((rows.0 + p / k, p % k, value.to_bits()));
                    }
                    got
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
