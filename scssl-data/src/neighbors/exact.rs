//! Exact kNN by blocked matrix products (no n×n memory), re-ranked with direct distances.

use faer::{MatRef, Par};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{Neighbors, check_input, dist};
use crate::error::Result;

const QUERY_BLOCK: usize = 128;
const EXTRA: usize = 8;

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
    let db = db.as_standard_layout().to_owned();
    let q = q.as_standard_layout().to_owned();
    let (n, d) = db.dim();
    let m = q.nrows();
    let dbs = db.as_slice().unwrap_or(&[]);
    let qs = q.as_slice().unwrap_or(&[]);
    let norms: Vec<f32> = db
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let dbm = MatRef::from_row_major_slice(dbs, n, d);
    let keep = (k + EXTRA).min(n);
    let blocks: Vec<usize> = (0..m).step_by(QUERY_BLOCK).collect();
    let results: Vec<Vec<(Vec<u32>, Vec<f32>)>> = blocks
        .par_iter()
        .map(|&s| {
            let e = (s + QUERY_BLOCK).min(m);
            let qb = MatRef::from_row_major_slice(&qs[s * d..e * d], e - s, d);
            let mut dots = faer::Mat::<f32>::zeros(e - s, n);
            faer::linalg::matmul::matmul(
                dots.as_mut(),
                faer::Accum::Replace,
                qb,
                dbm.transpose(),
                1.0,
                Par::Seq,
            );
            let mut out = Vec::with_capacity(e - s);
            let mut cand: Vec<(f32, u32)> = Vec::with_capacity(n);
            for (r, i) in (s..e).enumerate() {
                let qrow = &qs[i * d..(i + 1) * d];
                let qn: f32 = qrow.iter().map(|v| v * v).sum();
                cand.clear();
                for j in 0..n {
                    if self_first && j == i {
                        continue;
                    }
                    cand.push(((qn + norms[j] - 2.0 * dots[(r, j)]).max(0.0), j as u32));
                }
                let want = if self_first {
                    keep.saturating_sub(1)
                } else {
                    keep
                }
                .min(cand.len());
                if want > 0 && want < cand.len() {
                    cand.select_nth_unstable_by(want - 1, |a, b| {
                        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                    });
                    cand.truncate(want);
                }
                // re-rank the candidates by the exact distance
                let mut exact: Vec<(f32, u32)> = cand
                    .iter()
                    .map(|&(_, j)| (dist(qrow, &dbs[j as usize * d..(j as usize + 1) * d]), j))
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
                out.push((idx, ds));
            }
            out
        })
        .collect();
    let mut indices = Array2::<u32>::zeros((m, k));
    let mut distances = Array2::<f32>::zeros((m, k));
    for (i, (idx, ds)) in results.into_iter().flatten().enumerate() {
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
