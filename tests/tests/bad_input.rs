//! Bad input, one test per case: every one gives a typed error that names the file, key, cell
//! or gene (or a documented fallback), never a panic and never a partial output file.

use std::path::{Path, PathBuf};

use scssl_data::AnnData;
use scssl_data::io::store::{DataRef, Store};
use scssl_data::io::{self, h5::H5Store, zarr::ZarrStore};
use scssl_data::sim::{SimConfig, simulate};
use serde_json::{Map, Value, json};

fn small() -> AnnData {
    simulate(&SimConfig {
        n_cells: 60,
        n_genes: 40,
        n_batches: 2,
        n_cell_types: 3,
        seed: 3,
        ..Default::default()
    })
    .unwrap()
}

fn written(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    io::write(&small(), &p).unwrap();
    p
}

fn err_of(p: &Path) -> String {
    match io::read(p) {
        Ok(_) => panic!("{} read without error", p.display()),
        Err(e) => e.to_string(),
    }
}

fn truncated_h5ad(fraction: f64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path(), "a.h5ad");
    let bytes = std::fs::read(&p).unwrap();
    let cut = (bytes.len() as f64 * fraction) as usize;
    std::fs::write(&p, &bytes[..cut]).unwrap();
    let e = err_of(&p);
    assert!(e.contains("a.h5ad"), "{e}");
    e
}

#[test]
fn truncated_h5ad_at_10_percent() {
    truncated_h5ad(0.1);
}

#[test]
fn truncated_h5ad_at_50_percent() {
    truncated_h5ad(0.5);
}

#[test]
fn truncated_h5ad_at_99_percent() {
    truncated_h5ad(0.99);
}

/// Cuts the largest chunk file of a zarr store in half.
fn truncated_zarr_chunk(under: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path(), "a.zarr");
    let chunk = p.join(under).join("0");
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_of(&p);
    assert!(e.contains("a.zarr") && e.contains(under), "{e}");
    e
}

#[test]
fn truncated_zarr_numeric_chunk() {
    truncated_zarr_chunk("X/data");
}

#[test]
fn truncated_zarr_string_chunk() {
    truncated_zarr_chunk("obs/_index");
}

#[test]
fn zarr_without_group_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path(), "a.zarr");
    std::fs::remove_file(p.join(".zgroup")).unwrap();
    assert!(err_of(&p).contains("not a zarr group"));
}

#[test]
fn empty_h5ad_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.h5ad");
    std::fs::write(&p, b"").unwrap();
    assert!(err_of(&p).contains("not a readable HDF5 file"));
}

#[test]
fn text_file_named_h5ad() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.h5ad");
    std::fs::write(&p, "cell,gene\n1,2\n").unwrap();
    assert!(err_of(&p).contains("notes.h5ad"));
}

#[test]
fn unknown_extension() {
    assert!(err_of(Path::new("cells.csv")).contains(".h5ad or .zarr"));
}

#[test]
fn missing_file() {
    let e = err_of(Path::new("/nonexistent/cells.h5ad"));
    assert!(e.contains("/nonexistent/cells.h5ad"), "{e}");
}

/// A hand-built h5ad: `build` writes its elements.
fn crafted(build: impl FnOnce(&H5Store)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crafted.h5ad");
    let s = H5Store::create(&p).unwrap();
    build(&s);
    s.finish().unwrap();
    (dir, p)
}

