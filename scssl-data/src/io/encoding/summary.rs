//! File summaries (`scssl inspect`) read without loading `X`.

use super::read::read_dataframe;
use super::{fmt_err, shape_attr, sparse_kind};
use crate::error::Result;
use crate::frame::{Column, DataFrame};
use crate::io::store::{NodeKind, Store, join};

/// How a matrix element is stored, read without loading its values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MatrixInfo {
    /// `csr_matrix`, `csc_matrix` or `array`.
    pub encoding: String,
    /// Element type of the stored values (e.g. `float32`).
    pub dtype: String,
    /// Rows × columns.
    pub shape: (usize, usize),
    /// Stored entries for sparse matrices.
    pub nnz: Option<usize>,
}

/// A summary of an AnnData file (what `scssl inspect` prints).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileSummary {
    /// The file.
    pub file: String,
    /// Cells (rows of obs).
    pub n_obs: usize,
    /// Genes (rows of var).
    pub n_vars: usize,
    /// `X`; `None` for a file without X (valid since anndata 0.8).
    pub x: Option<MatrixInfo>,
    /// `raw/X`, when the file has a `raw/`.
    pub raw: Option<MatrixInfo>,
    /// obs columns: name, kind, number of categories / distinct values, and the most frequent values.
    pub obs: Vec<ColumnSummary>,
    /// var columns.
    pub var: Vec<ColumnSummary>,
    /// obsm entries and their shapes.
    pub obsm: Vec<(String, Vec<usize>)>,
    /// layers and their storage.
    pub layers: Vec<(String, MatrixInfo)>,
    /// obsp entries and their storage.
    pub obsp: Vec<(String, MatrixInfo)>,
    /// uns keys.
    pub uns: Vec<String>,
}

/// One column of a summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnSummary {
    /// Column name.
    pub name: String,
    /// Column kind (`categorical`, `string`, `float`, …).
    pub kind: String,
    /// Distinct non-missing values.
    pub n_distinct: usize,
    /// Up to 10 most frequent values with their counts (categorical and string columns).
    pub top: Vec<(String, usize)>,
}

fn matrix_info(store: &dyn Store, key: &str) -> Result<MatrixInfo> {
    match store.node(key)? {
        Some(NodeKind::Array) => {
            let s = store.shape(key)?;
            let probe = store.read(key, Some(0..s.first().copied().unwrap_or(0).min(1)))?;
            Ok(MatrixInfo {
                encoding: "array".into(),
                dtype: probe.dtype_name().into(),
                shape: (
                    s.first().copied().unwrap_or(0),
                    s.get(1).copied().unwrap_or(1),
                ),
                nnz: None,
            })
        }
        Some(NodeKind::Group) => {
            let a = store.attrs(key)?;
            let kind = sparse_kind(&a).ok_or_else(|| fmt_err(store, key, "not a matrix"))?;
            let shape = shape_attr(store, key, &a)?;
            let nnz = store
                .shape(&join(key, "data"))?
                .first()
                .copied()
                .unwrap_or(0);
            let probe = store.read(&join(key, "data"), Some(0..nnz.min(1)))?;
            Ok(MatrixInfo {
                encoding: format!("{kind}_matrix"),
                dtype: probe.dtype_name().into(),
                shape,
                nnz: Some(nnz),
            })
        }
        None => Err(fmt_err(store, key, "element does not exist")),
    }
}

fn column_summaries(df: &DataFrame) -> Vec<ColumnSummary> {
    df.columns
        .iter()
        .map(|(name, c)| {
            let mut counts: std::collections::HashMap<String, usize> =
                std::collections::HashMap::new();
            for i in 0..c.len() {
                if let Some(v) = c.value_string(i) {
                    *counts.entry(v).or_default() += 1;
                }
            }
            let mut top: Vec<(String, usize)> =
                counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let n_distinct = top.len();
            let show = matches!(
                c,
                Column::Categorical { .. } | Column::String(_) | Column::Bool { .. }
            );
            top.truncate(if show { 10 } else { 0 });
            ColumnSummary {
                name: name.clone(),
                kind: c.kind().into(),
                n_distinct,
                top,
            }
        })
        .collect()
}

/// The matrices of a mapping group; elements that are not matrices are skipped with a warning.
fn matrix_infos(store: &dyn Store, group: &str) -> Result<Vec<(String, MatrixInfo)>> {
    let mut out = vec![];
    if store.node(group)? == Some(NodeKind::Group) {
        for k in store.children(group)? {
            let key = join(group, &k);
            if store.node(&key)? == Some(NodeKind::Group)
                && sparse_kind(&store.attrs(&key)?).is_none()
            {
                tracing::warn!("{}: skipping '{key}' (not a matrix)", store.file());
                continue;
            }
            out.push((k, matrix_info(store, &key)?));
        }
    }
    Ok(out)
}

pub(crate) fn summarize(store: &dyn Store) -> Result<FileSummary> {
    let obs = read_dataframe(store, "obs")?;
    let var = read_dataframe(store, "var")?;
    let x = match store.node("X")? {
        Some(_) => Some(matrix_info(store, "X")?),
        None => None,
    };
    let raw = if store.node("raw/X")?.is_some() {
        Some(matrix_info(store, "raw/X")?)
    } else if store.node("raw.X")?.is_some() {
        Some(matrix_info(store, "raw.X")?)
    } else {
        None
    };
    let mut obsm = vec![];
    if store.node("obsm")? == Some(NodeKind::Group) {
        for k in store.children("obsm")? {
            let key = join("obsm", &k);
            let shape = if store.node(&key)? == Some(NodeKind::Array) {
                store.shape(&key)?
            } else {
                vec![]
            };
            obsm.push((k, shape));
        }
    }
    let layers = matrix_infos(store, "layers")?;
    let obsp = matrix_infos(store, "obsp")?;
    let uns = if store.node("uns")? == Some(NodeKind::Group) {
        store.children("uns")?
    } else {
        vec![]
    };
    Ok(FileSummary {
        file: store.file().to_string(),
        n_obs: obs.n_rows(),
        n_vars: var.n_rows(),
        x,
        raw,
        obs: column_summaries(&obs),
        var: column_summaries(&var),
        obsm,
        layers,
        obsp,
        uns,
    })
}
