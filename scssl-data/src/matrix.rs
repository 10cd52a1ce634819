//! Expression matrices: compressed sparse rows and dense row-major arrays, `f32` storage.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// `Σ a[i]·b[i]` in `f64`, over eight independent lanes summed at the end: the loop vectorises
/// (a single running sum cannot, as floating-point addition is not reassociated), and the
/// order is fixed by the length alone, so the result does not depend on threads or alignment.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        + tail
}

/// A compressed-sparse-row matrix (the layout scanpy uses for count data).
///
/// Invariants (checked by [`CsrMatrix::new`]): `indptr.len() == n_rows + 1`, `indptr` is
/// non-decreasing and ends at `indices.len() == data.len()`, and every column index is
/// `< n_cols`. Column indices within a row need not be sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl CsrMatrix {
    /// Builds a CSR matrix, validating its structure.
    pub fn new(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
    ) -> Result<Self> {
        if indptr.len() != n_rows + 1 {
            return Err(Error::shape("CSR indptr length", n_rows + 1, indptr.len()));
        }
        if indices.len() != data.len() {
            return Err(Error::shape(
                "CSR indices vs data length",
                data.len(),
                indices.len(),
            ));
        }
        if indptr[0] != 0 || *indptr.last().unwrap_or(&0) != data.len() {
            return Err(Error::shape(
                "CSR indptr range",
                format!("0..{}", data.len()),
                format!("{}..{}", indptr[0], indptr.last().unwrap_or(&0)),
            ));
        }
        if indptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::shape(
                "CSR indptr",
                "non-decreasing offsets",
                "a decreasing offset",
            ));
        }
        if let Some(&bad) = indices.iter().find(|&&c| c as usize >= n_cols) {
            return Err(Error::shape("CSR column index", format!("< {n_cols}"), bad));
        }
        Ok(Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// An all-zero matrix.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        Self {
            n_rows,
            n_cols,
            indptr: vec![0; n_rows + 1],
            indices: vec![],
            data: vec![],
        }
    }

    /// Converts a dense matrix, keeping only non-zero entries.
    pub fn from_dense(x: ArrayView2<'_, f32>) -> Self {
        let (n_rows, n_cols) = x.dim();
        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0);
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(data.len());
        }
        Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Builds CSR from CSC arrays of the same matrix (a transpose of the storage).
    pub fn from_csc(
        n_rows: usize,
        n_cols: usize,
        colptr: &[usize],
        row_indices: &[u32],
        data: &[f32],
    ) -> Result<Self> {
        // A CSC matrix is the CSR storage of its transpose; transposing that gives CSR.
        let t = CsrMatrix::new(
            n_cols,
            n_rows,
            colptr.to_vec(),
            row_indices.to_vec(),
            data.to_vec(),
        )?;
        Ok(t.transpose())
    }

    /// Number of rows (cells).
    #[inline]
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    /// Number of columns (genes).
    #[inline]
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }
    /// Number of stored entries.
    #[inline]
    pub fn nnz(&self) -> usize {
        self.data.len()
    }
    /// Row offsets into `indices`/`data`.
    #[inline]
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }
    /// Column indices of stored entries.
    #[inline]
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }
    /// Stored values.
    #[inline]
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Mutable stored values (the sparsity pattern stays fixed).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    /// The column indices and values of row `i`. Inlined: graph algorithms in other crates call
    /// it once per row visit (a call each cost kBET's eigensolver ~5 % of its time).
    #[inline]
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Applies `f(row, values)` to every row's values in parallel.
    pub fn par_rows_mut<F>(&mut self, f: F)
    where
        F: Fn(usize, &[u32], &mut [f32]) + Sync,
    {
        let indptr = &self.indptr;
        let indices = &self.indices;
        let mut rows: Vec<&mut [f32]> = Vec::with_capacity(self.n_rows);
        let mut rest: &mut [f32] = &mut self.data;
        for i in 0..self.n_rows {
            let len = indptr[i + 1] - indptr[i];
            let (head, tail) = rest.split_at_mut(len);
            rows.push(head);
            rest = tail;
        }
        rows.into_par_iter().enumerate().for_each(|(i, vals)| {
            f(i, &indices[indptr[i]..indptr[i + 1]], vals);
        });
    }

    /// The transpose, as CSR (equivalently: this matrix in CSC layout).
    pub fn transpose(&self) -> CsrMatrix {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for j in 0..self.n_cols {
            counts[j + 1] += counts[j];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for i in 0..self.n_rows {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                let p = next[c as usize];
                indices[p] = i as u32;
                data[p] = v;
                next[c as usize] += 1;
            }
        }
        CsrMatrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            data,
        }
    }

    /// Keeps the given rows, in the given order.
    pub fn select_rows(&self, rows: &[usize]) -> CsrMatrix {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let total: usize = rows
            .iter()
            .map(|&r| self.indptr[r + 1] - self.indptr[r])
            .sum();
        let mut indices = Vec::with_capacity(total);
        let mut data = Vec::with_capacity(total);
        for &r in rows {
            let (c, v) = self.row(r);
            indices.extend_from_slice(c);
            data.extend_from_slice(v);
            indptr.push(data.len());
        }
        CsrMatrix {
            n_rows: rows.len(),
            n_cols: self.n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Keeps the columns whose `keep` flag is set, renumbering them in their original order.
    pub fn select_cols(&self, keep: &[bool]) -> CsrMatrix {
        let mut new_index = vec![u32::MAX; self.n_cols];
        let mut n = 0u32;
        for (j, &k) in keep.iter().enumerate() {
            if k {
                new_index[j] = n;
                n += 1;
            }
        }
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        indptr.push(0);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        for i in 0..self.n_rows {
            let (c, v) = self.row(i);
            for (&cc, &vv) in c.iter().zip(v) {
                let m = new_index[cc as usize];
                if m != u32::MAX {
                    indices.push(m);
                    data.push(vv);
                }
            }
            indptr.push(data.len());
        }
        CsrMatrix {
            n_rows: self.n_rows,
            n_cols: n as usize,
            indptr,
            indices,
            data,
        }
    }

    /// Densifies rows `start..end` into a row-major `f32` array.
    pub fn dense_rows(&self, start: usize, end: usize) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((end - start, self.n_cols));
        for (k, i) in (start..end).enumerate() {
            let (c, v) = self.row(i);
            let mut row = out.row_mut(k);
            for (&cc, &vv) in c.iter().zip(v) {
                row[cc as usize] += vv;
            }
        }
        out
    }

    /// Densifies the whole matrix.
    pub fn to_dense(&self) -> Array2<f32> {
        self.dense_rows(0, self.n_rows)
    }

    /// Densifies the given rows, in the given order (a mini-batch of a sparse training matrix).
    pub fn dense_select_rows(&self, rows: &[usize]) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((rows.len(), self.n_cols));
        for (mut dst, &i) in out.rows_mut().into_iter().zip(rows) {
            let (c, v) = self.row(i);
            for (&cc, &vv) in c.iter().zip(v) {
                dst[cc as usize] += vv;
            }
        }
        out
    }

    /// Stacks row blocks with the same number of columns.
    pub fn vstack(blocks: &[CsrMatrix]) -> Result<CsrMatrix> {
        let n_cols = blocks.first().map_or(0, |b| b.n_cols);
        let mut indptr = vec![0usize];
        let mut indices = Vec::new();
        let mut data = Vec::new();
        let mut n_rows = 0;
        for b in blocks {
            if b.n_cols != n_cols {
                return Err(Error::shape("vstack column count", n_cols, b.n_cols));
            }
            let off = data.len();
            indptr.extend(b.indptr[1..].iter().map(|p| p + off));
            indices.extend_from_slice(&b.indices);
            data.extend_from_slice(&b.data);
            n_rows += b.n_rows;
        }
        Ok(CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Decomposes into `(n_rows, n_cols, indptr, indices, data)`.
    pub fn into_parts(self) -> (usize, usize, Vec<usize>, Vec<u32>, Vec<f32>) {
        (
            self.n_rows,
            self.n_cols,
            self.indptr,
            self.indices,
            self.data,
        )
    }
}

/// An expression matrix in one of the layouts AnnData stores.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Compressed sparse rows (CSC inputs are converted to this on read).
    Csr(CsrMatrix),
    /// Dense, row-major.
    Dense(Array2<f32>),
}

