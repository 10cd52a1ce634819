//! The in-memory AnnData object.

use std::collections::BTreeMap;

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::frame::{DataFrame, Groups};
use crate::matrix::Matrix;

/// A value stored under `uns` (the subset scssl reads and writes).
#[derive(Debug, Clone, PartialEq)]
pub enum UnsValue {
    /// A string scalar.
    String(String),
    /// An array of strings.
    Strings(Vec<String>),
    /// A numeric scalar.
    Number(f64),
    /// A boolean scalar.
    Bool(bool),
    /// A 1-D numeric array.
    Numbers(Vec<f64>),
    /// A nested mapping.
    Dict(BTreeMap<String, UnsValue>),
}

/// An annotated data matrix, like Python's `anndata.AnnData`: cells × genes.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnData {
    /// The main matrix (cells × genes).
    pub x: Matrix,
    /// Per-cell annotations; `obs.index` are the cell names.
    pub obs: DataFrame,
    /// Per-gene annotations; `var.index` are the gene names.
    pub var: DataFrame,
    /// Multi-dimensional per-cell annotations (embeddings, protein counts).
    pub obsm: BTreeMap<String, Array2<f32>>,
    /// Alternative matrices of the same shape as `x` (e.g. `counts`).
    pub layers: BTreeMap<String, Matrix>,
    /// Unstructured annotations.
    pub uns: BTreeMap<String, UnsValue>,
}

impl AnnData {
    /// Builds an AnnData from a matrix and names, checking shapes.
    pub fn new(x: Matrix, obs_names: Vec<String>, var_names: Vec<String>) -> Result<Self> {
        let (n, g) = x.shape();
        if obs_names.len() != n {
            return Err(Error::shape("obs_names length", n, obs_names.len()));
        }
        if var_names.len() != g {
            return Err(Error::shape("var_names length", g, var_names.len()));
        }
        Ok(Self {
            x,
            obs: DataFrame::with_index(obs_names),
            var: DataFrame::with_index(var_names),
            obsm: BTreeMap::new(),
            layers: BTreeMap::new(),
            uns: BTreeMap::new(),
        })
    }
    /// Number of cells.
    pub fn n_obs(&self) -> usize {
        self.x.shape().0
    }
    /// Number of genes.
    pub fn n_vars(&self) -> usize {
        self.x.shape().1
    }
    /// Checks that every part agrees with the shape of `x`.
    pub fn validate(&self) -> Result<()> {
        let (n, g) = self.x.shape();
        if self.obs.n_rows() != n {
            return Err(Error::shape("obs rows", n, self.obs.n_rows()));
        }
        if self.var.n_rows() != g {
            return Err(Error::shape("var rows", g, self.var.n_rows()));
        }
        for (k, c) in &self.obs.columns {
            if c.len() != n {
                return Err(Error::shape(format!("obs column '{k}'"), n, c.len()));
            }
        }
        for (k, c) in &self.var.columns {
            if c.len() != g {
                return Err(Error::shape(format!("var column '{k}'"), g, c.len()));
            }
        }
        for (k, a) in &self.obsm {
            if a.nrows() != n {
                return Err(Error::shape(format!("obsm['{k}'] rows"), n, a.nrows()));
            }
        }
        for (k, l) in &self.layers {
            if l.shape() != (n, g) {
                return Err(Error::shape(
                    format!("layers['{k}'] shape"),
                    format!("{n}x{g}"),
                    format!("{:?}", l.shape()),
                ));
            }
        }
        Ok(())
    }
    /// The obs column `key` as group codes (for batch and label keys).
    pub fn obs_groups(&self, key: &str) -> Result<Groups> {
        self.obs.groups(key, "obs")
    }
    /// The obsm entry `key`, or an error listing the keys that exist.
    pub fn obsm_get(&self, key: &str) -> Result<&Array2<f32>> {
        self.obsm.get(key).ok_or_else(|| Error::MissingKey {
            container: "obsm",
            key: key.into(),
            available: self.obsm.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
    /// Inserts an obsm entry after checking its row count.
    pub fn obsm_insert(&mut self, key: impl Into<String>, value: Array2<f32>) -> Result<()> {
        let key = key.into();
        if value.nrows() != self.n_obs() {
            return Err(Error::shape(
                format!("obsm['{key}'] rows"),
                self.n_obs(),
                value.nrows(),
            ));
        }
        self.obsm.insert(key, value);
        Ok(())
    }
    /// The layer `key`, or an error listing the layers that exist.
    pub fn layer(&self, key: &str) -> Result<&Matrix> {
        self.layers.get(key).ok_or_else(|| Error::MissingKey {
            container: "layers",
            key: key.into(),
            available: self.layers.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
    /// Keeps the given cells, in order (every per-cell part is subset).
    pub fn select_obs(&self, rows: &[usize]) -> AnnData {
        AnnData {
            x: self.x.select_rows(rows),
            obs: self.obs.select(rows),
            var: self.var.clone(),
            obsm: self
                .obsm
                .iter()
                .map(|(k, a)| (k.clone(), a.select(ndarray::Axis(0), rows)))
                .collect(),
            layers: self
                .layers
                .iter()
                .map(|(k, l)| (k.clone(), l.select_rows(rows)))
                .collect(),
            uns: self.uns.clone(),
        }
    }
    /// Keeps the flagged genes, in order (X, var and layers are subset).
    pub fn select_vars(&self, keep: &[bool]) -> AnnData {
        let idx: Vec<usize> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(j, _)| j)
            .collect();
        AnnData {
            x: self.x.select_cols(keep),
            obs: self.obs.clone(),
            var: self.var.select(&idx),
            obsm: self.obsm.clone(),
            layers: self
                .layers
                .iter()
                .map(|(k, l)| (k.clone(), l.select_cols(keep)))
                .collect(),
            uns: self.uns.clone(),
        }
    }
    /// Checks that `x` (or a layer) holds counts: finite and non-negative. Names the first bad entry.
    pub fn check_counts(&self, m: &Matrix) -> Result<()> {
        m.try_for_each(|i, j, v| {
            if !v.is_finite() || v < 0.0 {
                Err(Error::InvalidCounts {
                    row: i,
                    col: j,
                    cell: self.obs.index.get(i).cloned().unwrap_or_default(),
                    gene: self.var.index.get(j).cloned().unwrap_or_default(),
                    value: v,
                })
            } else {
                Ok(())
            }
        })
    }
}
