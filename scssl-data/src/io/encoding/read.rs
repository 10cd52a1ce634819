//! Reading AnnData elements from a store.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde_json::Value;

use super::{
    enc_type, fmt_err, read_f32, read_strings, read_u32_indices, read_usize, shape_attr,
    sparse_kind,
};
use crate::anndata::{AnnData, CountsSource, Raw, UnsValue};
use crate::error::{Error, Result};
use crate::frame::{CategoryKind, Column, DataFrame};
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

/// Categories of a categorical as strings (numeric categories rendered as pandas prints
/// them), and what they were on disk.
fn read_categories(store: &dyn Store, key: &str) -> Result<(Vec<String>, CategoryKind)> {
    Ok(match store.read(key, None)? {
        Data::Str(s) => (s, CategoryKind::Text),
        other => {
            let ints = other.is_integer();
            let values = other.into_f64().unwrap_or_default();
            let text = values
                .iter()
                .map(|&x| {
                    if ints || (x.fract() == 0.0 && x.abs() < 1e15) {
                        format!("{}", x as i64)
                    } else {
                        x.to_string()
                    }
                })
                .collect();
            let kind = if ints {
                CategoryKind::Integer
            } else {
                CategoryKind::Float
            };
            (text, kind)
        }
    })
}

fn categorical(
    store: &dyn Store,
    key: &str,
    codes: Vec<i64>,
    (categories, category_kind): (Vec<String>, CategoryKind),
    ordered: bool,
) -> Result<Column> {
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
    Ok(Column::Categorical {
        codes: codes.into_iter().map(|c| c as i32).collect(),
        categories,
        ordered,
        category_kind,
    })
}

fn bool_attr(a: &serde_json::Map<String, Value>, name: &str) -> bool {
    a.get(name)
        .and_then(|v| v.as_bool().or_else(|| v.as_i64().map(|i| i != 0)))
        .unwrap_or(false)
}

fn read_mask(store: &dyn Store, key: &str) -> Result<Vec<bool>> {
    store
        .read(&join(key, "mask"), None)?
        .into_bool()
        .ok_or_else(|| fmt_err(store, key, "mask must be boolean"))
}

/// One dataframe column (or index). `Ok(None)`: an encoding scssl does not use, skipped with a
/// warning naming it.
fn read_column(store: &dyn Store, df_key: &str, name: &str) -> Result<Option<Column>> {
    let key = join(df_key, name);
    let key = key.as_str();
    Ok(Some(match store.node(key)? {
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
                    let categories = read_categories(store, &join(key, "categories"))?;
                    categorical(store, key, codes, categories, bool_attr(&a, "ordered"))?
                }
                Some("nullable-integer") => {
                    let values = store
                        .read(&join(key, "values"), None)?
                        .into_i64()
                        .ok_or_else(|| fmt_err(store, key, "values must be integers"))?;
                    let mask = read_mask(store, key)?;
                    check_same_len(store, key, values.len(), mask.len())?;
                    Column::Int {
                        values,
                        mask: Some(mask),
                    }
                }
                Some("nullable-boolean") => {
                    let values = store
                        .read(&join(key, "values"), None)?
                        .into_bool()
                        .ok_or_else(|| fmt_err(store, key, "values must be boolean"))?;
                    let mask = read_mask(store, key)?;
                    check_same_len(store, key, values.len(), mask.len())?;
                    Column::Bool {
                        values,
                        mask: Some(mask),
                    }
                }
                Some("nullable-string-array") => {
                    let values = read_strings(store, &join(key, "values"))?;
                    let mask = read_mask(store, key)?;
                    check_same_len(store, key, values.len(), mask.len())?;
                    Column::String(
                        values
                            .into_iter()
                            .zip(mask)
                            .map(|(v, m)| (!m).then_some(v))
                            .collect(),
                    )
                }
                other => {
                    tracing::warn!(
                        "{}: skipping '{key}' (encoding {other:?} is not a dataframe column scssl reads)",
                        store.file()
                    );
                    return Ok(None);
                }
            }
        }
        Some(NodeKind::Array) => {
            let shape = store.shape(key)?;
            if shape.len() != 1 {
                return Err(fmt_err(
                    store,
                    key,
                    format!("a dataframe column must be 1-D, found shape {shape:?}"),
                ));
            }
            let legacy_categories = store.attr_names(key)?.iter().any(|n| n == "categories");
            match store.read(key, None)? {
                // anndata 0.7: codes here, categories in <df>/__categories/<col> (h5ad: an object
                // reference attribute; zarr: the attribute holds that path)
                codes if legacy_categories => {
                    let a = store.attrs(key)?;
                    let cat_key = match a.get("categories").and_then(|v| v.as_str()) {
                        Some(rel) => join(df_key, rel),
                        None => join(df_key, &format!("__categories/{name}")),
                    };
                    if store.node(&cat_key)? != Some(NodeKind::Array) {
                        return Err(fmt_err(
                            store,
                            key,
                            format!(
                                "legacy categorical (anndata 0.7) whose categories '{cat_key}' do not exist"
                            ),
                        ));
                    }
                    let codes = codes.into_i64().ok_or_else(|| {
                        fmt_err(store, key, "legacy categorical codes must be integers")
                    })?;
                    let categories = read_categories(store, &cat_key)?;
                    let ordered = bool_attr(&store.attrs(&cat_key)?, "ordered");
                    categorical(store, key, codes, categories, ordered)?
                }
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
            }
        }
    }))
}