impl Matrix {
    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Matrix::Csr(m) => (m.n_rows, m.n_cols),
            Matrix::Dense(a) => a.dim(),
        }
    }
    /// Number of rows (cells).
    pub fn nrows(&self) -> usize {
        self.shape().0
    }
    /// Number of columns (genes).
    pub fn ncols(&self) -> usize {
        self.shape().1
    }
    /// A dense copy.
    pub fn to_dense(&self) -> Array2<f32> {
        match self {
            Matrix::Csr(m) => m.to_dense(),
            Matrix::Dense(a) => a.clone(),
        }
    }
    /// A CSR copy (dense zeros dropped).
    pub fn to_csr(&self) -> CsrMatrix {
        match self {
            Matrix::Csr(m) => m.clone(),
            Matrix::Dense(a) => CsrMatrix::from_dense(a.view()),
        }
    }
    /// Densifies rows `start..end`.
    pub fn dense_rows(&self, start: usize, end: usize) -> Array2<f32> {
        match self {
            Matrix::Csr(m) => m.dense_rows(start, end),
            Matrix::Dense(a) => a.slice(ndarray::s![start..end, ..]).to_owned(),
        }
    }
    /// The given rows, in order, as a dense array (no sparse intermediate).
    pub fn dense_select_rows(&self, rows: &[usize]) -> Array2<f32> {
        match self {
            Matrix::Csr(m) => m.dense_select_rows(rows),
            Matrix::Dense(a) => a.select(ndarray::Axis(0), rows),
        }
    }
    /// The dense array: borrowed when stored dense, a dense copy of a CSR matrix otherwise.
    pub fn dense(&self) -> std::borrow::Cow<'_, Array2<f32>> {
        match self {
            Matrix::Dense(a) => std::borrow::Cow::Borrowed(a),
            Matrix::Csr(m) => std::borrow::Cow::Owned(m.to_dense()),
        }
    }
    /// The dense array itself, or `None` for a CSR matrix.
    pub fn as_dense(&self) -> Option<&Array2<f32>> {
        match self {
            Matrix::Dense(a) => Some(a),
            Matrix::Csr(_) => None,
        }
    }
    /// Keeps the given rows, in order.
    pub fn select_rows(&self, rows: &[usize]) -> Matrix {
        match self {
            Matrix::Csr(m) => Matrix::Csr(m.select_rows(rows)),
            Matrix::Dense(a) => Matrix::Dense(a.select(ndarray::Axis(0), rows)),
        }
    }
    /// Keeps the flagged columns, in order.
    pub fn select_cols(&self, keep: &[bool]) -> Matrix {
        match self {
            Matrix::Csr(m) => Matrix::Csr(m.select_cols(keep)),
            Matrix::Dense(a) => {
                let cols: Vec<usize> = keep
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| **k)
                    .map(|(j, _)| j)
                    .collect();
                Matrix::Dense(a.select(ndarray::Axis(1), &cols))
            }
        }
    }
    /// Calls `f(row, col, value)` for every stored (CSR) or every (dense) entry, stopping at the first error.
    pub fn try_for_each<E>(
        &self,
        mut f: impl FnMut(usize, usize, f32) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Matrix::Csr(m) => {
                for i in 0..m.n_rows {
                    let (c, v) = m.row(i);
                    for (&cc, &vv) in c.iter().zip(v) {
                        f(i, cc as usize, vv)?;
                    }
                }
            }
            Matrix::Dense(a) => {
                for ((i, j), &v) in a.indexed_iter() {
                    f(i, j, v)?;
                }
            }
        }
        Ok(())
    }
    /// Per-row sums in `f64`.
    pub fn row_sums(&self) -> Vec<f64> {
        match self {
            Matrix::Csr(m) => (0..m.n_rows)
                .into_par_iter()
                .map(|i| m.row(i).1.iter().map(|&v| v as f64).sum())
                .collect(),
            Matrix::Dense(a) => a
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|&v| v as f64).sum())
                .collect(),
        }
    }
    /// Number of non-zero entries per row and per column.
    pub fn nonzero_counts(&self) -> (Vec<usize>, Vec<usize>) {
        let (n, g) = self.shape();
        let mut per_row = vec![0usize; n];
        let mut per_col = vec![0usize; g];
        let _ = self.try_for_each::<()>(|i, j, v| {
            if v != 0.0 {
                per_row[i] += 1;
                per_col[j] += 1;
            }
            Ok(())
        });
        (per_row, per_col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn dense_round_trip_and_transpose() {
        let d = array![[0.0f32, 1.0, 0.0], [2.0, 0.0, 3.0]];
        let m = CsrMatrix::from_dense(d.view());
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.to_dense(), d);
        assert_eq!(m.transpose().to_dense(), d.t().to_owned());
        assert_eq!(
            m.select_cols(&[true, false, true]).to_dense(),
            array![[0.0f32, 0.0], [2.0, 3.0]]
        );
        assert_eq!(m.select_rows(&[1]).to_dense(), array![[2.0f32, 0.0, 3.0]]);
        let picked = array![[2.0f32, 0.0, 3.0], [0.0, 1.0, 0.0], [2.0, 0.0, 3.0]];
        for x in [Matrix::Csr(m.clone()), Matrix::Dense(d.clone())] {
            assert_eq!(x.dense_select_rows(&[1, 0, 1]), picked);
        }
        assert_eq!(Matrix::Dense(d.clone()).as_dense(), Some(&d));
        assert_eq!(Matrix::Csr(m).as_dense(), None);
    }

    #[test]
    fn invalid_structure_is_rejected() {
        assert!(CsrMatrix::new(1, 2, vec![0, 1], vec![5], vec![1.0]).is_err());
        assert!(CsrMatrix::new(2, 2, vec![0, 1], vec![0], vec![1.0]).is_err());
        assert!(CsrMatrix::new(1, 2, vec![0, 2], vec![0], vec![1.0]).is_err());
    }
}
