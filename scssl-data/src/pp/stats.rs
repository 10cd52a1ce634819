//! Per-gene, per-group moments, computed in `f64` in an order that does not depend on the
//! number of threads (each gene is accumulated by one task, rows in file order).

use rayon::prelude::*;

use crate::matrix::{CsrMatrix, Matrix};

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

const BLOCK_ROWS: usize = 8192;

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
    pub fn add(&mut self, x: &Matrix, groups: &[u32], f: &(impl Fn(f32) -> f64 + Sync)) {
        let (n, g) = x.shape();
        assert_eq!(g, self.n_genes, "gene count of the chunk");
        assert_eq!(n, groups.len(), "group vector length");
        for &b in groups {
            self.group_sizes[b as usize] += 1;
        }
        let nb = self.n_groups;
        for start in (0..n).step_by(BLOCK_ROWS) {
            let end = (start + BLOCK_ROWS).min(n);
            // Column-major view of the block so that each gene is owned by one task.
            let block: CsrMatrix = match x {
                Matrix::Csr(m) => m.select_rows(&(start..end).collect::<Vec<_>>()).transpose(),
                Matrix::Dense(a) => {
                    CsrMatrix::from_dense(a.slice(ndarray::s![start..end, ..])).transpose()
                }
            };
            let sums = self.sum.par_chunks_mut(nb);
            let sqs = self.sumsq.par_chunks_mut(nb);
            let nzs = self.nnz.par_chunks_mut(nb);
            sums.zip(sqs)
                .zip(nzs)
                .enumerate()
                .for_each(|(j, ((s, q), z))| {
                    let (rows, vals) = block.row(j);
                    for (&r, &v) in rows.iter().zip(vals) {
                        let b = groups[start + r as usize] as usize;
                        let y = f(v);
                        s[b] += y;
                        // squares are taken at the input's f32 precision, as scanpy's kernel does
                        q[b] += (y as f32 * y as f32) as f64;
                        if v != 0.0 {
                            z[b] += 1;
                        }
                    }
                });
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
