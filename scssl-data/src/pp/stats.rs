//! Per-gene, per-group moments, computed in `f64` in an order that does not depend on the
//! number of threads (fixed row chunks, partial sums added in chunk order).

use rayon::prelude::*;

use crate::matrix::Matrix;

/// Sums, sums of squares and non-zero counts of each gene within each group (e.g. batch).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneStats {
    n_groups: usize,
    n_genes: usize,
    /// Cells per group.
    pub group_sizes: Vec<usize>,
    // gene-major: index j * n_groups + b
    sum: Vec<f64>,
    sumsq: Vec<f64>,
    nnz: Vec<u64>,
}

const CHUNK_ROWS: usize = 4096;
const MAX_CHUNKS: usize = 32;

impl GeneStats {
    /// Empty accumulators.
    pub fn new(n_groups: usize, n_genes: usize) -> Self {
        Self {
            n_groups,
            n_genes,
            group_sizes: vec![0; n_groups],
            sum: vec![0.0; n_groups * n_genes],
            sumsq: vec![0.0; n_groups * n_genes],
            nnz: vec![0; n_groups * n_genes],
        }
    }

    /// Computes the statistics of `f(x)` over a whole matrix; `groups[i]` is row i's group.
    pub fn compute(
        x: &Matrix,
        groups: &[u32],
        n_groups: usize,
        f: impl Fn(f32) -> f64 + Sync,
    ) -> Self {
        let mut s = Self::new(n_groups, x.shape().1);
        s.add(x, groups, &f);
        s
    }

    /// Adds the rows of `x` (a chunk), with `groups` giving each row's group.
    ///
    /// Rows are split into a fixed number of chunks (a function of the row count only), each
    /// accumulated in parallel into its own partial sums, which are then added in chunk order:
    /// the result does not depend on the number of threads.
    pub fn add(&mut self, x: &Matrix, groups: &[u32], f: &(impl Fn(f32) -> f64 + Sync)) {
        let (n, g) = x.shape();
        // Invariants of the callers (HVG selection, scale, the backed preprocessing), which
        // build `groups` from the same table as `x`: not reachable from user input.
        assert_eq!(g, self.n_genes, "gene count of the chunk");
        assert_eq!(n, groups.len(), "group vector length");
        for &b in groups {
            self.group_sizes[b as usize] += 1;
        }
        let nb = self.n_groups;
        let n_chunks = n.div_ceil(CHUNK_ROWS).clamp(1, MAX_CHUNKS);
        let per = n.div_ceil(n_chunks).max(1);
        let partials: Vec<(Vec<f64>, Vec<f64>, Vec<u64>)> = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let (r0, r1) = (c * per, ((c + 1) * per).min(n));
                let mut sum = vec![0f64; nb * g];
                let mut sq = vec![0f64; nb * g];
                let mut nz = vec![0u64; nb * g];
                let mut add = |i: usize, j: usize, v: f32| {
                    let at = j * nb + groups[i] as usize;
                    let y = f(v);
                    sum[at] += y;
                    // squares are taken at the input's f32 precision, as scanpy's kernel does
                    sq[at] += (y as f32 * y as f32) as f64;
                    if v != 0.0 {
                        nz[at] += 1;
                    }
                };
                match x {
                    Matrix::Csr(m) => {
                        for i in r0..r1 {
                            let (cols, vals) = m.row(i);
                            for (&j, &v) in cols.iter().zip(vals) {
                                add(i, j as usize, v);
                            }
                        }
                    }
                    Matrix::Dense(a) => {
                        for i in r0..r1 {
                            for (j, &v) in a.row(i).iter().enumerate() {
                                if v != 0.0 {
                                    add(i, j, v);
                                }
                            }
                        }
                    }
                }
                (sum, sq, nz)
            })
            .collect();
        for (sum, sq, nz) in partials {
            self.sum.iter_mut().zip(&sum).for_each(|(a, b)| *a += b);
            self.sumsq.iter_mut().zip(&sq).for_each(|(a, b)| *a += b);
            self.nnz.iter_mut().zip(&nz).for_each(|(a, b)| *a += b);
        }
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }
    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.n_groups
    }
    /// Cells of group `b` in which gene `j` is non-zero.
    pub fn nnz(&self, b: usize, j: usize) -> u64 {
        self.nnz[j * self.n_groups + b]
    }
    /// Sum of `f(x)` of gene `j` over group `b`.
    pub fn sum(&self, b: usize, j: usize) -> f64 {
        self.sum[j * self.n_groups + b]
    }
    /// Sum of squares of `f(x)` of gene `j` over group `b`.
    pub fn sumsq(&self, b: usize, j: usize) -> f64 {
        self.sumsq[j * self.n_groups + b]
    }
    /// Mean of gene `j` in group `b` (0 for an empty group).
    pub fn mean(&self, b: usize, j: usize) -> f64 {
        let n = self.group_sizes[b] as f64;
        if n == 0.0 { 0.0 } else { self.sum(b, j) / n }
    }
    /// Unbiased variance (ddof = 1) of gene `j` in group `b`, as scanpy's `_get_mean_var`.
    pub fn var(&self, b: usize, j: usize) -> f64 {
        let n = self.group_sizes[b] as f64;
        if n < 2.0 {
            return f64::NAN;
        }
        let m = self.sum(b, j) / n;
        ((self.sumsq(b, j) / n - m * m) * n / (n - 1.0)).max(0.0)
    }
}
