//! Backed mode: annotations in memory, `X` read in row chunks.

use std::collections::BTreeMap;
use std::ops::Range;

use ndarray::Array2;

use super::read::{read_dataframe, read_obsm, read_uns};
use super::{fmt_err, read_f32, read_u32_indices, read_usize, sparse_kind};
use crate::anndata::UnsValue;
use crate::error::{Error, Result};
use crate::frame::DataFrame;
use crate::io::store::{NodeKind, Store};
use crate::matrix::{CsrMatrix, Matrix};

/// A file opened in backed mode: annotations in memory, `X` read in row chunks on demand,
/// so files larger than memory can be streamed through preprocessing.
pub struct Backed {
    store: Box<dyn Store>,
    /// Per-cell annotations.
    pub obs: DataFrame,
    /// Per-gene annotations.
    pub var: DataFrame,
    /// Per-cell embeddings (read into memory: they are small next to `X`).
    pub obsm: BTreeMap<String, Array2<f32>>,
    /// Unstructured annotations.
    pub uns: BTreeMap<String, UnsValue>,
    layout: XLayout,
}

enum XLayout {
    Dense,
    Csr {
        indptr: Vec<usize>,
    },
    /// The file has no X: annotations and embeddings work, reading rows is an error.
    Absent(Error),
}

impl Backed {
    pub(crate) fn new(store: Box<dyn Store>) -> Result<Self> {
        let obs = read_dataframe(store.as_ref(), "obs")?;
        let var = read_dataframe(store.as_ref(), "var")?;
        let layout = match store.node("X")? {
            Some(NodeKind::Array) => XLayout::Dense,
            Some(NodeKind::Group) => {
                let a = store.attrs("X")?;
                match sparse_kind(&a) {
                    Some("csr") => XLayout::Csr {
                        indptr: read_usize(store.as_ref(), "X/indptr", None)?,
                    },
                    Some(_) => {
                        return Err(fmt_err(
                            store.as_ref(),
                            "X",
                            "X is stored as CSC, which cannot be read by rows; read it whole with scssl_data::io::read",
                        ));
                    }
                    None => {
                        return Err(fmt_err(
                            store.as_ref(),
                            "X",
                            "expected a sparse matrix group",
                        ));
                    }
                }
            }
            None => XLayout::Absent(super::read::missing_x(store.as_ref())?),
        };
        if let XLayout::Csr { indptr } = &layout
            && indptr.len() != obs.n_rows() + 1
        {
            return Err(Error::shape(
                format!("{}: X/indptr length", store.file()),
                obs.n_rows() + 1,
                indptr.len(),
            ));
        }
        let obsm = read_obsm(store.as_ref(), obs.n_rows())?;
        let uns = read_uns(store.as_ref())?;
        Ok(Self {
            store,
            obs,
            var,
            obsm,
            uns,
            layout,
        })
    }

    /// Whether the file has an `X` (a file of embeddings only may not).
    pub fn has_x(&self) -> bool {
        !matches!(self.layout, XLayout::Absent(_))
    }
    /// Number of cells.
    pub fn n_obs(&self) -> usize {
        self.obs.n_rows()
    }
    /// Number of genes.
    pub fn n_vars(&self) -> usize {
        self.var.n_rows()
    }

    /// Reads rows `rows` of `X`.
    pub fn read_rows(&self, rows: Range<usize>) -> Result<Matrix> {
        let g = self.n_vars();
        if rows.end > self.n_obs() || rows.start > rows.end {
            return Err(Error::shape(
                "backed row range",
                format!("within 0..{}", self.n_obs()),
                format!("{rows:?}"),
            ));
        }
        match &self.layout {
            XLayout::Absent(e) => Err(Error::MissingX {
                file: self.store.file().to_string(),
                hint: match e {
                    Error::MissingX { hint, .. } => hint.clone(),
                    other => other.to_string(),
                },
            }),
            XLayout::Dense => {
                let v = read_f32(self.store.as_ref(), "X", Some(rows.clone()))?;
                Array2::from_shape_vec((rows.len(), g), v)
                    .map(Matrix::Dense)
                    .map_err(|e| fmt_err(self.store.as_ref(), "X", e.to_string()))
            }
            XLayout::Csr { indptr } => {
                let (a, b) = (indptr[rows.start], indptr[rows.end]);
                let data = read_f32(self.store.as_ref(), "X/data", Some(a..b))?;
                let indices = read_u32_indices(self.store.as_ref(), "X/indices", Some(a..b))?;
                let ptr: Vec<usize> = indptr[rows.start..=rows.end]
                    .iter()
                    .map(|p| p - a)
                    .collect();
                CsrMatrix::new(rows.len(), g, ptr, indices, data)
                    .map(Matrix::Csr)
                    .map_err(|e| fmt_err(self.store.as_ref(), "X", e.to_string()))
            }
        }
    }

    /// Iterates over `X` in chunks of at most `chunk_rows` rows: `(first_row, chunk)`.
    pub fn chunks(&self, chunk_rows: usize) -> impl Iterator<Item = Result<(usize, Matrix)>> + '_ {
        let step = chunk_rows.max(1);
        (0..self.n_obs()).step_by(step).map(move |s| {
            let e = (s + step).min(self.n_obs());
            self.read_rows(s..e).map(|m| (s, m))
        })
    }
}
