//! Graphs built from neighbour tables: UMAP fuzzy connectivities, BBKNN, within-group kNN and
//! mutual nearest neighbours between batches.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{KnnMethod, Neighbors, knn, knn_query};
use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;

/// UMAP's fuzzy simplicial set of a kNN table (`umap.umap_.fuzzy_simplicial_set` with
/// `set_op_mix_ratio = 1`, `local_connectivity = 1`), symmetrised by the fuzzy union
/// `W = A + Aᵀ − A∘Aᵀ`. Column 0 (self) gets no edge. Rows have sorted column indices.
pub fn fuzzy_connectivities(nn: &Neighbors) -> CsrMatrix {
    let n = nn.n_cells();
    let k = nn.k();
    let target = (k as f64).log2();
    let mean_all: f64 = nn.distances.iter().map(|&d| d as f64).sum::<f64>() / (n * k).max(1) as f64;
    let rows: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0f64; k], vec![0f64; k], vec![0f64; k]),
            |(excess, args, exps), i| {
                let d = nn.distances.row(i);
                // rho: the smallest positive distance
                let rho = d
                    .iter()
                    .copied()
                    .filter(|&v| v > 0.0)
                    .fold(f32::INFINITY, f32::min);
                let rho = if rho.is_finite() { rho } else { 0.0f32 };
                for (e, &v) in excess.iter_mut().zip(d.iter()).skip(1) {
                    *e = (v - rho) as f64;
                }
                let mut sigma = bandwidth(excess, target, args, exps) as f32;
                if rho > 0.0 {
                    let mean_i = d.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
                    if (sigma as f64) < 1e-3 * mean_i {
                        sigma = (1e-3 * mean_i) as f32;
                    }
                } else if (sigma as f64) < 1e-3 * mean_all {
                    sigma = (1e-3 * mean_all) as f32;
                }
                let mut row = Vec::with_capacity(k);
                for j in 0..k {
                    let c = nn.indices[[i, j]];
                    if c as usize == i {
                        continue;
                    }
                    let diff = nn.distances[[i, j]] - rho;
                    let w = if diff <= 0.0 || sigma == 0.0 {
                        1.0
                    } else {
                        (-(diff / sigma)).exp()
                    };
                    row.push((c, w));
                }
                // by column, the first of any repeated neighbour kept (the sort is stable)
                row.sort_by_key(|e| e.0);
                row.dedup_by_key(|e| e.0);
                row
            },
        )
        .collect();
    fuzzy_union(&csr_from_sorted_rows(n, rows))
}

