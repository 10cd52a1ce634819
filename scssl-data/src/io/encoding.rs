//! The AnnData encoding layer over a [`Store`]: which groups, arrays and attributes make up
//! each element, following anndata's on-disk specification.

use std::collections::BTreeMap;
use std::ops::Range;

use ndarray::Array2;
use serde_json::{Map, Value, json};

use super::store::{Data, DataRef, NodeKind, Store, join};
use crate::anndata::{AnnData, UnsValue};
use crate::error::{Error, Result};
use crate::frame::{Column, DataFrame};
use crate::matrix::{CsrMatrix, Matrix};

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

fn read_obsm(store: &dyn Store, n_obs: usize) -> Result<BTreeMap<String, Array2<f32>>> {
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
    let mut uns = BTreeMap::new();
    if store.node("uns")? == Some(NodeKind::Group) {
        for k in store.children("uns")? {
            if let Some(v) = read_uns_value(store, &join("uns", &k))? {
                uns.insert(k, v);
            }
        }
    }
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

// ---------------------------------------------------------------- writing

fn array_attrs() -> Map<String, Value> {
    attrs(&[
        ("encoding-type", json!("array")),
        ("encoding-version", json!("0.2.0")),
    ])
}

fn string_array_attrs() -> Map<String, Value> {
    attrs(&[
        ("encoding-type", json!("string-array")),
        ("encoding-version", json!("0.2.0")),
    ])
}

fn dict_attrs() -> Map<String, Value> {
    attrs(&[
        ("encoding-type", json!("dict")),
        ("encoding-version", json!("0.1.0")),
    ])
}

pub(crate) fn write_matrix(store: &dyn Store, key: &str, m: &Matrix) -> Result<()> {
    match m {
        Matrix::Dense(a) => {
            let a = a.as_standard_layout();
            let slice = a.as_slice().unwrap_or(&[]);
            store.write(
                key,
                DataRef::F32(slice),
                &[a.nrows(), a.ncols()],
                &array_attrs(),
            )
        }
        Matrix::Csr(c) => {
            store.create_group(
                key,
                &attrs(&[
                    ("encoding-type", json!("csr_matrix")),
                    ("encoding-version", json!("0.1.0")),
                    ("shape", json!([c.n_rows(), c.n_cols()])),
                ]),
            )?;
            store.write(
                &join(key, "data"),
                DataRef::F32(c.data()),
                &[c.nnz()],
                &array_attrs(),
            )?;
            let idx: Vec<i32> = c.indices().iter().map(|&x| x as i32).collect();
            store.write(
                &join(key, "indices"),
                DataRef::I32(&idx),
                &[idx.len()],
                &array_attrs(),
            )?;
            let ptr: Vec<i64> = c.indptr().iter().map(|&x| x as i64).collect();
            store.write(
                &join(key, "indptr"),
                DataRef::I64(&ptr),
                &[ptr.len()],
                &array_attrs(),
            )
        }
    }
}

fn write_column(store: &dyn Store, key: &str, col: &Column) -> Result<()> {
    let n = col.len();
    match col {
        Column::Categorical {
            codes,
            categories,
            ordered,
        } => {
            store.create_group(
                key,
                &attrs(&[
                    ("encoding-type", json!("categorical")),
                    ("encoding-version", json!("0.2.0")),
                    ("ordered", json!(ordered)),
                ]),
            )?;
            // pandas picks the smallest signed integer type that holds the codes
            if categories.len() < 128 {
                let c: Vec<i8> = codes.iter().map(|&x| x as i8).collect();
                store.write(&join(key, "codes"), DataRef::I8(&c), &[n], &array_attrs())?;
            } else {
                store.write(
                    &join(key, "codes"),
                    DataRef::I32(codes),
                    &[n],
                    &array_attrs(),
                )?;
            }
            store.write(
                &join(key, "categories"),
                DataRef::Str(categories),
                &[categories.len()],
                &string_array_attrs(),
            )
        }
        Column::String(v) => {
            if v.iter().all(|s| s.is_some()) {
                let s: Vec<String> = v.iter().map(|s| s.clone().unwrap_or_default()).collect();
                store.write(key, DataRef::Str(&s), &[n], &string_array_attrs())
            } else {
                store.create_group(
                    key,
                    &attrs(&[
                        ("encoding-type", json!("nullable-string-array")),
                        ("encoding-version", json!("0.1.0")),
                    ]),
                )?;
                let s: Vec<String> = v.iter().map(|s| s.clone().unwrap_or_default()).collect();
                let m: Vec<bool> = v.iter().map(|s| s.is_none()).collect();
                store.write(
                    &join(key, "values"),
                    DataRef::Str(&s),
                    &[n],
                    &string_array_attrs(),
                )?;
                store.write(&join(key, "mask"), DataRef::Bool(&m), &[n], &array_attrs())
            }
        }
        Column::Float(v) => store.write(key, DataRef::F64(v), &[n], &array_attrs()),
        Column::Int { values, mask: None } => {
            store.write(key, DataRef::I64(values), &[n], &array_attrs())
        }
        Column::Bool { values, mask: None } => {
            store.write(key, DataRef::Bool(values), &[n], &array_attrs())
        }
        Column::Int {
            values,
            mask: Some(m),
        } => write_nullable(store, key, "nullable-integer", DataRef::I64(values), m),
        Column::Bool {
            values,
            mask: Some(m),
        } => write_nullable(store, key, "nullable-boolean", DataRef::Bool(values), m),
    }
}

/// A nullable column: a group holding `values` and a boolean `mask` (true = missing).
fn write_nullable(
    store: &dyn Store,
    key: &str,
    encoding: &str,
    values: DataRef<'_>,
    mask: &[bool],
) -> Result<()> {
    store.create_group(
        key,
        &attrs(&[
            ("encoding-type", json!(encoding)),
            ("encoding-version", json!("0.1.0")),
        ]),
    )?;
    store.write(&join(key, "values"), values, &[mask.len()], &array_attrs())?;
    store.write(
        &join(key, "mask"),
        DataRef::Bool(mask),
        &[mask.len()],
        &array_attrs(),
    )
}

pub(crate) fn write_dataframe(store: &dyn Store, key: &str, df: &DataFrame) -> Result<()> {
    let index_name = if df.index_name.is_empty() {
        "_index"
    } else {
        df.index_name.as_str()
    };
    let order: Vec<Value> = df.columns.iter().map(|(k, _)| json!(k)).collect();
    store.create_group(
        key,
        &attrs(&[
            ("encoding-type", json!("dataframe")),
            ("encoding-version", json!("0.2.0")),
            ("_index", json!(index_name)),
            ("column-order", Value::Array(order)),
        ]),
    )?;
    store.write(
        &join(key, index_name),
        DataRef::Str(&df.index),
        &[df.index.len()],
        &string_array_attrs(),
    )?;
    for (k, c) in &df.columns {
        if k == index_name {
            return Err(fmt_err(
                store,
                &join(key, k),
                "a column may not share the index's name",
            ));
        }
        write_column(store, &join(key, k), c)?;
    }
    Ok(())
}

fn write_uns_value(store: &dyn Store, key: &str, v: &UnsValue) -> Result<()> {
    match v {
        UnsValue::String(s) => store.write(
            key,
            DataRef::Str(std::slice::from_ref(s)),
            &[],
            &attrs(&[
                ("encoding-type", json!("string")),
                ("encoding-version", json!("0.2.0")),
            ]),
        ),
        UnsValue::Strings(s) => {
            store.write(key, DataRef::Str(s), &[s.len()], &string_array_attrs())
        }
        UnsValue::Number(x) => store.write(
            key,
            DataRef::F64(std::slice::from_ref(x)),
            &[],
            &attrs(&[
                ("encoding-type", json!("numeric-scalar")),
                ("encoding-version", json!("0.2.0")),
            ]),
        ),
        UnsValue::Bool(b) => store.write(
            key,
            DataRef::Bool(std::slice::from_ref(b)),
            &[],
            &attrs(&[
                ("encoding-type", json!("numeric-scalar")),
                ("encoding-version", json!("0.2.0")),
            ]),
        ),
        UnsValue::Numbers(x) => store.write(key, DataRef::F64(x), &[x.len()], &array_attrs()),
        UnsValue::Dict(m) => {
            store.create_group(key, &dict_attrs())?;
            for (k, v) in m {
                write_uns_value(store, &join(key, k), v)?;
            }
            Ok(())
        }
    }
}

/// Writes a complete AnnData into an empty store.
pub(crate) fn write_anndata(store: &dyn Store, ad: &AnnData) -> Result<()> {
    let root = attrs(&[
        ("encoding-type", json!("anndata")),
        ("encoding-version", json!("0.1.0")),
    ]);
    store.create_group("", &root)?;
    write_matrix(store, "X", &ad.x)?;
    write_dataframe(store, "obs", &ad.obs)?;
    write_dataframe(store, "var", &ad.var)?;
    store.create_group("obsm", &dict_attrs())?;
    for (k, a) in &ad.obsm {
        write_matrix(store, &join("obsm", k), &Matrix::Dense(a.clone()))?;
    }
    store.create_group("layers", &dict_attrs())?;
    for (k, m) in &ad.layers {
        write_matrix(store, &join("layers", k), m)?;
    }
    for g in ["varm", "obsp", "varp"] {
        store.create_group(g, &dict_attrs())?;
    }
    store.create_group("uns", &dict_attrs())?;
    for (k, v) in &ad.uns {
        write_uns_value(store, &join("uns", k), v)?;
    }
    Ok(())
}

/// Adds or replaces `obsm/<key>` in an existing AnnData store, checking the row count.
#[cfg_attr(not(any(feature = "h5ad", feature = "zarr")), allow(dead_code))]
pub(crate) fn write_obsm_entry(store: &dyn Store, key: &str, value: &Array2<f32>) -> Result<()> {
    let obs_a = store.attrs("obs")?;
    let index_name = obs_a
        .get("_index")
        .and_then(|v| v.as_str())
        .unwrap_or("_index")
        .to_string();
    let n_obs = store
        .shape(&join("obs", &index_name))?
        .first()
        .copied()
        .unwrap_or(0);
    if value.nrows() != n_obs {
        return Err(Error::shape(
            format!("{}: obsm['{key}'] rows", store.file()),
            n_obs,
            value.nrows(),
        ));
    }
    if store.node("obsm")?.is_none() {
        store.create_group("obsm", &dict_attrs())?;
    }
    let path = join("obsm", key);
    if store.node(&path)?.is_some() {
        store.remove(&path)?;
    }
    write_matrix(store, &path, &Matrix::Dense(value.clone()))
}

// ---------------------------------------------------------------- backed mode

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
    Csr { indptr: Vec<usize> },
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
            None => return Err(fmt_err(store.as_ref(), "X", "the file has no X element")),
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
        let mut uns = BTreeMap::new();
        if store.node("uns")? == Some(NodeKind::Group) {
            for k in store.children("uns")? {
                if let Some(v) = read_uns_value(store.as_ref(), &join("uns", &k))? {
                    uns.insert(k, v);
                }
            }
        }
        Ok(Self {
            store,
            obs,
            var,
            obsm,
            uns,
            layout,
        })
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

// ---------------------------------------------------------------- summaries

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
    /// `X`.
    pub x: MatrixInfo,
    /// obs columns: name, kind, number of categories / distinct values, and the most frequent values.
    pub obs: Vec<ColumnSummary>,
    /// var columns.
    pub var: Vec<ColumnSummary>,
    /// obsm entries and their shapes.
    pub obsm: Vec<(String, Vec<usize>)>,
    /// layers and their storage.
    pub layers: Vec<(String, MatrixInfo)>,
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

pub(crate) fn summarize(store: &dyn Store) -> Result<FileSummary> {
    let obs = read_dataframe(store, "obs")?;
    let var = read_dataframe(store, "var")?;
    let x = matrix_info(store, "X")?;
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
    let mut layers = vec![];
    if store.node("layers")? == Some(NodeKind::Group) {
        for k in store.children("layers")? {
            let info = matrix_info(store, &join("layers", &k))?;
            layers.push((k, info));
        }
    }
    let uns = if store.node("uns")? == Some(NodeKind::Group) {
        store.children("uns")?
    } else {
        vec![]
    };
    Ok(FileSummary {
        file: store.file().to_string(),
        x,
        obs: column_summaries(&obs),
        var: column_summaries(&var),
        obsm,
        layers,
        uns,
    })
}