fn a(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn frame(s: &H5Store, key: &str, names: &[&str]) {
    frame_with(s, key, names, &[]);
}

fn frame_with(s: &H5Store, key: &str, names: &[&str], columns: &[&str]) {
    s.create_group(
        key,
        &a(&[
            ("encoding-type", json!("dataframe")),
            ("encoding-version", json!("0.2.0")),
            ("_index", json!("_index")),
            ("column-order", json!(columns)),
        ]),
    )
    .unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    s.write(
        &format!("{key}/_index"),
        DataRef::Str(&names),
        &[names.len()],
        &Map::new(),
    )
    .unwrap();
}

fn csr(s: &H5Store, shape: [usize; 2], indptr: &[i64], indices: &[i32], data: &[f32]) {
    s.create_group(
        "X",
        &a(&[
            ("encoding-type", json!("csr_matrix")),
            ("encoding-version", json!("0.1.0")),
            ("shape", json!(shape)),
        ]),
    )
    .unwrap();
    s.write(
        "X/indptr",
        DataRef::I64(indptr),
        &[indptr.len()],
        &Map::new(),
    )
    .unwrap();
    s.write(
        "X/indices",
        DataRef::I32(indices),
        &[indices.len()],
        &Map::new(),
    )
    .unwrap();
    s.write("X/data", DataRef::F32(data), &[data.len()], &Map::new())
        .unwrap();
}

fn cells_and_genes(s: &H5Store, n: usize, g: usize) {
    cells_genes_columns(s, n, g, &[]);
}

fn cells_genes_columns(s: &H5Store, n: usize, g: usize, obs_columns: &[&str]) {
    let cells: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let genes: Vec<String> = (0..g).map(|i| format!("g{i}")).collect();
    let c: Vec<&str> = cells.iter().map(String::as_str).collect();
    let gg: Vec<&str> = genes.iter().map(String::as_str).collect();
    frame_with(s, "obs", &c, obs_columns);
    frame(s, "var", &gg);
}

#[test]
fn x_shape_disagrees_with_obs_and_var() {
    let (_d, p) = crafted(|s| {
        cells_and_genes(s, 4, 3);
        s.write("X", DataRef::F32(&[0.0; 15]), &[5, 3], &Map::new())
            .unwrap();
    });
    let e = err_of(&p);
    assert!(
        e.contains("X shape vs obs/var") && e.contains("4x3") && e.contains("5x3"),
        "{e}"
    );
}

#[test]
fn obsm_with_the_wrong_number_of_rows() {
    let (_d, p) = crafted(|s| {
        cells_and_genes(s, 4, 3);
        s.write("X", DataRef::F32(&[1.0; 12]), &[4, 3], &Map::new())
            .unwrap();
        s.create_group("obsm", &Map::new()).unwrap();
        s.write("obsm/X_pca", DataRef::F32(&[0.0; 10]), &[5, 2], &Map::new())
            .unwrap();
    });
    let e = err_of(&p);
    assert!(
        e.contains("obsm['X_pca'] rows") && e.contains("expected 4"),
        "{e}"
    );
}

#[test]
fn csr_indptr_not_monotone() {
    let (_d, p) = crafted(|s| {
        cells_and_genes(s, 3, 3);
        csr(s, [3, 3], &[0, 2, 1, 3], &[0, 1, 2], &[1.0, 2.0, 3.0]);
    });
    let e = err_of(&p);
    assert!(e.contains("'X'") && e.contains("invalid csr"), "{e}");
}

#[test]
fn csr_indices_out_of_range() {
    let (_d, p) = crafted(|s| {
        cells_and_genes(s, 3, 3);
        csr(s, [3, 3], &[0, 1, 2, 3], &[0, 7, 2], &[1.0, 2.0, 3.0]);
    });
    let e = err_of(&p);
    assert!(e.contains("'X'") && e.contains("invalid csr"), "{e}");
}

#[test]
fn declared_shape_of_a_trillion_cells_fails_without_allocating() {
    // sparse: the shape attribute claims 10^12 rows, indptr has 4 entries
    let (_d, p) = crafted(|s| {
        cells_and_genes(s, 3, 3);
        csr(
            s,
            [1_000_000_000_000, 3],
            &[0, 1, 2, 3],
            &[0, 1, 2],
            &[1.0; 3],
        );
    });
    let e = err_of(&p);
    assert!(e.contains("'X'"), "{e}");
    // dense zarr array declaring 10^12 × 10 float32 with no chunks written
    let dir = tempfile::tempdir().unwrap();
    let z = written(dir.path(), "big.zarr");
    std::fs::remove_dir_all(z.join("X")).unwrap();
    std::fs::create_dir(z.join("X")).unwrap();
    std::fs::write(
        z.join("X/.zarray"),
        r#"{"zarr_format":2,"shape":[1000000000000,10],"chunks":[1000,10],"dtype":"<f4","compressor":null,"fill_value":0,"order":"C","filters":null}"#,
    )
    .unwrap();
    std::fs::write(
        z.join("X/.zattrs"),
        r#"{"encoding-type":"array","encoding-version":"0.2.0"}"#,
    )
    .unwrap();
    let e = err_of(&z);
    assert!(
        e.contains("more than this machine's memory") && e.contains("'X'"),
        "{e}"
    );
}

#[test]
fn category_code_out_of_range() {
    let (_d, p) = crafted(|s| {
        cells_genes_columns(s, 2, 1, &["batch"]);
        s.write("X", DataRef::F32(&[1.0, 2.0]), &[2, 1], &Map::new())
            .unwrap();
        s.create_group(
            "obs/batch",
            &a(&[
                ("encoding-type", json!("categorical")),
                ("ordered", json!(false)),
            ]),
        )
        .unwrap();
        s.write("obs/batch/codes", DataRef::I8(&[0, 5]), &[2], &Map::new())
            .unwrap();
        s.write(
            "obs/batch/categories",
            DataRef::Str(&["a".to_string()]),
            &[1],
            &Map::new(),
        )
        .unwrap();
    });
    let e = err_of(&p);
    assert!(e.contains("obs/batch") && e.contains("code 5"), "{e}");
}

#[test]
fn obs_column_with_the_wrong_length() {
    let (_d, p) = crafted(|s| {
        cells_genes_columns(s, 3, 1, &["score"]);
        s.write("X", DataRef::F32(&[1.0; 3]), &[3, 1], &Map::new())
            .unwrap();
        s.write("obs/score", DataRef::F64(&[1.0, 2.0]), &[2], &Map::new())
            .unwrap();
    });
    let e = err_of(&p);
    assert!(e.contains("obs/score") && e.contains("2 rows"), "{e}");
}

#[test]
fn wrong_dtype_strings_as_x() {
    let (_d, p) = crafted(|s| {
        cells_and_genes(s, 1, 2);
        let v = vec!["a".to_string(), "b".to_string()];
        s.write("X", DataRef::Str(&v), &[1, 2], &Map::new())
            .unwrap();
    });
    let e = err_of(&p);
    assert!(e.contains("'X'") && e.contains("numeric"), "{e}");
}

#[test]
fn file_without_obs() {
    let (_d, p) = crafted(|s| {
        s.write("X", DataRef::F32(&[1.0]), &[1, 1], &Map::new())
            .unwrap();
    });
    let e = err_of(&p);
    assert!(e.contains("'obs'") && e.contains("does not exist"), "{e}");
}

#[test]
fn duplicate_obs_names_are_read_as_anndata_does() {
    // documented fallback: anndata reads duplicate names (and warns); so does scssl
    let dir = tempfile::tempdir().unwrap();
    let mut ad = small();
    ad.obs.index[1] = ad.obs.index[0].clone();
    let p = dir.path().join("dup.h5ad");
    io::write(&ad, &p).unwrap();
    let back = io::read(&p).unwrap();
    assert_eq!(back.obs.index[0], back.obs.index[1]);
}

fn counts_error(value: f32) -> String {
    let mut ad = small();
    let d = ad.x.to_dense();
    let mut d = d;
    d[[2, 5]] = value;
    ad.x = scssl_data::Matrix::Dense(d);
    let e = ad.check_counts(&ad.x).unwrap_err().to_string();
    assert!(
        e.contains(&ad.obs.index[2]) && e.contains(&ad.var.index[5]),
        "{e}"
    );
    e
}

#[test]
fn nan_counts_name_the_cell_and_gene() {
    assert!(counts_error(f32::NAN).contains("NaN"));
}

#[test]
fn infinite_counts_name_the_cell_and_gene() {
    assert!(counts_error(f32::INFINITY).contains("inf"));
}

#[test]
fn negative_counts_name_the_cell_and_gene() {
    assert!(counts_error(-3.0).contains("-3"));
}

fn sized(n: usize, g: usize) -> AnnData {
    let x = scssl_data::Matrix::Dense(ndarray::Array2::ones((n, g)));
    AnnData::new(
        x,
        (0..n).map(|i| format!("c{i}")).collect(),
        (0..g).map(|j| format!("g{j}")).collect(),
    )
    .unwrap()
}

#[test]
fn zero_cells_round_trip_and_preprocessing_refuses() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["h5ad", "zarr"] {
        let p = dir.path().join(format!("empty.{ext}"));
        io::write(&sized(0, 5), &p).unwrap();
        assert_eq!(io::read(&p).unwrap().n_obs(), 0);
    }
    // without a batch key, so that the refusal is about the cells, not a missing column
    let options = scssl_data::pp::recipe::PreprocessOptions {
        batch_key: None,
        ..Default::default()
    };
    let e = scssl_data::pp::recipe::preprocess(sized(0, 5), &options, &mut |_| {}).unwrap_err();
    assert!(
        format!("{e:#}").contains("0 cells × 5 genes") && format!("{e:#}").contains("at least 2"),
        "{e:#}"
    );
}

