//! Exact kNN by blocked matrix products (no n×n memory), re-ranked with direct distances.

use std::collections::BinaryHeap;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::tiles::tiled_dots;
use super::{Neighbors, check_input, dist};
use crate::error::Result;

const EXTRA: usize = 8;
/// Database rows scanned together against a query's shortlist bound.
const CHUNK: usize = 64;

/// Writes `max(qn + nj − 2·dot, 0)` for each entry and returns how many are at most `cut`.
/// Element-wise without fused multiply-add, so every CPU path gives the same bits.
#[inline(always)]
fn squared_distances_lanes(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u32 {
    let mut within = 0u32;
    for ((o, &n), &dot) in out.iter_mut().zip(nj).zip(dots) {
        let v = (qn + n - 2.0 * dot).max(0.0);
        *o = v;
        within += (v <= cut) as u32;
    }
    within
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn squared_distances_avx512(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u32 {
    squared_distances_lanes(qn, nj, dots, cut, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn squared_distances_avx2(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u32 {
    squared_distances_lanes(qn, nj, dots, cut, out)
}

/// [`squared_distances_lanes`] with the widest vectors the CPU has (same results on each).
#[inline]
fn squared_distances_within(qn: f32, nj: &[f32], dots: &[f32], cut: f32, out: &mut [f32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
        let level = *LEVEL.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f") {
                2
            } else if std::arch::is_x86_feature_detected!("avx2") {
                1
            } else {
                0
            }
        });
        // SAFETY: each path runs only on a CPU that has its features (checked above).
        match level {
            2 => return unsafe { squared_distances_avx512(qn, nj, dots, cut, out) },
            1 => return unsafe { squared_distances_avx2(qn, nj, dots, cut, out) },
            _ => {}
        }
    }
    squared_distances_lanes(qn, nj, dots, cut, out)
}

/// Exact `k` nearest neighbours of every row among all rows (self first at distance 0).
pub fn knn_exact(x: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors> {
    check_input(x, k)?;
    let (idx, d) = search(x, x, k, true)?;
    Neighbors::new(idx, d)
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
    search(reference, query, k, false)
}

fn search(
    db: ArrayView2<'_, f32>,
    q: ArrayView2<'_, f32>,
    k: usize,
    self_first: bool,
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
    let norms: Vec<f32> = db
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let keep = (k + EXTRA).min(n);
    let want = if self_first {
        keep.saturating_sub(1)
    } else {
        keep
    };
    // per query row: the `want` smallest (d², id), packed into u64 keys (the bits of a
    // non-negative f32 sort like the float), kept in a max-heap
    struct Block {
        start: usize,
        qn: Vec<f32>,
        heaps: Vec<BinaryHeap<u64>>,
        d2: Vec<f32>,
    }
    let worst_d2 = |w: u64| {
        if w == u64::MAX {
            f32::INFINITY
        } else {
            f32::from_bits((w >> 32) as u32)
        }
    };
    let blocks = tiled_dots(
        dbs,
        n,
        qs,
        m,
        d,
        |s, e| Block {
            start: s,
            qn: (s..e)
                .map(|i| qs[i * d..(i + 1) * d].iter().map(|v| v * v).sum())
                .collect(),
            heaps: (s..e)
                .map(|_| BinaryHeap::with_capacity(want + 1))
                .collect(),
            d2: vec![0f32; CHUNK],
        },
        |b, r, c0, col| {
            let i = b.start + r;
            let qn = b.qn[r];
            let heap = &mut b.heaps[r];
            let mut worst = if heap.len() >= want {
                heap.peek().map_or(u64::MAX, |&k| k)
            } else {
                u64::MAX
            };
            let mut cut = worst_d2(worst);
            let norms = &norms[c0..c0 + col.len()];
            // squared distances a chunk at a time (vectorised), with a count of those within the
            // current worst of the shortlist: once the shortlist is full almost every chunk has
            // none and is skipped without a scalar look at each entry
            for (ci, (dots, nj)) in col.chunks(CHUNK).zip(norms.chunks(CHUNK)).enumerate() {
                let d2 = &mut b.d2[..dots.len()];
                if squared_distances_within(qn, nj, dots, cut, d2) == 0 {
                    continue;
                }
                for (jj, &v) in d2.iter().enumerate() {
                    let j = c0 + ci * CHUNK + jj;
                    if v > cut || (self_first && j == i) {
                        continue;
                    }
                    let key = (v.to_bits() as u64) << 32 | j as u64;
                    if key < worst {
                        heap.push(key);
                        if heap.len() > want {
                            heap.pop();
                        }
                        if heap.len() >= want {
                            worst = heap.peek().map_or(u64::MAX, |&k| k);
                            cut = worst_d2(worst);
                        }
                    }
                }
            }
        },
    );
    let results: Vec<(Vec<u32>, Vec<f32>)> = blocks
        .into_par_iter()
        .flat_map_iter(|b| {
            let s = b.start;
            b.heaps.into_iter().enumerate().map(move |(r, heap)| {
                let i = s + r;
                let qrow = &qs[i * d..(i + 1) * d];
                // re-rank the shortlist by the direct distance
                let mut exact: Vec<(f32, u32)> = heap
                    .into_iter()
                    .map(|key| {
                        let j = (key & 0xFFFF_FFFF) as usize;
                        (dist(qrow, &dbs[j * d..(j + 1) * d]), j as u32)
                    })
                    .collect();
                exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let mut idx = Vec::with_capacity(k);
                let mut ds = Vec::with_capacity(k);
                if self_first {
                    idx.push(i as u32);
                    ds.push(0.0);
                }
                for &(dd, j) in exact.iter().take(k - idx.len()) {
                    idx.push(j);
                    ds.push(dd);
                }
                (idx, ds)
            })
        })
        .collect();
    let mut indices = Array2::<u32>::zeros((m, k));
    let mut distances = Array2::<f32>::zeros((m, k));
    for (i, (idx, ds)) in results.into_iter().enumerate() {
        for (c, (a, b)) in idx.into_iter().zip(ds).enumerate() {
            indices[[i, c]] = a;
            distances[[i, c]] = b;
        }
    }
    Ok((indices, distances))
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
    fn duplicates_keep_self_first() {
        let x = array![[1.0f32, 1.0], [1.0, 1.0], [3.0, 3.0]];
        let nn = knn_exact(x.view(), 2).unwrap();
        assert_eq!(nn.indices.row(1).to_vec(), vec![1, 0]);
        assert_eq!(nn.distances.row(1).to_vec(), vec![0.0, 0.0]);
    }
}
