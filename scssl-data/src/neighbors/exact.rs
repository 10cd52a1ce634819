//! Exact kNN by blocked matrix products (no n×n memory), re-ranked with direct distances.

use ndarray::{Array2, ArrayView2};

use super::tiles::{DB_TILE, tiled_dots};
use super::{Neighbors, check_input, dist};
use crate::error::Result;

pub(super) const EXTRA: usize = 8;
/// Database rows scanned together against a query's shortlist bound.
pub(super) const CHUNK: usize = 64;

/// Writes `max(qn + nj − 2·dot, 0)` for each entry (at most 64) and returns a mask with bit
/// `j` set where entry `j` is at most `cut`. Element-wise without fused multiply-add, so every
/// CPU path gives the same bits.
#[inline(always)]
fn squared_distances_lanes(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u64 {
    let mut within = 0u64;
    for (j, ((o, &n), &dot)) in out.iter_mut().zip(nj).zip(dots).enumerate() {
        let v = (qn + n - 2.0 * dot).max(0.0);
        *o = v;
        within |= ((v <= cut) as u64) << j;
    }
    within
}

/// [`squared_distances_lanes`] sixteen lanes at a time, the mask straight from the compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn squared_distances_avx512(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u64 {
    use std::arch::x86_64::*;
    let len = out.len().min(nj.len()).min(dots.len());
    let full = len / 16 * 16;
    let qn_v = _mm512_set1_ps(qn);
    let two = _mm512_set1_ps(2.0);
    let zero = _mm512_setzero_ps();
    let cut_v = _mm512_set1_ps(cut);
    let mut within = 0u64;
    for c in (0..full).step_by(16) {
        // SAFETY: `c + 16 <= len`, within each of the three slices.
        unsafe {
            let n = _mm512_loadu_ps(nj.as_ptr().add(c));
            let dot = _mm512_loadu_ps(dots.as_ptr().add(c));
            // (qn + n) − 2·dot, then max with 0: the scalar expression's operations in order
            let v = _mm512_max_ps(
                _mm512_sub_ps(_mm512_add_ps(qn_v, n), _mm512_mul_ps(two, dot)),
                zero,
            );
            _mm512_storeu_ps(out.as_mut_ptr().add(c), v);
            within |= (_mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, cut_v) as u64) << c;
        }
    }
    if full == len {
        // a whole chunk: no tail (and a shift by 64 would overflow)
        return within;
    }
    within
        | squared_distances_lanes(
            qn,
            &nj[full..len],
            &dots[full..len],
            cut,
            &mut out[full..len],
        ) << full
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn squared_distances_avx2(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u64 {
    squared_distances_lanes(qn, nj, dots, cut, out)
}

/// [`squared_distances_lanes`] with the widest vectors the CPU has (same results on each).
#[inline]
pub(super) fn squared_distances_within(
    qn: f32,
    nj: &[f32],
    dots: &[f32],
    cut: f32,
    out: &mut [f32],
) -> u64 {
    debug_assert!(out.len() <= 64);
    #[cfg(target_arch = "x86_64")]
    match crate::simd::level() {
        // SAFETY: each path runs only on a CPU that has its features.
        crate::simd::Level::Avx512 => {
            return unsafe { squared_distances_avx512(qn, nj, dots, cut, out) };
        }
        crate::simd::Level::Avx2 => {
            return unsafe { squared_distances_avx2(qn, nj, dots, cut, out) };
        }
        crate::simd::Level::Baseline => {}
    }
    squared_distances_lanes(qn, nj, dots, cut, out)
}

/// Exact `k` nearest neighbours of every row among all rows (self first at distance 0). From
/// 2,048 rows on (`PRUNE_MIN_ROWS`), each pair of row blocks is multiplied once for both (see
/// `exact_self`).
pub fn knn_exact(x: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors> {
    super::exact_self::knn_self(x, k)
}

/// Exact `k` nearest rows of `reference` for every row of `query` (no self convention).
pub fn knn_query(
    reference: ArrayView2<'_, f32>,
    query: ArrayView2<'_, f32>,
    k: usize,
) -> Result<(Array2<u32>, Array2<f32>)> {
    check_input(reference, k)?;
    if query.ncols() != reference.ncols() {
        return Err(crate::Error::shape(
            "query dimensions",
            reference.ncols(),
            query.ncols(),
        ));
    }
    search(reference, query, k, false, true)
}

/// From this many database rows on, rows are visited in a spatial order and tiles that cannot
/// hold a query block's neighbours are skipped; below it, ordering costs more than it saves.
pub(super) const PRUNE_MIN_ROWS: usize = 4 * DB_TILE;
/// Leaf size of the random-projection tree that orders the queries for pruning.
const ORDER_LEAF: usize = 128;
/// Seed of that tree (the result does not depend on it, only the speed).
pub(super) const ORDER_SEED: u64 = 0x6578_6163_745f_6b6e;

/// The centre, radius and largest squared norm of each database tile.
struct TileBounds {
    /// Tiles × dimensions.
    centres: faer::Mat<f64>,
    centre_norms: Vec<f64>,
    radii: Vec<f64>,
    max_norms: Vec<f32>,
}

/// Centre (f64 mean) and radius (largest distance to it) of rows `rows` of `x`.
pub(super) fn centre_and_radius(
    x: &[f32],
    d: usize,
    rows: std::ops::Range<usize>,
) -> (Vec<f64>, f64) {
    let mut c = vec![0f64; d];
    let count = rows.len().max(1) as f64;
    for i in rows.clone() {
        for (a, &v) in c.iter_mut().zip(&x[i * d..(i + 1) * d]) {
            *a += v as f64;
        }
    }
    c.iter_mut().for_each(|a| *a /= count);
    let radius = rows
        .map(|i| dist_f64(&x[i * d..(i + 1) * d], &c))
        .fold(0f64, f64::max);
    (c, radius)
}

fn dist_f64(row: &[f32], c: &[f64]) -> f64 {
    row.iter()
        .zip(c)
        .map(|(&v, &m)| (v as f64 - m) * (v as f64 - m))
        .sum::<f64>()
        .sqrt()
}

/// Rows of `x` (`d` columns) in `order`.
pub(super) fn permuted(x: &[f32], d: usize, order: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(order.len() * d);
    for &o in order {
        out.extend_from_slice(&x[o as usize * d..(o as usize + 1) * d]);
    }
    out
}

/// A finished shortlist's neighbours: its `want` smallest keys re-ranked by the direct distance
/// from `qrow` to each candidate's row of `db` (`d` columns; ties by id), after `self_id` at
/// distance 0 when given; `k` in all (fewer if the list is short).
pub(super) fn rerank(
    list: &mut Vec<u64>,
    want: usize,
    qrow: &[f32],
    db: &[f32],
    d: usize,
    self_id: Option<usize>,
    k: usize,
) -> (Vec<u32>, Vec<f32>) {
    if list.len() > want {
        shrink(list, want);
    }
    let mut exact: Vec<(f32, u32)> = list
        .iter()
        .map(|&key| {
            let j = (key & 0xFFFF_FFFF) as usize;
            (dist(qrow, &db[j * d..(j + 1) * d]), j as u32)
        })
        .collect();
    exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut idx = Vec::with_capacity(k);
    let mut ds = Vec::with_capacity(k);
    if let Some(i) = self_id {
        idx.push(i as u32);
        ds.push(0.0);
    }
    for &(dd, j) in exact.iter().take(k - idx.len()) {
        idx.push(j);
        ds.push(dd);
    }
    (idx, ds)
}

/// Cuts a shortlist back to its `want` smallest keys; returns the largest kept distance.
pub(super) fn shrink(list: &mut Vec<u64>, want: usize) -> f32 {
    list.select_nth_unstable(want - 1);
    list.truncate(want);
    f32::from_bits((list[want - 1] >> 32) as u32)
}

pub(super) fn search(
    db: ArrayView2<'_, f32>,
    q: ArrayView2<'_, f32>,
    k: usize,
    self_first: bool,
    allow_pruning: bool,
) -> Result<(Array2<u32>, Array2<f32>)> {
    // centring both sides by the database mean keeps |x|² small, so the f32 expansion
    // |x|² + |y|² − 2x·y used to shortlist candidates stays accurate
    let mean = db
        .mean_axis(ndarray::Axis(0))
        .unwrap_or_else(|| ndarray::Array1::zeros(db.ncols()));
    let db = (&db - &mean).as_standard_layout().to_owned();
    let q = (&q - &mean).as_standard_layout().to_owned();
    let (n, d) = db.dim();
    let m = q.nrows();
    let dbs = db.as_slice().unwrap_or(&[]);
    let qs = q.as_slice().unwrap_or(&[]);
    let keep = (k + EXTRA).min(n);
    let want = if self_first {
        keep.saturating_sub(1)
    } else {
        keep
    };
    // Pruning: both sides are renumbered in the leaf order of a random-projection tree, so a
    // query block and a database tile each cover a small region. A block visits the tiles
    // nearest first and skips a tile when the triangle inequality puts all of it beyond every
    // query's current shortlist bound. Every row a skipped tile holds would have been rejected
    // by that bound anyway, so the shortlists, and the result, are those of the full scan.
    let prune = allow_pruning && n >= PRUNE_MIN_ROWS && d > 0 && want > 0;
    let identity = |len: usize| (0..len as u32).collect::<Vec<u32>>();
    // the database tiles: leaves of the tree (at most `DB_TILE` rows, each one region) when
    // pruning, else consecutive runs
    let (db_order, tile_rows) = if prune {
        let leaves = crate::neighbors::nndescent::spatial_leaves(dbs, n, d, DB_TILE, ORDER_SEED);
        let mut rows = Vec::with_capacity(leaves.len());
        let mut at = 0;
        for leaf in &leaves {
            rows.push(at..at + leaf.len());
            at += leaf.len();
        }
        (leaves.into_iter().flatten().collect(), rows)
    } else {
        let rows = (0..n)
            .step_by(DB_TILE)
            .map(|c| c..(c + DB_TILE).min(n))
            .collect();
        (identity(n), rows)
    };
    let q_order = if !prune {
        identity(m)
    } else if self_first {
        db_order.clone()
    } else {
        crate::neighbors::nndescent::spatial_order(qs, m, d, ORDER_LEAF, ORDER_SEED)
    };
    // the reordered rows (without pruning the order is the identity: no copy)
    let dbp: std::borrow::Cow<'_, [f32]> = if prune {
        permuted(dbs, d, &db_order).into()
    } else {
        dbs.into()
    };
    let qp: std::borrow::Cow<'_, [f32]> = if !prune {
        qs.into()
    } else if self_first {
        std::borrow::Cow::Borrowed(&dbp[..])
    } else {
        permuted(qs, d, &q_order).into()
    };
    let qp: &[f32] = &qp;
    // one norm per row, also when rows have no columns (every distance is then 0)
    let norms: Vec<f32> = (0..n)
        .map(|j| dbp[j * d..(j + 1) * d].iter().map(|v| v * v).sum())
        .collect();
    let n_tiles = tile_rows.len();
    let tiles = if prune {
        let mut b = TileBounds {
            centres: faer::Mat::zeros(n_tiles, d),
            centre_norms: Vec::with_capacity(n_tiles),
            radii: Vec::with_capacity(n_tiles),
            max_norms: Vec::with_capacity(n_tiles),
        };
        for t in 0..n_tiles {
            let rows = tile_rows[t].clone();
            let (c, r) = centre_and_radius(&dbp, d, rows.clone());
            for (col, v) in c.iter().enumerate() {
                b.centres[(t, col)] = *v;
            }
            b.centre_norms.push(c.iter().map(|v| v * v).sum());
            b.radii.push(r);
            b.max_norms
                .push(norms[rows].iter().copied().fold(0f32, f32::max));
        }
        Some(b)
    } else {
        None
    };
    // per query row: candidates as u64 keys (the bits of a non-negative f32 sort like the
    // float, the id breaks ties) gathered in a buffer that is cut back to the `want` smallest by
    // a selection whenever it holds twice that: amortised constant work per candidate, where a
    // heap paid a logarithm for each
    struct Block {
        start: usize,
        qn: Vec<f32>,
        shortlists: Vec<Vec<u64>>,
        cuts: Vec<f32>,
        d2: Vec<f32>,
        /// Per query row and tile (row-major): a lower bound on the distance to the tile's rows.
        lower: Vec<f64>,
    }
    let blocks = tiled_dots(
        &dbp,
        n,
        qp,
        m,
        d,
        &tile_rows,
        |s, e| {
            // per query and tile: distance to the tile's centre minus its radius, a lower bound
            // on the distance to any of its rows (f64 expansion, far below the margin's error)
            let lower = match &tiles {
                Some(tb) => {
                    let qb = faer::Mat::<f64>::from_fn(e - s, d, |r, c| qp[(s + r) * d + c] as f64);
                    let mut dots = faer::Mat::<f64>::zeros(e - s, n_tiles);
                    faer::linalg::matmul::matmul(
                        dots.as_mut(),
                        faer::Accum::Replace,
                        qb.as_ref(),
                        tb.centres.as_ref().transpose(),
                        1.0,
                        faer::Par::Seq,
                    );
                    let mut lower = vec![0f64; (e - s) * n_tiles];
                    for r in 0..e - s {
                        let qn: f64 = (0..d).map(|c| qb[(r, c)] * qb[(r, c)]).sum();
                        for t in 0..n_tiles {
                            let sq = (qn + tb.centre_norms[t] - 2.0 * dots[(r, t)]).max(0.0);
                            lower[r * n_tiles + t] = (sq.sqrt() - tb.radii[t]).max(0.0);
                        }
                    }
                    lower
                }
                None => vec![],
            };
            Block {
                start: s,
                qn: (s..e)
                    .map(|i| qp[i * d..(i + 1) * d].iter().map(|v| v * v).sum())
                    .collect(),
                shortlists: (s..e)
                    .map(|_| Vec::with_capacity(2 * want + CHUNK))
                    .collect(),
                cuts: vec![f32::INFINITY; e - s],
                d2: vec![0f32; CHUNK],
                lower,
            }
        },
        |b| {
            let mut order: Vec<usize> = (0..n_tiles).collect();
            if !b.lower.is_empty() {
                // nearest tiles first (by the block's smallest bound): the shortlist bounds
                // tighten early and more tiles are skipped
                let nearest: Vec<f64> = (0..n_tiles)
                    .map(|t| {
                        b.lower[t..]
                            .iter()
                            .step_by(n_tiles)
                            .copied()
                            .fold(f64::INFINITY, f64::min)
                    })
                    .collect();
                order.sort_by(|&x, &y| nearest[x].total_cmp(&nearest[y]).then(x.cmp(&y)));
            }
            order
        },
        |b, t| {
            let Some(tb) = &tiles else {
                return want > 0;
            };
            // wanted when the tile may hold a row within some query's shortlist bound (a list
            // with `want` entries but no bound yet is cut back to get one); the f32 expansion
            // errs by far less than 1e-4 of |q|² + |x|², so a tile is skipped only when the
            // bound holds with that margin
            for r in 0..b.qn.len() {
                let cut = &mut b.cuts[r];
                if cut.is_infinite() {
                    if b.shortlists[r].len() < want {
                        return true;
                    }
                    *cut = shrink(&mut b.shortlists[r], want);
                }
                let lower = b.lower[r * n_tiles + t];
                let margin = 1e-4 * (b.qn[r] as f64 + tb.max_norms[t] as f64);
                if lower * lower - margin <= *cut as f64 {
                    return true;
                }
            }
            false
        },
        |b, r, c0, col| {
            let i = q_order[b.start + r];
            let qn = b.qn[r];
            let list = &mut b.shortlists[r];
            let mut cut = b.cuts[r];
            let norms = &norms[c0..c0 + col.len()];
            // squared distances a chunk at a time (vectorised), with a count of those within the
            // shortlist's current bound: once it has tightened almost every chunk has none and
            // is skipped without a scalar look at each entry
            for (ci, (dots, nj)) in col.chunks(CHUNK).zip(norms.chunks(CHUNK)).enumerate() {
                let d2 = &mut b.d2[..dots.len()];
                let mut within = squared_distances_within(qn, nj, dots, cut, d2);
                // only the entries within the bound, by their mask bits
                while within != 0 {
                    let jj = within.trailing_zeros() as usize;
                    within &= within - 1;
                    let j = db_order[c0 + ci * CHUNK + jj];
                    if !(self_first && j == i) {
                        list.push((d2[jj].to_bits() as u64) << 32 | j as u64);
                    }
                }
                if list.len() >= 2 * want {
                    cut = shrink(list, want);
                }
            }
            b.cuts[r] = cut;
        },
        |b| {
            let s = b.start;
            b.shortlists
                .into_iter()
                .enumerate()
                .map(|(r, mut list)| {
                    let i = q_order[s + r] as usize;
                    let qrow = &qs[i * d..(i + 1) * d];
                    let (idx, ds) =
                        rerank(&mut list, want, qrow, dbs, d, self_first.then_some(i), k);
                    (i, idx, ds)
                })
                .collect::<Vec<_>>()
        },
    );
    let mut indices = Array2::<u32>::zeros((m, k));
    let mut distances = Array2::<f32>::zeros((m, k));
    for (i, idx, ds) in blocks.into_iter().flatten() {
        for (c, (a, b)) in idx.into_iter().zip(ds).enumerate() {
            indices[[i, c]] = a;
            distances[[i, c]] = b;
        }
    }
    Ok((indices, distances))
}

