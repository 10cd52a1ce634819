//! Files written by Python anndata (conformance/fixtures, made by
//! conformance/make_data_fixtures.py) read correctly, and our writes read back identically.

mod common;

use common::{fixtures, json};
use scssl_data::frame::Column;
use scssl_data::{AnnData, Matrix, UnsValue, io};

fn check_types_fixture(ad: &AnnData) {
    let g = json("anndata_types.json");
    let shape: Vec<usize> = serde_json::from_value(g["shape"].clone()).unwrap();
    assert_eq!(ad.x.shape(), (shape[0], shape[1]));
    let xd: Vec<Vec<f32>> = serde_json::from_value(g["x_dense"].clone()).unwrap();
    let d = ad.x.to_dense();
    for (i, row) in xd.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            assert_eq!(d[[i, j]], *v, "X[{i},{j}]");
        }
    }
    let obs_names: Vec<String> = serde_json::from_value(g["obs_names"].clone()).unwrap();
    assert_eq!(ad.obs.index, obs_names);
    let var_names: Vec<String> = serde_json::from_value(g["var_names"].clone()).unwrap();
    assert_eq!(ad.var.index, var_names);
    let cols: Vec<String> = serde_json::from_value(g["obs_columns"].clone()).unwrap();
    assert_eq!(
        ad.obs
            .columns
            .iter()
            .map(|c| c.0.clone())
            .collect::<Vec<_>>(),
        cols
    );
    match ad.obs.get("batch").unwrap() {
        Column::Categorical {
            codes,
            categories,
            ordered,
            category_kind,
        } => {
            assert_eq!(*category_kind, scssl_data::CategoryKind::Text);
            let want: Vec<i32> = serde_json::from_value(g["batch_codes"].clone()).unwrap();
            assert_eq!(codes, &want);
            let cats: Vec<String> = serde_json::from_value(g["batch_categories"].clone()).unwrap();
            assert_eq!(categories, &cats);
            assert!(!ordered);
        }
        other => panic!("batch should be categorical, got {other:?}"),
    }
    match ad.obs.get("cell_type").unwrap() {
        Column::Categorical {
            categories,
            ordered,
            ..
        } => {
            let cats: Vec<String> =
                serde_json::from_value(g["cell_type_categories"].clone()).unwrap();
            assert_eq!(categories, &cats);
            assert!(ordered);
        }
        other => panic!("cell_type should be categorical, got {other:?}"),
    }
    let score: Vec<f64> = serde_json::from_value(g["score"].clone()).unwrap();
    assert_eq!(ad.obs.get("score"), Some(&Column::Float(score)));
    assert!(matches!(ad.obs.get("label_str"), Some(Column::String(_))));
    assert!(matches!(
        ad.obs.get("count"),
        Some(Column::Int { mask: None, .. })
    ));
    assert!(matches!(
        ad.obs.get("flag"),
        Some(Column::Bool { mask: None, .. })
    ));
    let m: Vec<bool> = serde_json::from_value(g["nullable_int_mask"].clone()).unwrap();
    assert!(
        matches!(ad.obs.get("nullable_int"), Some(Column::Int { mask: Some(mm), .. }) if *mm == m)
    );
    let m: Vec<bool> = serde_json::from_value(g["nullable_bool_mask"].clone()).unwrap();
    assert!(
        matches!(ad.obs.get("nullable_bool"), Some(Column::Bool { mask: Some(mm), .. }) if *mm == m)
    );
    let pcs: Vec<Vec<f32>> = serde_json::from_value(g["obsm_X_pca"].clone()).unwrap();
    let got = ad.obsm_get("X_pca").unwrap();
    for (i, r) in pcs.iter().enumerate() {
        for (j, v) in r.iter().enumerate() {
            assert_eq!(got[[i, j]], *v);
        }
    }
    let names: Vec<String> = serde_json::from_value(g["protein_names"].clone()).unwrap();
    assert_eq!(ad.uns.get("protein_names"), Some(&UnsValue::Strings(names)));
    assert_eq!(
        ad.uns.get("source"),
        Some(&UnsValue::String(g["uns_source"].as_str().unwrap().into()))
    );
    assert_eq!(ad.layers["counts"].to_dense(), d);
    assert_eq!(ad.layers["dense"].to_dense(), d);
}

#[test]
fn reads_python_h5ad() {
    let ad = io::read(fixtures().join("anndata_types.h5ad")).unwrap();
    check_types_fixture(&ad);
}

#[test]
fn reads_python_zarr() {
    let ad = io::read(fixtures().join("anndata_types.zarr")).unwrap();
    check_types_fixture(&ad);
}

#[test]
fn reads_python_zarr_v3() {
    let ad = io::read(fixtures().join("anndata_types_v3.zarr")).unwrap();
    check_types_fixture(&ad);
}

