//! The training matrix augmentations read cells and partners from: dense, or compressed sparse
//! rows (CSR) so that a million-cell training set is never densified — a row is densified only
//! when a view or a partner needs it. Both layouts give the same values, so views are
//! bit-identical whichever layout the data is in.

use std::borrow::Cow;

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// A borrowed CSR matrix (cells × genes): row `i`'s column indices are
/// `indices[indptr[i]..indptr[i + 1]]`, its values the same range of `data`. Duplicate columns
/// in a row add up (scipy's convention), as in [`CellRows::copy_row`].
#[derive(Debug, Clone, Copy)]
pub struct CsrRows<'a> {
    n_cols: usize,
    indptr: &'a [usize],
    indices: &'a [u32],
    data: &'a [f32],
    /// Every row's columns strictly increase, so one value is a binary search away.
    sorted: bool,
}

impl<'a> CsrRows<'a> {
    /// Checks the structure (one pass over the indices) and wraps it.
    pub fn new(
        n_cols: usize,
        indptr: &'a [usize],
        indices: &'a [u32],
        data: &'a [f32],
    ) -> Result<Self> {
        let bad = |m: String| Err(Error::Input(format!("CSR training matrix: {m}")));
        if indptr.is_empty() || indptr[0] != 0 {
            return bad("indptr must start at 0".into());
        }
        if indices.len() != data.len() || indptr[indptr.len() - 1] != data.len() {
            return bad(format!(
                "indptr ends at {}, with {} indices and {} values",
                indptr[indptr.len() - 1],
                indices.len(),
                data.len()
            ));
        }
        if indptr.windows(2).any(|w| w[0] > w[1]) {
            return bad("indptr decreases".into());
        }
        if let Some(&c) = indices.iter().find(|&&c| c as usize >= n_cols) {
            return bad(format!("column {c} is out of range for {n_cols} genes"));
        }
        let sorted = indptr
            .windows(2)
            .all(|w| indices[w[0]..w[1]].windows(2).all(|p| p[0] < p[1]));
        Ok(Self {
            n_cols,
            indptr,
            indices,
            data,
            sorted,
        })
    }

    fn row(&self, i: usize) -> (&'a [u32], &'a [f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }
}

/// The cells × genes matrix an augmentation reads, in either layout.
#[derive(Debug, Clone, Copy)]
pub enum CellRows<'a> {
    /// A dense matrix.
    Dense(ArrayView2<'a, f32>),
    /// A CSR matrix.
    Csr(CsrRows<'a>),
}

impl<'a> From<ArrayView2<'a, f32>> for CellRows<'a> {
    fn from(x: ArrayView2<'a, f32>) -> Self {
        CellRows::Dense(x)
    }
}

impl<'a> From<CsrRows<'a>> for CellRows<'a> {
    fn from(x: CsrRows<'a>) -> Self {
        CellRows::Csr(x)
    }
}

#[cfg(feature = "neighbors")]
impl<'a> From<&'a scssl_data::matrix::CsrMatrix> for CellRows<'a> {
    fn from(m: &'a scssl_data::matrix::CsrMatrix) -> Self {
        let sorted = (0..m.n_rows()).all(|i| m.row(i).0.windows(2).all(|p| p[0] < p[1]));
        // a `CsrMatrix` upholds the structure `CsrRows::new` checks
        CellRows::Csr(CsrRows {
            n_cols: m.n_cols(),
            indptr: m.indptr(),
            indices: m.indices(),
            data: m.data(),
            sorted,
        })
    }
}

#[cfg(feature = "neighbors")]
impl<'a> From<&'a scssl_data::matrix::Matrix> for CellRows<'a> {
    fn from(m: &'a scssl_data::matrix::Matrix) -> Self {
        match m {
            scssl_data::matrix::Matrix::Csr(c) => c.into(),
            scssl_data::matrix::Matrix::Dense(d) => CellRows::Dense(d.view()),
        }
    }
}

impl<'a> CellRows<'a> {
    /// Number of cells.
    pub fn nrows(&self) -> usize {
        match self {
            CellRows::Dense(x) => x.nrows(),
            CellRows::Csr(m) => m.indptr.len() - 1,
        }
    }

    /// Number of genes.
    pub fn ncols(&self) -> usize {
        match self {
            CellRows::Dense(x) => x.ncols(),
            CellRows::Csr(m) => m.n_cols,
        }
    }

    /// `(cells, genes)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }

    /// Writes cell `i`'s values into `out` (length: the number of genes).
    pub fn copy_row(&self, i: usize, out: &mut [f32]) {
        match self {
            CellRows::Dense(x) => {
                let row = x.row(i);
                match row.as_slice() {
                    Some(s) => out.copy_from_slice(s),
                    None => out.iter_mut().zip(row.iter()).for_each(|(o, v)| *o = *v),
                }
            }
            CellRows::Csr(m) => {
                out.fill(0.0);
                let (cols, vals) = m.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    out[c as usize] += v;
                }
            }
        }
    }

    /// Cell `i`'s values: borrowed from a dense row-major matrix, densified otherwise.
    pub fn row(&self, i: usize) -> Cow<'a, [f32]> {
        if let CellRows::Dense(x) = self {
            let x: ArrayView2<'a, f32> = *x;
            if let Some(s) = x.index_axis_move(ndarray::Axis(0), i).to_slice() {
                return Cow::Borrowed(s);
            }
        }
        let mut out = vec![0.0; self.ncols()];
        self.copy_row(i, &mut out);
        Cow::Owned(out)
    }

    /// The value of cell `i`, gene `j`.
    pub fn value(&self, i: usize, j: usize) -> f32 {
        match self {
            CellRows::Dense(x) => x[[i, j]],
            CellRows::Csr(m) => {
                let (cols, vals) = m.row(i);
                if m.sorted {
                    cols.binary_search(&(j as u32)).map_or(0.0, |p| vals[p])
                } else {
                    cols.iter()
                        .zip(vals)
                        .filter(|(c, _)| **c as usize == j)
                        .map(|(_, v)| *v)
                        .sum()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_rows_read_the_same_values_as_the_dense_matrix() {
        let dense = ndarray::array![[1.0f32, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 4.0]];
        // row 2 unsorted with a duplicate column: 3 + 0 and 4 = 1 + 3
        let indptr = [0, 2, 2, 5];
        let indices = [0u32, 2, 2, 1, 2];
        let data = [1.0f32, 2.0, 1.0, 3.0, 3.0];
        let csr = CellRows::Csr(CsrRows::new(3, &indptr, &indices, &data).unwrap());
        let d = CellRows::Dense(dense.view());
        assert_eq!(csr.dim(), d.dim());
        for i in 0..3 {
            assert_eq!(csr.row(i), d.row(i), "row {i}");
            for j in 0..3 {
                assert_eq!(csr.value(i, j), d.value(i, j), "({i}, {j})");
            }
        }
        let sorted = CsrRows::new(3, &[0, 2, 2, 4], &[0, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(sorted.sorted);
        assert_eq!(CellRows::Csr(sorted).value(2, 2), 4.0);
        assert!(matches!(d.row(0), Cow::Borrowed(_)));
    }

    #[test]
    fn malformed_csr_is_an_error_that_says_why() {
        let e = CsrRows::new(2, &[0, 1], &[5], &[1.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("column 5"), "{e}");
        let e = CsrRows::new(2, &[0, 2], &[0], &[1.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("indptr ends at 2"), "{e}");
        assert!(CsrRows::new(2, &[], &[], &[]).is_err());
    }
}