fn check_same_len(store: &dyn Store, key: &str, values: usize, mask: usize) -> Result<()> {
    if values != mask {
        return Err(fmt_err(
            store,
            key,
            format!("values has {values} entries, mask {mask}"),
        ));
    }
    Ok(())
}

/// How to convert a file that predates anndata 0.7.
const CONVERT_PRE_07: &str = "the file predates anndata 0.7 (anndata 0.5/0.6 stored obs and var as \
     compound datasets); convert it once with Python: \
     `import anndata; anndata.read_h5ad('old.h5ad').write_h5ad('new.h5ad')`";

pub(crate) fn read_dataframe(store: &dyn Store, key: &str) -> Result<DataFrame> {
    match store.node(key)? {
        Some(NodeKind::Group) => {}
        Some(NodeKind::Array) => return Err(fmt_err(store, key, CONVERT_PRE_07)),
        None => return Err(fmt_err(store, key, "element does not exist")),
    }
    let a = store.attrs(key)?;
    if let Some(e) = enc_type(&a)
        && e != "dataframe"
    {
        return Err(fmt_err(
            store,
            key,
            format!("expected a dataframe, found encoding {e:?}"),
        ));
    }
    let index_name = a
        .get("_index")
        .and_then(|v| v.as_str())
        .unwrap_or("_index")
        .to_string();
    let index: Vec<String> = match read_column(store, key, &index_name)? {
        Some(Column::String(s)) => {
            let missing = s.iter().filter(|v| v.is_none()).count();
            if missing > 0 {
                return Err(fmt_err(
                    store,
                    &join(key, &index_name),
                    format!("{missing} missing values in the index (names must be present)"),
                ));
            }
            s.into_iter().map(Option::unwrap_or_default).collect()
        }
        Some(Column::Categorical {
            codes, categories, ..
        }) => codes
            .into_iter()
            .map(|c| categories.get(c as usize).cloned().unwrap_or_default())
            .collect(),
        Some(Column::Int { values, .. }) => values.into_iter().map(|x| x.to_string()).collect(),
        Some(Column::Float(v)) => v.into_iter().map(|x| x.to_string()).collect(),
        Some(Column::Bool { values, .. }) => values.into_iter().map(|x| x.to_string()).collect(),
        None => {
            return Err(fmt_err(
                store,
                &join(key, &index_name),
                "the index has an encoding scssl cannot read",
            ));
        }
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
        if let Some(col) = read_column(store, key, &c)? {
            if col.len() != n {
                return Err(fmt_err(
                    store,
                    &join(key, &c),
                    format!("column has {} rows, the table has {n}", col.len()),
                ));
            }
            columns.push((c, col));
        }
    }
    Ok(DataFrame {
        index,
        index_name,
        columns,
    })
}

