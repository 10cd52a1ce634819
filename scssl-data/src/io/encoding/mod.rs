//! The AnnData encoding layer over a [`Store`]: which groups, arrays and attributes make up
//! each element, following anndata's on-disk specification.

//!
//! `read` turns a store into an [`AnnData`](crate::AnnData), `write` does the reverse, `backed`
//! reads `X` in row chunks and `summary` describes a file without loading `X`.

mod backed;
mod read;
mod summary;
mod write;

use std::ops::Range;

use serde_json::{Map, Value};

use super::store::{Data, Store};
use crate::error::{Error, Result};

pub use backed::Backed;
pub(crate) use read::{read_anndata, read_anndata_source};
pub(crate) use summary::summarize;
pub use summary::{ColumnSummary, FileSummary, MatrixInfo};
#[cfg(any(feature = "h5ad", feature = "zarr"))]
pub(crate) use write::write_obsm_entry;
pub(crate) use write::{
    append_csr_rows, begin_csr, dict_attrs, end_csr, write_anndata, write_annotations, write_root,
};

fn fmt_err(store: &dyn Store, key: &str, reason: impl Into<String>) -> Error {
    Error::Format {
        file: store.file().to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn enc_type(attrs: &Map<String, Value>) -> Option<&str> {
    attrs.get("encoding-type").and_then(|v| v.as_str())
}

fn attrs(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn read_strings(store: &dyn Store, key: &str) -> Result<Vec<String>> {
    store
        .read(key, None)?
        .into_strings()
        .ok_or_else(|| fmt_err(store, key, "expected an array of strings"))
}

fn read_f32(store: &dyn Store, key: &str, rows: Option<Range<usize>>) -> Result<Vec<f32>> {
    store
        .read(key, rows)?
        .into_f32()
        .ok_or_else(|| fmt_err(store, key, "expected a numeric array"))
}

fn read_usize(store: &dyn Store, key: &str, rows: Option<Range<usize>>) -> Result<Vec<usize>> {
    let v = store
        .read(key, rows)?
        .into_i64()
        .ok_or_else(|| fmt_err(store, key, "expected an integer array"))?;
    v.into_iter()
        .map(|x| {
            usize::try_from(x)
                .map_err(|_| fmt_err(store, key, format!("negative offset or index {x}")))
        })
        .collect()
}

fn read_u32_indices(store: &dyn Store, key: &str, rows: Option<Range<usize>>) -> Result<Vec<u32>> {
    let d = store.read(key, rows)?;
    let v: Vec<u32> = match d {
        Data::I32(v) => v.into_iter().map(|x| x as u32).collect(),
        Data::U32(v) => v,
        other => other
            .into_i64()
            .ok_or_else(|| fmt_err(store, key, "expected integer indices"))?
            .into_iter()
            .map(|x| x as u32)
            .collect(),
    };
    Ok(v)
}

fn shape_attr(store: &dyn Store, key: &str, a: &Map<String, Value>) -> Result<(usize, usize)> {
    let s = a
        .get("shape")
        .or_else(|| a.get("h5sparse_shape"))
        .and_then(|v| v.as_array())
        .ok_or_else(|| fmt_err(store, key, "sparse matrix without a 'shape' attribute"))?;
    if s.len() != 2 {
        return Err(fmt_err(
            store,
            key,
            "sparse 'shape' attribute must have two entries",
        ));
    }
    let get = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_f64().map(|f| f as u64))
            .map(|x| x as usize)
    };
    match (get(&s[0]), get(&s[1])) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(fmt_err(
            store,
            key,
            "sparse 'shape' attribute must be two non-negative integers",
        )),
    }
}

/// Sparse format of a matrix group (`csr`/`csc`), if it is one.
fn sparse_kind(a: &Map<String, Value>) -> Option<&'static str> {
    match enc_type(a).or_else(|| a.get("h5sparse_format").and_then(|v| v.as_str())) {
        Some("csr_matrix") | Some("csr") => Some("csr"),
        Some("csc_matrix") | Some("csc") => Some("csc"),
        _ => None,
    }
}