/// Test data: `n` rows of `d` columns in eight blobs of different spreads, every 301st row a
/// copy of another (exact duplicates), then `queries` more rows from the same blobs.
#[cfg(test)]
pub(super) fn clustered_rows(
    n: usize,
    queries: usize,
    d: usize,
    seed: u64,
) -> (Array2<f32>, Array2<f32>) {
    let mut state = seed | 1;
    let mut unit = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..8 * d).map(|_| 40.0 * unit()).collect();
    let rows = |count: usize, unit: &mut dyn FnMut() -> f32| {
        Array2::from_shape_fn((count, d), |(i, c)| {
            let blob = i % 8;
            centres[blob * d + c] + (1.0 + blob as f32) * unit()
        })
    };
    let mut x = rows(n, &mut unit);
    for i in (0..n).step_by(301) {
        let copy = x.row((i + 5) % n).to_owned();
        x.row_mut(i).assign(&copy);
    }
    let q = rows(queries, &mut unit);
    (x, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn brute_force_agrees() {
        let x = array![
            [0.0f32, 0.0],
            [1.0, 0.0],
            [0.0, 2.0],
            [5.0, 5.0],
            [1.0, 1.0]
        ];
        let nn = knn_exact(x.view(), 3).unwrap();
        assert_eq!(nn.indices.row(0).to_vec(), vec![0, 1, 4]);
        assert_eq!(nn.distances[[0, 0]], 0.0);
        assert!((nn.distances[[0, 2]] - 2f32.sqrt()).abs() < 1e-6);
        assert!(knn_exact(x.view(), 6).is_err());
    }

    #[test]
    fn rows_without_columns_are_all_at_distance_zero() {
        // beyond the pruning threshold too: no column means no tree to order by
        for n in [5, PRUNE_MIN_ROWS + 3] {
            let x = Array2::<f32>::zeros((n, 0));
            let nn = knn_exact(x.view(), 3).unwrap();
            assert!(nn.distances.iter().all(|&v| v == 0.0));
            assert_eq!(nn.indices[[1, 0]], 1);
        }
    }

    #[test]
    fn duplicates_keep_self_first() {
        let x = array![[1.0f32, 1.0], [1.0, 1.0], [3.0, 3.0]];
        let nn = knn_exact(x.view(), 2).unwrap();
        assert_eq!(nn.indices.row(1).to_vec(), vec![1, 0]);
        assert_eq!(nn.distances.row(1).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn every_distance_path_gives_the_same_bits_and_mask() {
        // a whole chunk, three 16-lane vectors and a scalar tail, a tail alone, nothing
        for len in [64usize, 61, 7, 0] {
            let nj: Vec<f32> = (0..len).map(|j| (j as f32 * 0.37).sin() + 1.5).collect();
            let dots: Vec<f32> = (0..len).map(|j| (j as f32 * 0.91).cos()).collect();
            let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
            let mask_lanes = squared_distances_lanes(0.8, &nj, &dots, 1.9, &mut a);
            let mask = squared_distances_within(0.8, &nj, &dots, 1.9, &mut b);
            assert_eq!(mask, mask_lanes, "{len}");
            if len > 16 {
                assert!(
                    mask != 0 && (mask.count_ones() as usize) < len,
                    "mixed: {mask:b}"
                );
            }
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            for (j, v) in a.iter().enumerate() {
                assert_eq!(mask >> j & 1 == 1, *v <= 1.9, "entry {j} of {len}");
            }
        }
    }

    #[test]
    fn matches_brute_force_across_tiles_and_chunks() {
        // more rows than one database tile, a last chunk that is not a multiple of 16
        let n = super::super::tiles::DB_TILE + 403;
        let x = Array2::from_shape_fn((n, 3), |(i, c)| {
            ((i * 7919 + c * 104_729) % 10_007) as f32 / 997.0 + (i as f32 * 0.013).sin()
        });
        let k = 12;
        let nn = knn_exact(x.view(), k).unwrap();
        for i in (0..n).step_by(97) {
            let mut all: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let d: f32 = (0..3).map(|c| (x[[i, c]] - x[[j, c]]).powi(2)).sum();
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut want: Vec<u32> = all[..k - 1].iter().map(|e| e.1).collect();
            let mut got: Vec<u32> = nn.indices.row(i).iter().skip(1).copied().collect();
            assert_eq!(nn.indices[[i, 0]], i as u32);
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "row {i}");
        }
    }

    #[test]
    fn pruned_search_equals_the_full_scan() {
        // clustered rows (eight blobs of different spreads, some exact duplicates) beyond the
        // pruning threshold; the pruned search must give the full scan's table bit for bit,
        // for the self search and for queries from elsewhere
        let n = PRUNE_MIN_ROWS + 1_500;
        let (x, queries) = clustered_rows(n, 700, 10, 0x2545_F491_4F6C_DD1D);
        for k in [1, 15, 40] {
            let pruned = search(x.view(), x.view(), k, true, true).unwrap();
            let full = search(x.view(), x.view(), k, true, false).unwrap();
            assert_eq!(pruned.0, full.0, "self search, k = {k}");
            assert_eq!(pruned.1, full.1, "self search, k = {k}");
            let pruned = search(x.view(), queries.view(), k, false, true).unwrap();
            let full = search(x.view(), queries.view(), k, false, false).unwrap();
            assert_eq!(pruned.0, full.0, "queries, k = {k}");
            assert_eq!(pruned.1, full.1, "queries, k = {k}");
        }
        // and the full scan is the brute force
        let full = search(x.view(), x.view(), 15, true, false).unwrap();
        for i in (0..n).step_by(211) {
            let mut all: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    (
                        dist(x.row(i).as_slice().unwrap(), x.row(j).as_slice().unwrap()),
                        j as u32,
                    )
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<f32> = all[..14].iter().map(|e| e.0).collect();
            // the search measures rows centred on the mean: the last bit may differ
            for (g, w) in full.1.row(i).iter().skip(1).zip(&want) {
                assert!((g - w).abs() <= 1e-5 * w.max(1.0), "row {i}: {g} vs {w}");
            }
        }
    }
}
