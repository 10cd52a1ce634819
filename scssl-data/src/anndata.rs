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
    /// A floating-point scalar.
    Number(f64),
    /// An integer scalar (kept apart from [`UnsValue::Number`] so that it is written back
    /// as an integer: scanpy reads e.g. `uns['neighbors']['params']['n_neighbors']` as one).
    Integer(i64),
    /// A boolean scalar.
    Bool(bool),
    /// A 1-D floating-point array.
    Numbers(Vec<f64>),
    /// A 1-D integer array.
    Integers(Vec<i64>),
    /// A nested mapping.
    Dict(BTreeMap<String, UnsValue>),
}

/// `adata.raw`: an earlier state of the data (often the raw counts) over its own genes, which
/// may be more than `var` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    /// The matrix (cells × `var` rows).
    pub x: Matrix,
    /// The genes of `x`.
    pub var: DataFrame,
}

/// Where a count matrix comes from: `X`, a layer, or `raw/X` (with `raw/var`'s genes). The
/// command-line spelling is `--counts-layer NAME` / `data.counts_layer: NAME`, where the name
/// `raw` means `raw/` (a layer called `raw` is used when the data has no `raw/`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CountsSource {
    /// The main matrix `X`.
    #[default]
    X,
    /// `layers[name]`.
    Layer(String),
    /// `raw/X`, with `raw/var` as the genes.
    Raw,
}

impl CountsSource {
    /// `None` → `X`, `"raw"` → `raw/`, any other name → that layer.
    pub fn from_option(name: Option<&str>) -> Self {
        match name {
            None => CountsSource::X,
            Some("raw") => CountsSource::Raw,
            Some(l) => CountsSource::Layer(l.to_string()),
        }
    }
    /// How users spell it (`X`, the layer's name, `raw`).
    pub fn describe(&self) -> String {
        match self {
            CountsSource::X => "X".into(),
            CountsSource::Layer(l) => format!("layers['{l}']"),
            CountsSource::Raw => "raw/X".into(),
        }
    }
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
    /// Cell × cell matrices (e.g. the neighbour graph `connectivities`).
    pub obsp: BTreeMap<String, Matrix>,
    /// `adata.raw`, when the file has one.
    pub raw: Option<Raw>,
    /// Unstructured annotations.
    pub uns: BTreeMap<String, UnsValue>,
}

/// A [`CountsSource`] checked against the data.
enum ResolvedCounts {
    X,
    Layer(String),
    Raw,
}

/// Rows and columns `rows` of a square (cells × cells) matrix.
fn select_square(m: &Matrix, rows: &[usize]) -> Matrix {
    let n = m.shape().1;
    let by_rows = m.select_rows(rows);
    // select_cols keeps flagged columns in their own order, so pick rows' order afterwards
    let mut keep = vec![false; n];
    for &r in rows {
        if r < n {
            keep[r] = true;
        }
    }
    let sorted_unique = rows.windows(2).all(|w| w[0] < w[1]);
    if sorted_unique {
        return by_rows.select_cols(&keep);
    }
    // general case (reordering or repeats): densify; obsp subsets of this kind are rare
    let d = by_rows.to_dense();
    let a = ndarray::Array2::from_shape_fn((rows.len(), rows.len()), |(i, j)| d[[i, rows[j]]]);
    Matrix::Dense(a)
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
            obsp: BTreeMap::new(),
            raw: None,
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
        for (k, p) in &self.obsp {
            if p.shape() != (n, n) {
                return Err(Error::shape(
                    format!("obsp['{k}'] shape"),
                    format!("{n}x{n}"),
                    format!("{:?}", p.shape()),
                ));
            }
        }
        if let Some(raw) = &self.raw
            && raw.x.shape() != (n, raw.var.n_rows())
        {
            return Err(Error::shape(
                "raw/X shape vs obs and raw/var",
                format!("{n}x{}", raw.var.n_rows()),
                format!("{:?}", raw.x.shape()),
            ));
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
            obsp: self
                .obsp
                .iter()
                .map(|(k, p)| (k.clone(), select_square(p, rows)))
                .collect(),
            raw: self.raw.as_ref().map(|r| Raw {
                x: r.x.select_rows(rows),
                var: r.var.clone(),
            }),
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
            obsp: self.obsp.clone(),
            // like anndata, subsetting genes leaves `raw` whole
            raw: self.raw.clone(),
            uns: self.uns.clone(),
        }
    }

    /// The count matrix of `source` and its genes, as an AnnData of its own (`obs` kept; no
    /// layers, obsm, obsp or uns, which feature pipelines never read and would copy along).
    pub fn counts_only(&self, source: &CountsSource) -> Result<AnnData> {
        let (x, var) = match (self.resolve_counts(source)?, &self.raw) {
            (ResolvedCounts::Layer(l), _) => (self.layer(&l)?.clone(), self.var.clone()),
            (ResolvedCounts::Raw, Some(r)) => (r.x.clone(), r.var.clone()),
            _ => (self.x.clone(), self.var.clone()),
        };
        let mut out = AnnData::new(x, self.obs.index.clone(), var.index.clone())?;
        out.obs = self.obs.clone();
        out.var = var;
        Ok(out)
    }

    /// Makes the count matrix of `source` the main matrix: a layer is copied into `X` (and
    /// kept); `raw/X` becomes `X` with `raw/var` as `var`, and the layers, which have the
    /// other genes, are dropped (`raw` itself is kept).
    pub fn with_counts_as_x(mut self, source: &CountsSource) -> Result<AnnData> {
        match self.resolve_counts(source)? {
            ResolvedCounts::X => {}
            ResolvedCounts::Layer(l) => self.x = self.layer(&l)?.clone(),
            ResolvedCounts::Raw => {
                let Some(raw) = self.raw.clone() else {
                    return Err(Error::MissingKey {
                        container: "raw",
                        key: "X".into(),
                        available: String::new(),
                    });
                };
                if !self.layers.is_empty() {
                    tracing::info!(
                        "counts from raw/X: dropping the layers ({}), which have var's genes, not raw/var's",
                        self.layers.keys().cloned().collect::<Vec<_>>().join(", ")
                    );
                }
                self.layers.clear();
                self.x = raw.x;
                self.var = raw.var;
            }
        }
        self.validate()?;
        Ok(self)
    }

    fn resolve_counts(&self, source: &CountsSource) -> Result<ResolvedCounts> {
        Ok(match source {
            CountsSource::X => ResolvedCounts::X,
            CountsSource::Layer(l) => {
                self.layer(l)?;
                ResolvedCounts::Layer(l.clone())
            }
            CountsSource::Raw => match &self.raw {
                Some(_) => ResolvedCounts::Raw,
                // a layer literally called `raw`, when there is no raw/
                None if self.layers.contains_key("raw") => ResolvedCounts::Layer("raw".into()),
                None => {
                    return Err(Error::MissingKey {
                        container: "raw",
                        key: "X (the data has no raw/; --counts-layer raw needs one)".into(),
                        available: self.layers.keys().cloned().collect::<Vec<_>>().join(", "),
                    });
                }
            },
        })
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