#[test]
fn adds_obsm_to_a_zarr_v3_store() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v3.zarr");
    copy_dir(&fixtures().join("anndata_types_v3.zarr"), &p);
    let emb = ndarray::Array2::from_shape_fn((12, 2), |(i, j)| (i + j) as f32);
    io::write_obsm(&p, "X_v3", &emb).unwrap();
    let back = io::read(&p).unwrap();
    assert_eq!(back.obsm_get("X_v3").unwrap(), &emb);
    check_types_fixture(&back);
    // stale consolidated metadata is dropped so that zarr reads the new node
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("zarr.json")).unwrap()).unwrap();
    assert!(root["consolidated_metadata"].is_null());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn reads_csc_and_integer_dense_x() {
    let csr = io::read(fixtures().join("anndata_types.h5ad")).unwrap();
    let csc = io::read(fixtures().join("anndata_csc.h5ad")).unwrap();
    assert!(matches!(csc.x, Matrix::Csr(_)), "CSC is converted to CSR");
    assert_eq!(csc.x.to_dense(), csr.x.to_dense());
    let dense = io::read(fixtures().join("anndata_dense_int.h5ad")).unwrap();
    assert!(matches!(dense.x, Matrix::Dense(_)));
    assert_eq!(dense.x.to_dense(), csr.x.to_dense());
}

#[test]
fn round_trips_through_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let orig = io::read(fixtures().join("anndata_types.h5ad")).unwrap();
    for name in ["rt.h5ad", "rt.zarr"] {
        let p = dir.path().join(name);
        io::write(&orig, &p).unwrap();
        let back = io::read(&p).unwrap();
        assert_eq!(back, orig, "{name} round trip");
        // writing again over an existing output replaces it
        io::write(&back, &p).unwrap();
        assert_eq!(io::read(&p).unwrap(), orig);
    }
}

#[test]
fn backed_chunks_equal_the_whole_matrix() {
    for f in [
        "anndata_types.h5ad",
        "anndata_types.zarr",
        "anndata_dense_int.h5ad",
    ] {
        let whole = io::read(fixtures().join(f)).unwrap();
        let b = io::read_backed(fixtures().join(f)).unwrap();
        let parts: Vec<Matrix> = b.chunks(5).map(|c| c.unwrap().1).collect();
        let dense: Vec<ndarray::Array2<f32>> = parts.iter().map(|m| m.to_dense()).collect();
        let views: Vec<_> = dense.iter().map(|a| a.view()).collect();
        let stacked = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
        assert_eq!(stacked, whole.x.to_dense(), "{f}");
    }
    let e = io::read_backed(fixtures().join("anndata_csc.h5ad"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("CSC"), "{e}");
}

#[test]
fn adds_an_obsm_entry_in_place() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["o.h5ad", "o.zarr"] {
        let p = dir.path().join(name);
        let orig = io::read(fixtures().join("anndata_types.h5ad")).unwrap();
        io::write(&orig, &p).unwrap();
        let emb = ndarray::Array2::from_shape_fn((orig.n_obs(), 4), |(i, j)| (i * 10 + j) as f32);
        io::write_obsm(&p, "X_new", &emb).unwrap();
        let back = io::read(&p).unwrap();
        assert_eq!(back.obsm_get("X_new").unwrap(), &emb);
        assert_eq!(back.x, orig.x);
        // replacing works too, and wrong row counts are rejected without touching the file
        io::write_obsm(&p, "X_new", &(emb.clone() * 2.0)).unwrap();
        assert_eq!(
            io::read(&p).unwrap().obsm_get("X_new").unwrap(),
            &(emb * 2.0)
        );
        let bad = ndarray::Array2::<f32>::zeros((orig.n_obs() + 1, 2));
        let e = io::write_obsm(&p, "X_bad", &bad).unwrap_err().to_string();
        assert!(
            e.contains("obsm['X_bad'] rows") && e.contains(&orig.n_obs().to_string()),
            "{e}"
        );
        assert!(!io::read(&p).unwrap().obsm.contains_key("X_bad"));
    }
    // the zarr store's consolidated metadata lists the new entry
    let zm = std::fs::read_to_string(dir.path().join("o.zarr/.zmetadata")).unwrap();
    assert!(zm.contains("obsm/X_new/.zarray"));
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = io::read(dir.path().join("nope.h5ad"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.h5ad"), "{missing}");
    let bytes = std::fs::read(fixtures().join("anndata_types.h5ad")).unwrap();
    let trunc = dir.path().join("trunc.h5ad");
    std::fs::write(&trunc, &bytes[..bytes.len() / 3]).unwrap();
    let e = io::read(&trunc).unwrap_err().to_string();
    assert!(e.contains("trunc.h5ad"), "{e}");
    let e = io::read(dir.path().join("x.csv")).unwrap_err().to_string();
    assert!(e.contains(".h5ad or .zarr"), "{e}");
    let ad = io::read(fixtures().join("anndata_types.h5ad")).unwrap();
    let e = ad.obs_groups("batchh").unwrap_err().to_string();
    assert!(e.contains("available keys") && e.contains("batch"), "{e}");
    // a failed write leaves no output behind
    let mut broken = ad.clone();
    broken
        .obsm
        .insert("bad".into(), ndarray::Array2::zeros((1, 1)));
    let out = dir.path().join("never.h5ad");
    assert!(io::write(&broken, &out).is_err());
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}