#[test]
fn zero_genes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nogenes.h5ad");
    io::write(&sized(4, 0), &p).unwrap();
    assert_eq!(io::read(&p).unwrap().n_vars(), 0);
}

#[test]
fn one_cell_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.zarr");
    io::write(&sized(1, 3), &p).unwrap();
    assert_eq!(io::read(&p).unwrap(), sized(1, 3));
}

#[test]
fn missing_obs_key_lists_the_keys() {
    let e = small().obs_groups("donor").unwrap_err().to_string();
    assert!(e.contains("'donor'") && e.contains("batch"), "{e}");
}

#[test]
fn missing_counts_layer_lists_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path(), "a.h5ad");
    let e = io::read_counts(&p, &scssl_data::CountsSource::Layer("spliced".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'spliced'"), "{e}");
    let e = io::read_counts(&p, &scssl_data::CountsSource::Raw)
        .unwrap_err()
        .to_string();
    assert!(e.contains("raw"), "{e}");
}

#[test]
fn non_ascii_names_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut ad = sized(2, 2);
    ad.obs.index = vec!["zelle_ä".into(), "细胞_2".into()];
    ad.var.index = vec!["GÉNE-α".into(), "🧬".into()];
    for ext in ["h5ad", "zarr"] {
        let p = dir.path().join(format!("ü.{ext}"));
        io::write(&ad, &p).unwrap();
        assert_eq!(io::read(&p).unwrap(), ad);
    }
}

