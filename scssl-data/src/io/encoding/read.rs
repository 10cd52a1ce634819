//! Reading AnnData elements from a store.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde_json::Value;

use super::{
    enc_type, fmt_err, read_f32, read_strings, read_u32_indices, read_usize, shape_attr,
    sparse_kind,
};
use crate::anndata::{AnnData, UnsValue};
use crate::error::{Error, Result};
use crate::frame::{Column, DataFrame};
use crate::io::store::{Data, NodeKind, Store, join};
use crate::matrix::{CsrMatrix, Matrix};

/// Reads a matrix element (dense array or sparse group) as `Matrix`.
pub(crate) fn read_matrix(store: &dyn Store, key: &str) -> Result<Matrix> {
    match store.node(key)? {
        None => Err(fmt_err(store, key, "element does not exist")),
        Some(NodeKind::Array) => {
            let shape = store.shape(key)?;
            let v = read_f32(store, key, None)?;
            let (n, g) = match shape.as_slice() {
                [n, g] => (*n, *g),
                [n] => (*n, 1),
                _ => {
                    return Err(fmt_err(
                        store,
                        key,
                        format!("expected a 2-D array, found shape {shape:?}"),
                    ));
                }
            };
            Array2::from_shape_vec((n, g), v)
                .map(Matrix::Dense)
                .map_err(|e| fmt_err(store, key, e.to_string()))
        }
        Some(NodeKind::Group) => {
            let a = store.attrs(key)?;
            let kind = sparse_kind(&a).ok_or_else(|| {
                fmt_err(
                    store,
                    key,
                    format!(
                        "expected a csr_matrix or csc_matrix group, found encoding {:?}",
                        enc_type(&a)
                    ),
                )
            })?;
            let (n, g) = shape_attr(store, key, &a)?;
            let data = read_f32(store, &join(key, "data"), None)?;
            let indices = read_u32_indices(store, &join(key, "indices"), None)?;
            let indptr = read_usize(store, &join(key, "indptr"), None)?;
            let wrap = |e: Error| fmt_err(store, key, format!("invalid {kind} structure: {e}"));
            if kind == "csr" {
                CsrMatrix::new(n, g, indptr, indices, data)
                    .map(Matrix::Csr)
                    .map_err(wrap)
            } else {
                CsrMatrix::from_csc(n, g, &indptr, &indices, &data)
                    .map(Matrix::Csr)
                    .map_err(wrap)
            }
        }
    }
}

fn read_column(store: &dyn Store, key: &str, n: usize) -> Result<Column> {
    let col = match store.node(key)? {
        None => {
            return Err(fmt_err(
                store,
                key,
                "column listed in column-order does not exist",
            ));
        }
        Some(NodeKind::Group) => {
            let a = store.attrs(key)?;
            match enc_type(&a) {
                Some("categorical") => {
                    let codes = store
                        .read(&join(key, "codes"), None)?
                        .into_i64()
                        .ok_or_else(|| fmt_err(store, key, "categorical codes must be integers"))?;
                    let categories = match store.read(&join(key, "categories"), None)? {
                        Data::Str(s) => s,
                        other => {
                            // numeric categories: render as text, as pandas prints them
                            let f = other.into_f64().unwrap_or_default();
                            f.into_iter()
                                .map(|x| {
                                    if x.fract() == 0.0 {
                                        format!("{}", x as i64)
                                    } else {
                                        x.to_string()
                                    }
                                })
                                .collect()
                        }
                    };
                    let ordered = a
                        .get("ordered")
                        .and_then(|v| v.as_bool().or_else(|| v.as_i64().map(|i| i != 0)))
                        .unwrap_or(false);
                    if let Some(bad) = codes
                        .iter()
                        .find(|&&c| c < -1 || c >= categories.len() as i64)
                    {
                        return Err(fmt_err(
                            store,
                            key,
                            format!("category code {bad} outside -1..{}", categories.len()),
                        ));
                    }
                    Column::Categorical {
                        codes: codes.into_iter().map(|c| c as i32).collect(),
                        categories,
                        ordered,
                    }
                }
                Some("nullable-integer") => Column::Int {
                    values: store
                        .read(&join(key, "values"), None)?
                        .into_i64()
                        .ok_or_else(|| fmt_err(store, key, "values must be integers"))?,
                    mask: Some(
                        store
                            .read(&join(key, "mask"), None)?
                            .into_bool()
                            .ok_or_else(|| fmt_err(store, key, "mask must be boolean"))?,
                    ),
                },
                Some("nullable-boolean") => Column::Bool {
                    values: store
                        .read(&join(key, "values"), None)?
                        .into_bool()
                        .ok_or_else(|| fmt_err(store, key, "values must be boolean"))?,
                    mask: Some(
                        store
                            .read(&join(key, "mask"), None)?
                            .into_bool()
                            .ok_or_else(|| fmt_err(store, key, "mask must be boolean"))?,
                    ),
                },
                Some("nullable-string-array") => {
                    let values = read_strings(store, &join(key, "values"))?;
                    let mask = store
                        .read(&join(key, "mask"), None)?
                        .into_bool()
                        .ok_or_else(|| fmt_err(store, key, "mask must be boolean"))?;
                    Column::String(
                        values
                            .into_iter()
                            .zip(mask)
                            .map(|(v, m)| (!m).then_some(v))
                            .collect(),
                    )
                }
                other => {
                    return Err(fmt_err(
                        store,
                        key,
                        format!("unsupported column encoding {other:?}"),
                    ));
                }
            }
        }
        Some(NodeKind::Array) => match store.read(key, None)? {
            Data::Str(s) => Column::String(s.into_iter().map(Some).collect()),
            Data::Bool(b) => Column::Bool {
                values: b,
                mask: None,
            },
            Data::F32(v) => Column::Float(v.into_iter().map(f64::from).collect()),
            Data::F64(v) => Column::Float(v),
            other => Column::Int {
                values: other.into_i64().unwrap_or_default(),
                mask: None,
            },
        },
    };
    if col.len() != n {
        return Err(fmt_err(
            store,
            key,
            format!("column has {} rows, the table has {n}", col.len()),
        ));
    }
    Ok(col)
}