/// Whether a group element is a matrix scssl reads (a sparse matrix); others are skipped with a
/// warning naming them.
fn readable_matrix(store: &dyn Store, key: &str) -> Result<bool> {
    if store.node(key)? == Some(NodeKind::Group) {
        let a = store.attrs(key)?;
        if sparse_kind(&a).is_none() {
            tracing::warn!(
                "{}: skipping '{key}' (encoding {:?} is not a matrix)",
                store.file(),
                enc_type(&a)
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every matrix of a mapping group (`layers`, `obsp`), checked against `shape`.
fn read_matrix_map(
    store: &dyn Store,
    group: &str,
    shape: (usize, usize),
) -> Result<BTreeMap<String, Matrix>> {
    let mut out = BTreeMap::new();
    if store.node(group)? != Some(NodeKind::Group) {
        return Ok(out);
    }
    for k in store.children(group)? {
        let key = join(group, &k);
        if !readable_matrix(store, &key)? {
            continue;
        }
        let m = read_matrix(store, &key)?;
        if m.shape() != shape {
            return Err(Error::shape(
                format!("{}: {group}['{k}']", store.file()),
                format!("{}x{}", shape.0, shape.1),
                format!("{}x{}", m.shape().0, m.shape().1),
            ));
        }
        out.insert(k, m);
    }
    Ok(out)
}

/// `raw/` (anndata ≥ 0.7: a group with `X` and `var`) or the pre-0.7 `raw.X`/`raw.var`.
pub(crate) fn read_raw(store: &dyn Store, n_obs: usize) -> Result<Option<Raw>> {
    let (x_key, var_key) = if store.node("raw")? == Some(NodeKind::Group) {
        ("raw/X", "raw/var")
    } else if store.node("raw.X")?.is_some() {
        ("raw.X", "raw.var")
    } else {
        return Ok(None);
    };
    if store.node(x_key)?.is_none() {
        tracing::warn!("{}: skipping raw (it has no X)", store.file());
        return Ok(None);
    }
    let var = read_dataframe(store, var_key)?;
    let x = read_matrix(store, x_key)?;
    if x.shape() != (n_obs, var.n_rows()) {
        return Err(Error::shape(
            format!("{}: {x_key} vs obs and {var_key}", store.file()),
            format!("{n_obs}x{}", var.n_rows()),
            format!("{}x{}", x.shape().0, x.shape().1),
        ));
    }
    Ok(Some(Raw { x, var }))
}

pub(crate) fn read_obsm(store: &dyn Store, n_obs: usize) -> Result<BTreeMap<String, Array2<f32>>> {
    let mut out = BTreeMap::new();
    if store.node("obsm")? != Some(NodeKind::Group) {
        return Ok(out);
    }
    for k in store.children("obsm")? {
        let key = join("obsm", &k);
        if !readable_matrix(store, &key)? {
            continue;
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
                tracing::warn!(
                    "{}: skipping '{key}' (encoding {:?} in uns is not read)",
                    store.file(),
                    enc_type(&a)
                );
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
                other if other.is_integer() => {
                    let v = other.into_i64().unwrap_or_default();
                    if scalar && v.len() == 1 {
                        UnsValue::Integer(v[0])
                    } else {
                        UnsValue::Integers(v)
                    }
                }
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

/// Names the counts sources a file without X has, for [`Error::MissingX`].
pub(crate) fn missing_x(store: &dyn Store) -> Result<Error> {
    let mut sources = vec![];
    if store.node("layers")? == Some(NodeKind::Group) {
        sources.extend(store.children("layers")?);
    }
    if store.node("raw/X")?.is_some() || store.node("raw.X")?.is_some() {
        sources.push("raw".into());
    }
    let hint = if sources.is_empty() {
        "it has no layers and no raw/ either, so only inspect, eval and annotate work on it".into()
    } else {
        format!(
            "name them with --counts-layer (data.counts_layer in a config): one of [{}]",
            sources.join(", ")
        )
    };
    Ok(Error::MissingX {
        file: store.file().to_string(),
        hint,
    })
}

/// Reads every supported element of an AnnData store, with the count source `counts` as `X`
/// (see [`AnnData::with_counts_as_x`]); a file without X needs a layer or `raw` there.
/// Reads only what a model needs: `obs`, `var`, `obsm`, `uns` and the one count matrix that
/// `counts` names, moved into `X` (no other layers, no `obsp`, `raw` only as the source).
/// Training a million cells must not also hold the file's other copies of the matrix.
pub(crate) fn read_anndata_source(store: &dyn Store, counts: &CountsSource) -> Result<AnnData> {
    let layer = match counts {
        CountsSource::Layer(l) if store.node(&join("layers", l))?.is_some() => l,
        // a missing layer: the whole read reports it with the layers the file has
        CountsSource::Layer(_) => return read_anndata(store, counts),
        CountsSource::X | CountsSource::Raw => "",
    };
    if store.node("")?.is_none() {
        return Err(fmt_err(store, "/", "not an AnnData store"));
    }
    let obs = read_dataframe(store, "obs")?;
    let mut var = read_dataframe(store, "var")?;
    let (n, g) = (obs.n_rows(), var.n_rows());
    let key = match counts {
        CountsSource::X => "X".to_string(),
        CountsSource::Layer(_) => join("layers", layer),
        CountsSource::Raw => String::new(),
    };
    let x = if key.is_empty() {
        let Some(raw) = read_raw(store, n)? else {
            return read_anndata(store, counts);
        };
        var = raw.var;
        raw.x
    } else {
        if store.node(&key)?.is_none() {
            return Err(missing_x(store)?);
        }
        let x = read_matrix(store, &key)?;
        if x.shape() != (n, g) {
            return Err(Error::shape(
                format!("{}: {key} shape vs obs/var", store.file()),
                format!("{n}x{g}"),
                format!("{}x{}", x.shape().0, x.shape().1),
            ));
        }
        x
    };
    let ad = AnnData {
        x,
        obs,
        var,
        obsm: read_obsm(store, n)?,
        layers: Default::default(),
        obsp: Default::default(),
        raw: None,
        uns: read_uns(store)?,
    };
    ad.validate()?;
    Ok(ad)
}

pub(crate) fn read_anndata(store: &dyn Store, counts: &CountsSource) -> Result<AnnData> {
    if store.node("")?.is_none() {
        return Err(fmt_err(store, "/", "not an AnnData store"));
    }
    let obs = read_dataframe(store, "obs")?;
    let var = read_dataframe(store, "var")?;
    let (n, g) = (obs.n_rows(), var.n_rows());
    let x = match store.node("X")? {
        Some(_) => {
            let x = read_matrix(store, "X")?;
            if x.shape() != (n, g) {
                return Err(Error::shape(
                    format!("{}: X shape vs obs/var", store.file()),
                    format!("{n}x{g}"),
                    format!("{}x{}", x.shape().0, x.shape().1),
                ));
            }
            Some(x)
        }
        None if *counts == CountsSource::X => return Err(missing_x(store)?),
        None => None,
    };
    let obsm = read_obsm(store, n)?;
    let layers = read_matrix_map(store, "layers", (n, g))?;
    let obsp = read_matrix_map(store, "obsp", (n, n))?;
    let raw = read_raw(store, n)?;
    let uns = read_uns(store)?;
    let ad = AnnData {
        // no X: the requested source replaces it just below (the placeholder is never seen)
        x: x.unwrap_or_else(|| Matrix::Csr(CsrMatrix::zeros(n, g))),
        obs,
        var,
        obsm,
        layers,
        obsp,
        raw,
        uns,
    };
    ad.validate()?;
    ad.with_counts_as_x(counts)
}