#[test]
fn a_failed_write_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut ad = sized(2, 2);
    ad.obs.index[0] = "bad\0name".into();
    let p = dir.path().join("out.h5ad");
    let e = io::write(&ad, &p).unwrap_err().to_string();
    assert!(e.contains("NUL"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
}

#[test]
fn writing_into_a_missing_directory_is_an_error() {
    let e = io::write(&sized(1, 1), "/nonexistent-dir/x.h5ad")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent-dir"), "{e}");
}

#[test]
fn nullable_mask_with_the_wrong_length() {
    let (_d, p) = crafted(|s| {
        cells_genes_columns(s, 2, 1, &["n"]);
        s.write("X", DataRef::F32(&[1.0; 2]), &[2, 1], &Map::new())
            .unwrap();
        s.create_group("obs/n", &a(&[("encoding-type", json!("nullable-integer"))]))
            .unwrap();
        s.write("obs/n/values", DataRef::I64(&[1, 2]), &[2], &Map::new())
            .unwrap();
        s.write("obs/n/mask", DataRef::Bool(&[false]), &[1], &Map::new())
            .unwrap();
    });
    let e = err_of(&p);
    assert!(e.contains("obs/n") && e.contains("mask 1"), "{e}");
}

#[test]
fn unknown_column_encodings_are_skipped_not_fatal() {
    let (_d, p) = crafted(|s| {
        cells_genes_columns(s, 2, 1, &["ragged"]);
        s.write("X", DataRef::F32(&[1.0; 2]), &[2, 1], &Map::new())
            .unwrap();
        s.create_group(
            "obs/ragged",
            &a(&[("encoding-type", json!("awkward-array"))]),
        )
        .unwrap();
        s.create_group("obsm", &Map::new()).unwrap();
        s.create_group("obsm/meta", &a(&[("encoding-type", json!("dataframe"))]))
            .unwrap();
    });
    let ad = io::read(&p).unwrap();
    assert!(ad.obs.columns.is_empty() && ad.obsm.is_empty());
}

#[test]
fn malformed_yaml_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("grid.yaml");
    std::fs::write(&p, "data: [unclosed\n  model: {").unwrap();
    let e = format!("{:#}", scssl_bench::config::load_grid(&p, &[]).unwrap_err());
    assert!(e.contains("grid.yaml"), "{e}");
}

#[test]
fn unknown_method_name_in_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("grid.yaml");
    std::fs::write(&p, "data:\n  name: simulated\nmodel:\n  method: simclrr\n").unwrap();
    let e = format!("{:#}", scssl_bench::config::load_grid(&p, &[]).unwrap_err());
    assert!(e.contains("simclrr"), "{e}");
}

#[test]
fn one_batch_makes_batch_metrics_undefined_not_numbers() {
    let mut ad = small();
    let n = ad.n_obs();
    ad.obs.columns.retain(|(k, _)| k != "batch");
    ad.obs.columns.push((
        "batch".into(),
        scssl_data::Column::Categorical {
            codes: vec![0; n],
            categories: vec!["only".into()],
            ordered: false,
            category_kind: scssl_data::CategoryKind::Text,
        },
    ));
    assert_eq!(ad.obs_groups("batch").unwrap().n_groups(), 1);
}

#[test]
fn a_label_with_a_single_cell_is_kept() {
    let mut ad = small();
    if let Some((
        _,
        scssl_data::Column::Categorical {
            codes, categories, ..
        },
    )) = ad.obs.columns.iter_mut().find(|(k, _)| k == "cell_type")
    {
        categories.push("rare".into());
        codes[0] = (categories.len() - 1) as i32;
    }
    let g = ad.obs_groups("cell_type").unwrap();
    assert_eq!(
        g.codes
            .iter()
            .filter(|&&c| c as usize == g.n_groups() - 1)
            .count(),
        1
    );
}

#[test]
fn zarr_store_with_damaged_metadata_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path(), "a.zarr");
    std::fs::write(p.join("obs/.zattrs"), "{not json").unwrap();
    let e = err_of(&p);
    assert!(e.contains("invalid JSON") && e.contains(".zattrs"), "{e}");
    let _ = ZarrStore::open(&p).unwrap();
}