/// UMAP's bandwidth search for one row (`excess[j]` = distance − ρ for neighbours `1..k`): the
/// σ at which `Σ_j e^{−excess_j/σ}` (1 for `excess_j ≤ 0`) reaches `target`, by bisection from
/// 1 (64 steps at most, tolerance 1e-5). `args` and `exps` are scratch.
fn bandwidth(excess: &[f64], target: f64, args: &mut [f64], exps: &mut [f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    match crate::simd::level() {
        // SAFETY: each version runs only on a CPU that has its features.
        crate::simd::Level::Avx512 => {
            return unsafe { bandwidth_avx512(excess, target, args, exps) };
        }
        crate::simd::Level::Avx2 => return unsafe { bandwidth_avx2(excess, target, args, exps) },
        crate::simd::Level::Baseline => {}
    }
    bandwidth_lanes(excess, target, args, exps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn bandwidth_avx512(excess: &[f64], target: f64, args: &mut [f64], exps: &mut [f64]) -> f64 {
    bandwidth_lanes(excess, target, args, exps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bandwidth_avx2(excess: &[f64], target: f64, args: &mut [f64], exps: &mut [f64]) -> f64 {
    bandwidth_lanes(excess, target, args, exps)
}

/// [`bandwidth`]'s search, compiled into each instruction set's version whole (the loop is
/// short: per-step calls cost as much as its arithmetic); element-wise operations and a sum in
/// order, so every version gives the same bits.
#[inline(always)]
fn bandwidth_lanes(excess: &[f64], target: f64, args: &mut [f64], exps: &mut [f64]) -> f64 {
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        // the kernel's exponentials a row at a time (vectorised), summed in order
        // (on slices, not `skip(1)`: that iterator does not vectorise)
        for (a, &dd) in args[1..].iter_mut().zip(&excess[1..]) {
            *a = -(dd / mid);
        }
        crate::simd::exp_slice(&args[1..], &mut exps[1..]);
        let mut psum = 0.0f64;
        for (&dd, &e) in excess[1..].iter().zip(&exps[1..]) {
            psum += if dd > 0.0 { e } else { 1.0 };
        }
        if (psum - target).abs() < 1e-5 {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            if hi == f64::INFINITY {
                mid *= 2.0
            } else {
                mid = (lo + hi) / 2.0
            }
        }
    }
    mid
}

fn rows_to_csr(n: usize, rows: Vec<Vec<(u32, f32)>>) -> CsrMatrix {
    let mut indptr = vec![0usize];
    let mut indices = vec![];
    let mut data = vec![];
    for mut r in rows {
        r.sort_by_key(|e| e.0);
        r.dedup_by_key(|e| e.0);
        for (c, v) in r {
            indices.push(c);
            data.push(v);
        }
        indptr.push(data.len());
    }
    CsrMatrix::new(n, n, indptr, indices, data).unwrap_or_else(|_| CsrMatrix::zeros(n, n))
}

/// An `n × n` CSR matrix from rows already sorted by column without repeats, each copied into
/// place in parallel.
fn csr_from_sorted_rows(n: usize, rows: Vec<Vec<(u32, f32)>>) -> CsrMatrix {
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0usize);
    for r in &rows {
        indptr.push(indptr[indptr.len() - 1] + r.len());
    }
    let nnz = indptr[indptr.len() - 1];
    let mut indices = vec![0u32; nnz];
    let mut data = vec![0f32; nnz];
    let mut slots: Vec<(&mut [u32], &mut [f32])> = Vec::with_capacity(rows.len());
    let (mut rest_i, mut rest_d) = (indices.as_mut_slice(), data.as_mut_slice());
    for r in &rows {
        let (head_i, tail_i) = rest_i.split_at_mut(r.len());
        let (head_d, tail_d) = rest_d.split_at_mut(r.len());
        slots.push((head_i, head_d));
        (rest_i, rest_d) = (tail_i, tail_d);
    }
    rows.par_iter().zip(slots).for_each(|(r, (ci, cd))| {
        for ((c, d), &(col, v)) in ci.iter_mut().zip(cd.iter_mut()).zip(r) {
            *c = col;
            *d = v;
        }
    });
    CsrMatrix::new(n, n, indptr, indices, data).unwrap_or_else(|_| CsrMatrix::zeros(n, n))
}

/// `A + Aᵀ − A∘Aᵀ` with zeros removed (`a`'s rows sorted by column, as are its transpose's).
fn fuzzy_union(a: &CsrMatrix) -> CsrMatrix {
    let n = a.n_rows();
    let t = a.transpose();
    let rows: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (ca, va) = a.row(i);
            let (ct, vt) = t.row(i);
            let (mut x, mut y) = (0, 0);
            let mut out = Vec::with_capacity(ca.len() + ct.len());
            while x < ca.len() || y < ct.len() {
                let (c, v) = if y >= ct.len() || (x < ca.len() && ca[x] < ct[y]) {
                    x += 1;
                    (ca[x - 1], va[x - 1])
                } else if x >= ca.len() || ct[y] < ca[x] {
                    y += 1;
                    (ct[y - 1], vt[y - 1])
                } else {
                    let (p, q) = (va[x], vt[y]);
                    x += 1;
                    y += 1;
                    (ca[x - 1], p + q - p * q)
                };
                if v != 0.0 {
                    out.push((c, v));
                }
            }
            out
        })
        .collect();
    csr_from_sorted_rows(n, rows)
}

/// kNN computed separately inside each group (e.g. batch), as global cell ids, self excluded:
/// row `i` lists up to `k` neighbours from `i`'s own group (fewer if the group is small).
pub fn knn_within_groups(
    x: ArrayView2<'_, f32>,
    groups: &[u32],
    k: usize,
    method: KnnMethod,
    seed: u64,
) -> Result<Vec<Vec<u32>>> {
    if groups.len() != x.nrows() {
        return Err(Error::shape("group codes", x.nrows(), groups.len()));
    }
    let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    let mut out = vec![vec![]; x.nrows()];
    for g in 0..n_groups {
        let members: Vec<usize> = (0..x.nrows())
            .filter(|&i| groups[i] as usize == g)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let sub = x.select(ndarray::Axis(0), &members);
        let kk = (k + 1).min(members.len());
        let nn = knn(sub.view(), kk, method, seed)?;
        for (r, &i) in members.iter().enumerate() {
            out[i] = nn
                .indices
                .row(r)
                .iter()
                .skip(1)
                .map(|&j| members[j as usize] as u32)
                .collect();
        }
    }
    Ok(out)
}

/// Batch-balanced kNN (BBKNN, Polański et al. 2020): each cell's `neighbors_within_batch`
/// nearest cells from every batch, their UMAP connectivities, and neighbour lists read off
/// the connectivity graph.
#[derive(Debug, Clone)]
pub struct Bbknn {
    /// The combined table: self first, then `neighbors_within_batch` per batch, by distance.
    pub neighbors: Neighbors,
    /// UMAP fuzzy connectivities of the combined table, trimmed, symmetric.
    pub connectivities: CsrMatrix,
}

impl Bbknn {
    /// Each cell's neighbours in the connectivity graph (by id, self excluded), strongest first.
    pub fn neighbor_lists(&self) -> Vec<Vec<u32>> {
        (0..self.connectivities.n_rows())
            .map(|i| {
                let (c, v) = self.connectivities.row(i);
                let mut p: Vec<(f32, u32)> = v
                    .iter()
                    .copied()
                    .zip(c.iter().copied())
                    .filter(|e| e.1 as usize != i)
                    .collect();
                p.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                p.into_iter().map(|e| e.1).collect()
            })
            .collect()
    }
}

/// Builds the BBKNN graph on an embedding (usually 50 PCs). `trim` keeps each cell's strongest
/// `trim` connectivities (bbknn's default `10 · neighbors_within_batch · n_batches` when `None`;
/// 0 disables trimming). Needs at least two batches.
pub fn bbknn(
    x: ArrayView2<'_, f32>,
    batches: &[u32],
    neighbors_within_batch: usize,
    trim: Option<usize>,
) -> Result<Bbknn> {
    let n = x.nrows();
    if batches.len() != n {
        return Err(Error::shape("batch codes", n, batches.len()));
    }
    if neighbors_within_batch == 0 {
        return Err(Error::param("neighbors_within_batch", "must be at least 1"));
    }
    let nb = batches.iter().map(|&b| b as usize + 1).max().unwrap_or(0);
    let present = (0..nb)
        .filter(|&b| batches.iter().any(|&c| c as usize == b))
        .count();
    if present < 2 {
        return Err(Error::TooFewGroups {
            what: "BBKNN",
            key: "batch".into(),
            needed: 2,
            found: present,
        });
    }
    let mut cand: Vec<Vec<(f32, u32)>> = vec![vec![]; n];
    for b in 0..nb {
        let members: Vec<usize> = (0..n).filter(|&i| batches[i] as usize == b).collect();
        if members.is_empty() {
            continue;
        }
        let sub = x.select(ndarray::Axis(0), &members);
        // one extra so that a cell of this batch still gets k neighbours besides itself
        let kk = (neighbors_within_batch + 1).min(members.len());
        let (idx, d) = knn_query(sub.view(), x, kk)?;
        for i in 0..n {
            let mut taken = 0;
            for c in 0..kk {
                let j = members[idx[[i, c]] as usize];
                if j == i || taken == neighbors_within_batch {
                    continue;
                }
                cand[i].push((d[[i, c]], j as u32));
                taken += 1;
            }
        }
    }
    let k_total = 1 + cand.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut indices = Array2::<u32>::zeros((n, k_total));
    let mut distances = Array2::<f32>::zeros((n, k_total));
    for (i, mut c) in cand.into_iter().enumerate() {
        c.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        indices[[i, 0]] = i as u32;
        let mut col = 1;
        for (d, j) in c.into_iter().take(k_total - 1) {
            indices[[i, col]] = j;
            distances[[i, col]] = d;
            col += 1;
        }
        // only when a batch has fewer than k other cells: repeat the last neighbour
        while col < k_total {
            indices[[i, col]] = indices[[i, col - 1]];
            distances[[i, col]] = distances[[i, col - 1]];
            col += 1;
        }
    }
    let neighbors = Neighbors::new(indices, distances)?;
    let mut conn = fuzzy_connectivities(&neighbors);
    let trim = trim.unwrap_or(10 * neighbors_within_batch * present);
    if trim > 0 {
        conn = trim_rows(&conn, trim);
    }
    Ok(Bbknn {
        neighbors,
        connectivities: conn,
    })
}

fn trim_rows(m: &CsrMatrix, trim: usize) -> CsrMatrix {
    let n = m.n_rows();
    let rows: Vec<Vec<(u32, f32)>> = (0..n)
        .map(|i| {
            let (c, v) = m.row(i);
            let mut p: Vec<(u32, f32)> = c.iter().copied().zip(v.iter().copied()).collect();
            if p.len() > trim {
                p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                p.truncate(trim);
            }
            p
        })
        .collect();
    let t = rows_to_csr(n, rows);
    // keep the graph symmetric: an edge survives with the larger of its two trimmed weights
    let tt = t.transpose();
    let rows: Vec<Vec<(u32, f32)>> = (0..n)
        .map(|i| {
            let mut p: std::collections::BTreeMap<u32, f32> = std::collections::BTreeMap::new();
            for (c, v) in t
                .row(i)
                .0
                .iter()
                .zip(t.row(i).1)
                .chain(tt.row(i).0.iter().zip(tt.row(i).1))
            {
                let e = p.entry(*c).or_insert(0.0);
                *e = e.max(*v);
            }
            p.into_iter().collect()
        })
        .collect();
    rows_to_csr(n, rows)
}

/// Mutual-nearest-neighbour pairs between batches (global cell ids, `a` in an earlier batch).
#[derive(Debug, Clone, PartialEq)]
pub struct MnnPairs {
    /// `(a, b)` pairs: `b` is among `a`'s `k` nearest cells of `b`'s batch and vice versa.
    pub pairs: Vec<(u32, u32)>,
}

impl MnnPairs {
    /// Each cell's MNN partners (both directions), sorted.
    pub fn partners(&self, n_cells: usize) -> Vec<Vec<u32>> {
        let mut out = vec![vec![]; n_cells];
        for &(a, b) in &self.pairs {
            out[a as usize].push(b);
            out[b as usize].push(a);
        }
        for v in &mut out {
            v.sort_unstable();
            v.dedup();
        }
        out
    }
}

/// Mutual nearest neighbours between every pair of batches in an embedding (typically PCA
/// rows, L2-normalised when `cosine` is set, as in mnnCorrect/CLAIRE). Needs two batches.
pub fn mutual_nearest_neighbors(
    x: ArrayView2<'_, f32>,
    batches: &[u32],
    k: usize,
    cosine: bool,
) -> Result<MnnPairs> {
    let n = x.nrows();
    if batches.len() != n {
        return Err(Error::shape("batch codes", n, batches.len()));
    }
    if k == 0 {
        return Err(Error::param("k", "must be at least 1"));
    }
    let mut xs = x.to_owned();
    if cosine {
        for mut r in xs.rows_mut() {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.mapv_inplace(|v| v / norm);
            }
        }
    }
    let nb = batches.iter().map(|&b| b as usize + 1).max().unwrap_or(0);
    let members: Vec<Vec<usize>> = (0..nb)
        .map(|b| (0..n).filter(|&i| batches[i] as usize == b).collect())
        .collect();
    let present = members.iter().filter(|m| !m.is_empty()).count();
    if present < 2 {
        return Err(Error::TooFewGroups {
            what: "mutual nearest neighbours",
            key: "batch".into(),
            needed: 2,
            found: present,
        });
    }
    let mut pairs = vec![];
    for bi in 0..nb {
        for bj in bi + 1..nb {
            let (mi, mj) = (&members[bi], &members[bj]);
            if mi.is_empty() || mj.is_empty() {
                continue;
            }
            let xi = xs.select(ndarray::Axis(0), mi);
            let xj = xs.select(ndarray::Axis(0), mj);
            let (ij, _) = knn_query(xj.view(), xi.view(), k.min(mj.len()))?;
            let (ji, _) = knn_query(xi.view(), xj.view(), k.min(mi.len()))?;
            for a in 0..mi.len() {
                for &b in ij.row(a) {
                    if ji.row(b as usize).iter().any(|&c| c as usize == a) {
                        pairs.push((mi[a] as u32, mj[b as usize] as u32));
                    }
                }
            }
        }
    }
    pairs.sort_unstable();
    Ok(MnnPairs { pairs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbors::knn_exact;
    use ndarray::array;

    #[test]
    fn connectivities_are_symmetric_without_self() {
        let x = array![
            [0.0f32, 0.0],
            [1.0, 0.0],
            [0.0, 1.0],
            [4.0, 4.0],
            [4.5, 4.0]
        ];
        let nn = knn_exact(x.view(), 3).unwrap();
        let w = fuzzy_connectivities(&nn);
        let d = w.to_dense();
        for i in 0..5 {
            assert_eq!(d[[i, i]], 0.0);
            for j in 0..5 {
                assert!((d[[i, j]] - d[[j, i]]).abs() < 1e-6);
                assert!((0.0..=1.0).contains(&d[[i, j]]));
            }
        }
        // the nearest neighbour always gets weight 1 (distance == rho)
        assert_eq!(d[[3, 4]], 1.0);
    }

    #[test]
    fn every_bandwidth_version_gives_the_same_bits_and_meets_the_target() {
        // rows of 15 and 50 neighbours (one-vector tails and several vectors), some at ρ
        for k in [15usize, 50] {
            for row in 0..20 {
                let excess: Vec<f64> = (0..k)
                    .map(|j| {
                        if j < 1 + row % 3 {
                            0.0
                        } else {
                            (j as f64 * 0.37 + row as f64).sin().abs() * 2.0
                        }
                    })
                    .collect();
                let target = (k as f64).log2();
                let (mut a, mut e) = (vec![0f64; k], vec![0f64; k]);
                let sigma = bandwidth(&excess, target, &mut a, &mut e);
                let lanes = bandwidth_lanes(&excess, target, &mut a, &mut e);
                assert_eq!(sigma.to_bits(), lanes.to_bits(), "k {k}, row {row}");
                let psum: f64 = excess[1..]
                    .iter()
                    .map(|&x| if x > 0.0 { (-x / sigma).exp() } else { 1.0 })
                    .sum();
                assert!(
                    (psum - target).abs() < 1e-4,
                    "k {k}, row {row}: {psum} vs {target}"
                );
            }
        }
    }

    #[test]
    fn mnn_pairs_cross_batches() {
        let x = array![[0.0f32, 0.0], [5.0, 5.0], [0.1, 0.0], [5.1, 5.0]];
        let m = mutual_nearest_neighbors(x.view(), &[0, 0, 1, 1], 1, false).unwrap();
        assert_eq!(m.pairs, vec![(0, 2), (1, 3)]);
        assert!(mutual_nearest_neighbors(x.view(), &[0, 0, 0, 0], 1, false).is_err());
        let b = bbknn(x.view(), &[0, 0, 1, 1], 1, None).unwrap();
        assert_eq!(b.neighbors.k(), 3);
        assert!(b.neighbor_lists()[0].contains(&2));
    }
}
