//! Every file of `conformance/fixtures/anndata/` (written by anndata, h5py and zarr-python with
//! `conformance/make_anndata_fixtures.py`) read by scssl and compared, value by value, with what
//! anndata itself reads from it (`<case>.json`).

use std::path::PathBuf;

use scssl_data::io;
use scssl_data::{AnnData, Column, CountsSource, DataFrame, Error, Matrix};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()))
        .join("../conformance/fixtures/anndata")
}

fn golden(case: &str) -> Value {
    let p = dir().join(format!("{case}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn dense_eq(what: &str, m: &Matrix, want: &Value) {
    let want = want.as_array().unwrap();
    let d = m.to_dense();
    assert_eq!(d.nrows(), want.len(), "{what}: rows");
    for (i, row) in want.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(d.ncols(), row.len(), "{what}: columns");
        for (j, v) in row.iter().enumerate() {
            let v = v.as_f64().unwrap();
            let got = f64::from(d[[i, j]]);
            assert!(
                (got - v).abs() <= 1e-6 * v.abs().max(1.0),
                "{what}[{i},{j}]: scssl {got}, anndata {v}"
            );
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn column_eq(what: &str, col: &Column, want: &Value) {
    let kind = want["kind"].as_str().unwrap();
    match (kind, col) {
        (
            "categorical",
            Column::Categorical {
                codes,
                categories,
                ordered,
                ..
            },
        ) => {
            assert_eq!(
                categories,
                &strings(&want["categories"]),
                "{what}: categories"
            );
            let w: Vec<i32> = want["codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_i64().unwrap() as i32)
                .collect();
            assert_eq!(codes, &w, "{what}: codes");
            assert_eq!(
                *ordered,
                want["ordered"].as_bool().unwrap(),
                "{what}: ordered"
            );
        }
        ("string", Column::String(v)) => {
            let w: Vec<Option<String>> = want["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().map(String::from))
                .collect();
            assert_eq!(v, &w, "{what}: values");
        }
        ("float", Column::Float(v)) => {
            let w = want["values"].as_array().unwrap();
            assert_eq!(v.len(), w.len(), "{what}: length");
            for (i, (a, b)) in v.iter().zip(w).enumerate() {
                match b.as_f64() {
                    Some(b) => assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}[{i}]"),
                    None => assert!(a.is_nan(), "{what}[{i}]: expected missing"),
                }
            }
        }
        ("int", Column::Int { values, mask }) => {
            let wm = want["mask"]
                .as_array()
                .map(|m| m.iter().map(|b| b.as_bool().unwrap()).collect::<Vec<_>>());
            assert_eq!(mask, &wm, "{what}: mask");
            for (i, (a, b)) in values
                .iter()
                .zip(want["values"].as_array().unwrap())
                .enumerate()
            {
                if !wm.as_ref().is_some_and(|m| m[i]) {
                    assert_eq!(*a, b.as_i64().unwrap(), "{what}[{i}]");
                }
            }
        }
        ("bool", Column::Bool { values, mask }) => {
            let wm = want["mask"]
                .as_array()
                .map(|m| m.iter().map(|b| b.as_bool().unwrap()).collect::<Vec<_>>());
            assert_eq!(mask, &wm, "{what}: mask");
            for (i, (a, b)) in values
                .iter()
                .zip(want["values"].as_array().unwrap())
                .enumerate()
            {
                if !wm.as_ref().is_some_and(|m| m[i]) {
                    assert_eq!(*a, b.as_bool().unwrap(), "{what}[{i}]");
                }
            }
        }
        (k, c) => panic!("{what}: anndata reads a {k} column, scssl a {}", c.kind()),
    }
}

fn frame_eq(what: &str, df: &DataFrame, want: &Value) {
    let want = want.as_object().unwrap();
    let names: Vec<&str> = df.columns.iter().map(|(k, _)| k.as_str()).collect();
    let wnames: Vec<&str> = want.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort();
    let mut wsorted = wnames.clone();
    wsorted.sort();
    assert_eq!(sorted, wsorted, "{what}: columns");
    for (k, c) in &df.columns {
        column_eq(&format!("{what}['{k}']"), c, &want[k]);
    }
}

/// Compares everything anndata read with what scssl reads (X from `x`: X itself, or a placeholder
/// check when the file has none).
fn anndata_eq(file: &str, ad: &AnnData, g: &Value) {
    assert_eq!(ad.obs.index, strings(&g["obs_names"]), "{file}: obs_names");
    assert_eq!(ad.var.index, strings(&g["var_names"]), "{file}: var_names");
    if !g["x"].is_null() {
        dense_eq(&format!("{file}: X"), &ad.x, &g["x"]);
    }
    frame_eq(&format!("{file}: obs"), &ad.obs, &g["obs"]);
    frame_eq(&format!("{file}: var"), &ad.var, &g["var"]);
    let obsm = g["obsm"].as_object().unwrap();
    let keys: Vec<&String> = ad.obsm.keys().collect();
    let wkeys: Vec<&String> = obsm.keys().collect();
    assert_eq!(
        keys, wkeys,
        "{file}: obsm keys (dataframes in obsm are skipped)"
    );
    for (k, v) in obsm {
        dense_eq(
            &format!("{file}: obsm['{k}']"),
            &Matrix::Dense(ad.obsm[k].clone()),
            v,
        );
    }
    let layers = g["layers"].as_object().unwrap();
    assert_eq!(ad.layers.len(), layers.len(), "{file}: layers");
    for (k, v) in layers {
        dense_eq(&format!("{file}: layers['{k}']"), &ad.layers[k], v);
    }
    match (&ad.raw, g["raw"].is_null()) {
        (None, true) => {}
        (Some(raw), false) => {
            assert_eq!(
                raw.var.index,
                strings(&g["raw"]["var_names"]),
                "{file}: raw/var"
            );
            dense_eq(&format!("{file}: raw/X"), &raw.x, &g["raw"]["x"]);
        }
        (r, _) => panic!("{file}: raw present in scssl: {}", r.is_some()),
    }
    let mut uns: Vec<String> = ad.uns.keys().cloned().collect();
    for s in g["skipped"].as_array().unwrap() {
        if let Some(k) = s.as_str().unwrap().strip_prefix("uns/") {
            uns.push(k.to_string());
        }
    }
    uns.sort();
    assert_eq!(uns, strings(&g["uns_keys"]), "{file}: uns keys (+ skipped)");
}

fn check_case(case: &str, files: &[&str]) {
    let g = golden(case);
    for f in files {
        let p = dir().join(f);
        let ad = io::read(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        anndata_eq(f, &ad, &g);
        // backed mode and the summary read the same annotations
        let b = io::read_backed(&p).unwrap();
        assert_eq!(b.obs, ad.obs, "{f}: backed obs");
        assert!(b.has_x());
        let s = io::summarize(&p).unwrap();
        assert_eq!(
            (s.n_obs, s.n_vars),
            (ad.n_obs(), ad.n_vars()),
            "{f}: summary"
        );
    }
}

#[test]
fn pandas_string_dtype_nullable_string_arrays() {
    check_case(
        "strings_nullable",
        &[
            "strings_nullable.h5ad",
            "strings_nullable.zarr",
            "strings_nullable.v3.zarr",
        ],
    );
}

#[test]
fn every_compression_anndata_writes() {
    check_case(
        "compression",
        &[
            "compression_gzip.h5ad",
            "compression_lzf.h5ad",
            "compression_gzip.zarr",
            "compression_gzip.v3.zarr",
            "compression_zstd.zarr",
            "compression_zstd.v3.zarr",
            "compression_blosc.zarr",
            "compression_blosc.v3.zarr",
        ],
    );
}

#[test]
fn blosc_in_h5ad_reads_like_the_others() {
    // every numeric dataset re-written with hdf5plugin.Blosc(lz4, shuffle), chunked by h5py:
    // the compression case plus obsm['wide'] (zeros, so that Blosc really compresses)
    let mut ad = io::read(dir().join("compression_blosc.h5ad")).unwrap();
    let wide = ad.obsm.remove("wide").unwrap();
    assert_eq!(wide.dim(), (8, 4000));
    assert!(wide.iter().all(|&v| v == 0.0));
    anndata_eq("compression_blosc.h5ad", &ad, &golden("compression"));
    // backed row reads decode the same rows
    let b = io::read_backed(dir().join("compression_blosc.h5ad")).unwrap();
    assert_eq!(
        b.read_rows(2..5).unwrap().to_dense(),
        ad.x.to_dense().slice(ndarray::s![2..5, ..]).to_owned()
    );
}

#[test]
fn raw_layers_obsp_nested_uns_and_skipped_elements() {
    check_case("raw", &["raw.h5ad", "raw.zarr"]);
    let g = golden("raw");
    for f in ["raw.h5ad", "raw.zarr"] {
        let p = dir().join(f);
        let ad = io::read(&p).unwrap();
        assert_eq!(ad.obsp["connectivities"].shape(), (8, 8), "{f}: obsp");
        // integer categories stay integers when written back (anndata reads them as ints)
        assert!(
            matches!(
                ad.obs.get("group_int"),
                Some(Column::Categorical {
                    category_kind: scssl_data::CategoryKind::Integer,
                    ..
                })
            ),
            "{f}: group_int has integer categories"
        );
        assert!(matches!(
            &ad.uns["neighbors"],
            scssl_data::UnsValue::Dict(d) if matches!(&d["params"], scssl_data::UnsValue::Dict(p) if p.contains_key("nested"))
        ));
        // counts from raw/: X becomes raw/X, var raw/var
        let counts = io::read_counts(&p, &CountsSource::Raw).unwrap();
        assert_eq!(counts.var.index, strings(&g["raw"]["var_names"]));
        dense_eq(&format!("{f}: counts from raw"), &counts.x, &g["raw"]["x"]);
        assert_eq!(counts.obs, ad.obs);
        let from_mem = ad
            .counts_only(&CountsSource::from_option(Some("raw")))
            .unwrap();
        assert_eq!(from_mem.x, counts.x);
    }
}

#[test]
fn files_without_x() {
    let g = golden("no_x");
    for f in ["no_x.h5ad", "no_x.zarr"] {
        let p = dir().join(f);
        // the whole-file read says what to do
        match io::read(&p) {
            Err(e @ Error::MissingX { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains("no X") && m.contains("only inspect, eval and annotate"),
                    "{m}"
                );
            }
            other => panic!("{f}: expected MissingX, got {other:?}"),
        }
        // annotations and embeddings are there for eval/annotate
        let b = io::read_backed(&p).unwrap();
        assert!(!b.has_x());
        assert_eq!(b.obs.index, strings(&g["obs_names"]));
        frame_eq(f, &b.obs, &g["obs"]);
        dense_eq(
            &format!("{f}: obsm"),
            &Matrix::Dense(b.obsm["X_scvi"].clone()),
            &g["obsm"]["X_scvi"],
        );
        assert!(matches!(b.read_rows(0..1), Err(Error::MissingX { .. })));
        let s = io::summarize(&p).unwrap();
        assert!(s.x.is_none());
        assert_eq!(s.n_obs, 8);
    }
}

#[test]
fn legacy_anndata_07_categoricals_are_categoricals() {
    check_case(
        "legacy_categorical",
        &["legacy_categorical.h5ad", "legacy_categorical.zarr"],
    );
}

#[test]
fn pre_07_compound_dataframes_are_refused_with_how_to_convert() {
    let g = golden("legacy_compound");
    let e = io::read(dir().join("legacy_compound.h5ad"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(g["expect_error"].as_str().unwrap()), "{e}");
    assert!(e.contains("write_h5ad") && e.contains("'obs'"), "{e}");
}

#[test]
fn what_we_write_reads_back_identically_with_raw_and_obsp() {
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "raw.h5ad",
        "raw.zarr",
        "strings_nullable.h5ad",
        "legacy_categorical.h5ad",
    ] {
        let ad = io::read(dir().join(f)).unwrap();
        for ext in ["h5ad", "zarr"] {
            let out = tmp.path().join(format!("out.{ext}"));
            io::write(&ad, &out).unwrap();
            let back = io::read(&out).unwrap();
            assert_eq!(back.x, ad.x, "{f} → .{ext}: X");
            assert_eq!(
                (&back.obsm, &back.layers, &back.obsp, &back.raw, &back.uns),
                (&ad.obsm, &ad.layers, &ad.obsp, &ad.raw, &ad.uns),
                "{f} → .{ext}"
            );
            for (frame, back_frame, what) in
                [(&ad.obs, &back.obs, "obs"), (&ad.var, &back.var, "var")]
            {
                assert_eq!(back_frame.index, frame.index, "{f} → .{ext}: {what} index");
                for ((name, col), (back_name, back_col)) in
                    frame.columns.iter().zip(&back_frame.columns)
                {
                    assert_eq!(back_name, name, "{f} → .{ext}: {what} columns");
                    match col {
                        // a string column with missing values is written as a categorical
                        // (readable by anndata 0.7–0.10 too); its values are the same
                        Column::String(v) if v.iter().any(Option::is_none) => {
                            assert!(matches!(back_col, Column::Categorical { .. }));
                            let values: Vec<Option<String>> =
                                (0..v.len()).map(|i| back_col.value_string(i)).collect();
                            assert_eq!(&values, v, "{f} → .{ext}: {what}[{name}]");
                        }
                        _ => assert_eq!(back_col, col, "{f} → .{ext}: {what}[{name}]"),
                    }
                }
            }
        }
    }
}
