//! Writing AnnData elements to a store (anndata's on-disk specification, encoding versions as
//! anndata 0.10–0.13 write them).

use ndarray::Array2;
use serde_json::{Map, Value, json};

use super::{attrs, fmt_err};
use crate::anndata::{AnnData, UnsValue};
use crate::error::{Error, Result};
use crate::frame::{CategoryKind, Column, DataFrame};
use crate::io::store::{DataRef, Store, join};
use crate::matrix::Matrix;

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

/// The attributes of a `dict` group (`layers`, `obsm`, …).
pub(crate) fn dict_attrs() -> Map<String, Value> {
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

fn parse_all<T: std::str::FromStr>(text: &[String]) -> Option<Vec<T>> {
    text.iter().map(|t| t.parse().ok()).collect()
}

fn write_column(store: &dyn Store, key: &str, col: &Column) -> Result<()> {
    let n = col.len();
    match col {
        Column::Categorical {
            codes,
            categories,
            ordered,
            category_kind,
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
            let cat_key = join(key, "categories");
            let shape = [categories.len()];
            // numeric categories go back as numbers; text that no longer parses (an edited
            // column) is written as strings
            match category_kind {
                CategoryKind::Integer => {
                    if let Some(v) = parse_all::<i64>(categories) {
                        return store.write(&cat_key, DataRef::I64(&v), &shape, &array_attrs());
                    }
                }
                CategoryKind::Float => {
                    if let Some(v) = parse_all::<f64>(categories) {
                        return store.write(&cat_key, DataRef::F64(&v), &shape, &array_attrs());
                    }
                }
                CategoryKind::Text => {}
            }
            store.write(
                &cat_key,
                DataRef::Str(categories),
                &shape,
                &string_array_attrs(),
            )
        }
        Column::String(v) => {
            if v.iter().all(|s| s.is_some()) {
                let s: Vec<String> = v.iter().map(|s| s.clone().unwrap_or_default()).collect();
                store.write(key, DataRef::Str(&s), &[n], &string_array_attrs())
            } else {
                // Missing values: written as a categorical with code −1 where missing, as
                // anndata itself does by default (`convert_strings_to_categoricals`), because
                // `nullable-string-array` is unreadable before anndata 0.11.
                let mut categories: Vec<String> = v.iter().flatten().cloned().collect();
                categories.sort();
                categories.dedup();
                let codes: Vec<i32> = v
                    .iter()
                    .map(|s| match s {
                        Some(s) => categories.binary_search(s).map_or(-1, |p| p as i32),
                        None => -1,
                    })
                    .collect();
                write_column(
                    store,
                    key,
                    &Column::Categorical {
                        codes,
                        categories,
                        ordered: false,
                        category_kind: CategoryKind::Text,
                    },
                )
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

fn numeric_scalar_attrs() -> Map<String, Value> {
    attrs(&[
        ("encoding-type", json!("numeric-scalar")),
        ("encoding-version", json!("0.2.0")),
    ])
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
            &numeric_scalar_attrs(),
        ),
        UnsValue::Integer(x) => store.write(
            key,
            DataRef::I64(std::slice::from_ref(x)),
            &[],
            &numeric_scalar_attrs(),
        ),
        UnsValue::Bool(b) => store.write(
            key,
            DataRef::Bool(std::slice::from_ref(b)),
            &[],
            &numeric_scalar_attrs(),
        ),
        UnsValue::Numbers(x) => store.write(key, DataRef::F64(x), &[x.len()], &array_attrs()),
        UnsValue::Integers(x) => store.write(key, DataRef::I64(x), &[x.len()], &array_attrs()),
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
    write_root(store)?;
    write_matrix(store, "X", &ad.x)?;
    store.create_group("layers", &dict_attrs())?;
    write_annotations(store, ad, &[])
}

/// The root group of an AnnData store.
pub(crate) fn write_root(store: &dyn Store) -> Result<()> {
    let root = attrs(&[
        ("encoding-type", json!("anndata")),
        ("encoding-version", json!("0.1.0")),
    ]);
    store.create_group("", &root)
}

/// Starts a CSR matrix whose rows are streamed in with [`append_csr_rows`]: its group and
/// three appendable arrays, `indptr` holding its leading 0.
pub(crate) fn begin_csr(store: &dyn Store, key: &str, shape: (usize, usize)) -> Result<()> {
    store.create_group(
        key,
        &attrs(&[
            ("encoding-type", json!("csr_matrix")),
            ("encoding-version", json!("0.1.0")),
            ("shape", json!([shape.0, shape.1])),
        ]),
    )?;
    store.create_appendable(&join(key, "data"), DataRef::F32(&[]), &array_attrs())?;
    store.create_appendable(&join(key, "indices"), DataRef::I32(&[]), &array_attrs())?;
    store.create_appendable(&join(key, "indptr"), DataRef::I64(&[]), &array_attrs())?;
    store.append(&join(key, "indptr"), DataRef::I64(&[0]))
}

/// Appends `rows` to a CSR matrix begun with [`begin_csr`] that holds `nnz_before` values.
pub(crate) fn append_csr_rows(
    store: &dyn Store,
    key: &str,
    rows: &crate::matrix::CsrMatrix,
    nnz_before: usize,
) -> Result<()> {
    store.append(&join(key, "data"), DataRef::F32(rows.data()))?;
    let idx: Vec<i32> = rows.indices().iter().map(|&x| x as i32).collect();
    store.append(&join(key, "indices"), DataRef::I32(&idx))?;
    let ptr: Vec<i64> = rows.indptr()[1..]
        .iter()
        .map(|&x| (x + nnz_before) as i64)
        .collect();
    store.append(&join(key, "indptr"), DataRef::I64(&ptr))
}

/// Ends a CSR matrix begun with [`begin_csr`].
pub(crate) fn end_csr(store: &dyn Store, key: &str) -> Result<()> {
    for part in ["data", "indices", "indptr"] {
        store.end_append(&join(key, part))?;
    }
    Ok(())
}

/// Everything but `X`: `obs`, `var`, `obsm`, the layers not named in `streamed_layers`
/// (the `layers` group must exist), `obsp`, `varm`, `varp`, `raw` and `uns`.
pub(crate) fn write_annotations(
    store: &dyn Store,
    ad: &AnnData,
    streamed_layers: &[String],
) -> Result<()> {
    write_dataframe(store, "obs", &ad.obs)?;
    write_dataframe(store, "var", &ad.var)?;
    store.create_group("obsm", &dict_attrs())?;
    for (k, a) in &ad.obsm {
        write_matrix(store, &join("obsm", k), &Matrix::Dense(a.clone()))?;
    }
    for (k, m) in &ad.layers {
        if !streamed_layers.contains(k) {
            write_matrix(store, &join("layers", k), m)?;
        }
    }
    store.create_group("obsp", &dict_attrs())?;
    for (k, m) in &ad.obsp {
        write_matrix(store, &join("obsp", k), m)?;
    }
    for g in ["varm", "varp"] {
        store.create_group(g, &dict_attrs())?;
    }
    if let Some(raw) = &ad.raw {
        store.create_group(
            "raw",
            &attrs(&[
                ("encoding-type", json!("raw")),
                ("encoding-version", json!("0.1.0")),
            ]),
        )?;
        write_matrix(store, "raw/X", &raw.x)?;
        write_dataframe(store, "raw/var", &raw.var)?;
        store.create_group("raw/varm", &dict_attrs())?;
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
    // the index may be a string array or a nullable-string-array group: read it as anndata does
    let n_obs = super::read::read_dataframe(store, "obs")?.n_rows();
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