pub(crate) fn read_dataframe(store: &dyn Store, key: &str) -> Result<DataFrame> {
    if store.node(key)? != Some(NodeKind::Group) {
        return Err(fmt_err(store, key, "expected a dataframe group"));
    }
    let a = store.attrs(key)?;
    let index_name = a
        .get("_index")
        .and_then(|v| v.as_str())
        .unwrap_or("_index")
        .to_string();
    let index = match store.read(&join(key, &index_name), None)? {
        Data::Str(s) => s,
        other => other
            .into_i64()
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.to_string())
            .collect(),
    };
    let n = index.len();
    let order: Vec<String> = match a.get("column-order") {
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => store
            .children(key)?
            .into_iter()
            .filter(|c| *c != index_name && c != "__categories")
            .collect(),
    };
    let mut columns = Vec::with_capacity(order.len());
    for c in order {
        let col = read_column(store, &join(key, &c), n)?;
        columns.push((c, col));
    }
    Ok(DataFrame {
        index,
        index_name,
        columns,
    })
}

pub(crate) fn read_obsm(store: &dyn Store, n_obs: usize) -> Result<BTreeMap<String, Array2<f32>>> {
    let mut out = BTreeMap::new();
    if store.node("obsm")? != Some(NodeKind::Group) {
        return Ok(out);
    }
    for k in store.children("obsm")? {
        let key = join("obsm", &k);
        if store.node(&key)? == Some(NodeKind::Group) {
            let a = store.attrs(&key)?;
            if sparse_kind(&a).is_none() {
                tracing::warn!(
                    "{}: skipping obsm['{k}'] (encoding {:?} is not an array)",
                    store.file(),
                    enc_type(&a)
                );
                continue;
            }
        }
        let m = read_matrix(store, &key)?;
        if m.shape().0 != n_obs {
            return Err(Error::shape(
                format!("{}: obsm['{k}'] rows", store.file()),
                n_obs,
                m.shape().0,
            ));
        }
        out.insert(k, m.to_dense());
    }
    Ok(out)
}

fn read_uns_value(store: &dyn Store, key: &str) -> Result<Option<UnsValue>> {
    match store.node(key)? {
        Some(NodeKind::Group) => {
            let a = store.attrs(key)?;
            if matches!(enc_type(&a), Some("dict") | None) {
                let mut m = BTreeMap::new();
                for c in store.children(key)? {
                    if let Some(v) = read_uns_value(store, &join(key, &c))? {
                        m.insert(c, v);
                    }
                }
                Ok(Some(UnsValue::Dict(m)))
            } else {
                Ok(None)
            }
        }
        Some(NodeKind::Array) => {
            let shape = store.shape(key)?;
            let d = match store.read(key, None) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!("skipping uns element {key}: {e}");
                    return Ok(None);
                }
            };
            let scalar = shape.is_empty();
            Ok(Some(match d {
                Data::Str(mut s) if scalar && s.len() == 1 => UnsValue::String(s.remove(0)),
                Data::Str(s) => UnsValue::Strings(s),
                Data::Bool(b) if scalar && b.len() == 1 => UnsValue::Bool(b[0]),
                other => {
                    let v = other.into_f64().unwrap_or_default();
                    if scalar && v.len() == 1 {
                        UnsValue::Number(v[0])
                    } else {
                        UnsValue::Numbers(v)
                    }
                }
            }))
        }
        None => Ok(None),
    }
}

/// The supported entries of `uns` (others are skipped with a debug log).
pub(crate) fn read_uns(store: &dyn Store) -> Result<BTreeMap<String, UnsValue>> {
    let mut uns = BTreeMap::new();
    if store.node("uns")? == Some(NodeKind::Group) {
        for k in store.children("uns")? {
            if let Some(v) = read_uns_value(store, &join("uns", &k))? {
                uns.insert(k, v);
            }
        }
    }
    Ok(uns)
}

/// Reads every supported element of an AnnData store.
pub(crate) fn read_anndata(store: &dyn Store) -> Result<AnnData> {
    if store.node("X")?.is_none() {
        return Err(fmt_err(
            store,
            "X",
            "the file has no X element (is it an AnnData file?)",
        ));
    }
    let obs = read_dataframe(store, "obs")?;
    let var = read_dataframe(store, "var")?;
    let x = read_matrix(store, "X")?;
    if x.shape() != (obs.n_rows(), var.n_rows()) {
        return Err(Error::shape(
            format!("{}: X shape vs obs/var", store.file()),
            format!("{}x{}", obs.n_rows(), var.n_rows()),
            format!("{}x{}", x.shape().0, x.shape().1),
        ));
    }
    let obsm = read_obsm(store, obs.n_rows())?;
    let mut layers = BTreeMap::new();
    if store.node("layers")? == Some(NodeKind::Group) {
        for k in store.children("layers")? {
            let m = read_matrix(store, &join("layers", &k))?;
            layers.insert(k, m);
        }
    }
    let uns = read_uns(store)?;
    let ad = AnnData {
        x,
        obs,
        var,
        obsm,
        layers,
        uns,
    };
    ad.validate()?;
    Ok(ad)
}
