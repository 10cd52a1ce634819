//! The `scssl` binary end to end: simulate → preprocess → inspect, in both formats, and the
//! errors a user sees for bad input.

use std::path::Path;

mod common;

use common::{run_err, run_ok, scssl, simulate};

fn pipeline(dir: &Path, ext: &str) {
    let sim = dir.join(format!("sim.{ext}"));
    let pp = dir.join(format!("pp.{ext}"));
    simulate(
        &sim,
        "--cells 600 --genes 300 --batches 3 --cell-types 5 --proteins 4 --seed 3",
    );
    let msg = run_ok(
        scssl()
            .arg("preprocess")
            .arg(&sim)
            .arg("-o")
            .arg(&pp)
            .args(["--batch-key", "batch", "--n-hvg", "120", "--n-pcs", "20"]),
    );
    assert!(msg.contains("120 of 300 genes"), "{msg}");
    let ad = scssl_data::io::read(&pp).unwrap();
    assert_eq!(ad.x.shape(), (600, 120));
    assert_eq!(ad.obsm_get("X_pca").unwrap().dim(), (600, 20));
    assert_eq!(ad.layer("counts").unwrap().shape(), (600, 120));
    assert!(ad.var.get("highly_variable").is_some());
    let text = run_ok(scssl().arg("inspect").arg(&pp));
    assert!(
        text.contains("600 cells × 120 genes")
            && text.contains("X_pca")
            && text.contains("counts")
            && text.contains("batch"),
        "{text}"
    );
    let json = run_ok(scssl().arg("inspect").arg("--json").arg(&pp));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["x"]["shape"][1], 120);
}

#[test]
fn simulate_preprocess_inspect_h5ad() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), "h5ad");
}

#[test]
fn simulate_preprocess_inspect_zarr() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), "zarr");
}

#[test]
fn bad_input_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // a report of a directory that holds no runs (a mistyped path) is an error, not an
    // empty report
    let e = run_err(scssl().arg("report").arg(dir.path().join("no-such-store")));
    assert!(
        e.contains("no runs in") && e.contains("no-such-store"),
        "{e}"
    );
    assert!(
        !dir.path().join("no-such-store").exists(),
        "nothing written"
    );
    let sim = dir.path().join("s.h5ad");
    simulate(&sim, "--cells 100 --genes 50");
    let e = run_err(
        scssl()
            .arg("preprocess")
            .arg(&sim)
            .arg("-o")
            .arg(dir.path().join("o.h5ad"))
            .args(["--batch-key", "sample"]),
    );
    assert!(e.contains("no key 'sample'") && e.contains("batch"), "{e}");
    assert!(
        !dir.path().join("o.h5ad").exists(),
        "no output after a failure"
    );
    let e = run_err(scssl().arg("inspect").arg(dir.path().join("missing.h5ad")));
    assert!(e.contains("missing.h5ad"), "{e}");
    let e = run_err(
        scssl()
            .args(["simulate", "--cells", "1", "-o"])
            .arg(dir.path().join("x.h5ad")),
    );
    assert!(e.contains("n_cells"), "{e}");
    // negative counts name the cell and gene
    let mut ad = scssl_data::io::read(&sim).unwrap();
    if let scssl_data::Matrix::Csr(m) = &mut ad.x {
        m.data_mut()[0] = -1.0;
    }
    let bad = dir.path().join("neg.h5ad");
    scssl_data::io::write(&ad, &bad).unwrap();
    let e = run_err(
        scssl()
            .arg("preprocess")
            .arg(&bad)
            .arg("-o")
            .arg(dir.path().join("o2.h5ad")),
    );
    assert!(e.contains("cell_0") && e.contains("non-negative"), "{e}");
}

#[test]
fn single_batch_falls_back_to_unbatched_hvg() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("one.h5ad");
    simulate(&sim, "--cells 200 --genes 80 --batches 1");
    let msg = run_ok(
        scssl()
            .arg("preprocess")
            .arg(&sim)
            .arg("-o")
            .arg(dir.path().join("p.h5ad"))
            .args(["--n-hvg", "30", "--n-pcs", "10"]),
    );
    assert!(msg.contains("(1 batch)"), "{msg}");
}

#[test]
fn backed_preprocessing_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("s.h5ad");
    simulate(&sim, "--cells 700 --genes 250 --seed 5");
    let a = dir.path().join("a.h5ad");
    let b = dir.path().join("b.zarr");
    run_ok(
        scssl()
            .arg("preprocess")
            .arg(&sim)
            .arg("-o")
            .arg(&a)
            .args(["--n-hvg", "100", "--n-pcs", "15"]),
    );
    run_ok(scssl().arg("preprocess").arg(&sim).arg("-o").arg(&b).args([
        "--n-hvg",
        "100",
        "--n-pcs",
        "15",
        "--backed",
        "--chunk-rows",
        "97",
    ]));
    let (a, b) = (
        scssl_data::io::read(&a).unwrap(),
        scssl_data::io::read(&b).unwrap(),
    );
    assert_eq!(a.var.index, b.var.index, "same HVGs");
    assert_eq!(a.x, b.x, "same log-normalised matrix");
    assert_eq!(a.layers["counts"], b.layers["counts"]);
    let (pa, pb) = (a.obsm_get("X_pca").unwrap(), b.obsm_get("X_pca").unwrap());
    for (x, y) in pa.iter().zip(pb.iter()) {
        assert!((x - y).abs() < 1e-4, "PCA {x} vs {y}");
    }
}

#[test]
fn eval_and_annotate_score_embeddings_in_obsm() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("s.h5ad");
    let pp = dir.path().join("p.h5ad");
    simulate(&sim, "--cells 500 --genes 200 --proteins 5 --seed 2");
    run_ok(
        scssl()
            .arg("preprocess")
            .arg(&sim)
            .arg("-o")
            .arg(&pp)
            .args(["--n-hvg", "100", "--n-pcs", "10"]),
    );
    let json = dir.path().join("out/m.json");
    let csv = dir.path().join("m.csv");
    let table = run_ok(
        scssl()
            .arg("eval")
            .arg(&pp)
            .args([
                "--embedding",
                "X_pca",
                "--embedding",
                "protein_expression",
                "--json",
            ])
            .arg(&json)
            .arg("--csv")
            .arg(&csv),
    );
    assert!(
        table.contains("X_pca") && table.contains("total"),
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in scssl_bench::evaluate::COLUMNS.iter() {
        assert!(v["X_pca"].get(key).is_some(), "missing {key}");
    }
    assert!(v["X_pca"]["timings"]["silhouette_label"].is_number());
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 3);
    let e = run_err(scssl().arg("eval").arg(&pp).args(["--embedding", "X_scvi"]));
    assert!(e.contains("X_scvi") && e.contains("X_pca"), "{e}");
    let e = run_err(scssl().arg("eval").arg(&pp).args([
        "--embedding",
        "X_pca",
        "--label-key",
        "celltype",
    ]));
    assert!(e.contains("celltype") && e.contains("cell_type"), "{e}");
    let ann = run_ok(scssl().arg("annotate").arg(&pp).args([
        "--embedding",
        "X_pca",
        "--query-batches",
        "batch_1",
        "--protein-key",
        "protein_expression",
    ]));
    assert!(
        ann.contains("macro-F1")
            && ann.contains("shared cell types only")
            && ann.contains("protein prediction"),
        "{ann}"
    );
    let e = run_err(scssl().arg("annotate").arg(&pp).args([
        "--embedding",
        "X_pca",
        "--query-batches",
        "batch_9",
    ]));
    assert!(e.contains("batch_9") && e.contains("batch_0"), "{e}");
}

#[test]
fn train_then_embed_writes_obsm_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    simulate(&sim, "--cells 400 --genes 200 --proteins 5");
    let train = |out: &Path, extra: &[&str]| {
        run_ok(
            scssl()
                .arg("train")
                .arg(&sim)
                .args(["--epochs", "2", "--batch-size", "64", "--n-hvg", "100"])
                .args(extra)
                .arg("-o")
                .arg(out),
        )
    };
    let m1 = dir.path().join("m1");
    let msg = train(&m1, &["--method", "byol"]);
    assert!(
        msg.contains("trained byol on 400 cells × 100 features"),
        "{msg}"
    );
    let msg = run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&m1)
            .args(["--key", "X_byol"]),
    );
    assert!(msg.contains("(400 × 64)"), "{msg}");
    let ad = scssl_data::io::read(&sim).unwrap();
    let e1 = ad.obsm_get("X_byol").unwrap().clone();
    // The same seed gives the same model and embedding.
    let m2 = dir.path().join("m2");
    train(&m2, &["--method", "byol"]);
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&m2)
            .args(["--key", "X_byol2"]),
    );
    let ad = scssl_data::io::read(&sim).unwrap();
    assert!(*ad.obsm_get("X_byol2").unwrap() == e1);
    // Multimodal with protein: the joint embedding is the concatenation.
    let m3 = dir.path().join("m3");
    train(
        &m3,
        &["--method", "simclr", "--protein-key", "protein_expression"],
    );
    let msg = run_ok(scssl().arg("embed").arg(&sim).arg("--model").arg(&m3));
    assert!(msg.contains("(400 × 128)"), "{msg}");
    // Errors name the culprit.
    let err = run_err(
        scssl()
            .arg("train")
            .arg(&sim)
            .args(["--method", "simclrr", "-o"])
            .arg(dir.path().join("x")),
    );
    assert!(err.contains("model.method"), "{err}");
    let err = run_err(
        scssl()
            .arg("train")
            .arg(&sim)
            .args(["--protein-key", "adt", "-o"])
            .arg(dir.path().join("x")),
    );
    assert!(err.contains("adt"), "{err}");
    let err = run_err(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(dir.path().join("nothing")),
    );
    assert!(err.contains("model.json"), "{err}");
}

#[test]
fn scvi_and_pca_train_and_embed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    simulate(&sim, "--cells 400 --genes 200");
    let scvi = dir.path().join("scvi");
    let msg = run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args(["--method", "scvi", "--epochs", "2", "--n-hvg", "100"])
            .args(["--hidden-dim", "10", "--gene-likelihood", "nb", "-o"])
            .arg(&scvi),
    );
    assert!(
        msg.contains("trained scvi on 400 cells × 100 features for 2 epochs"),
        "{msg}"
    );
    let back = scssl_models::TrainedModel::load(&scvi).unwrap();
    // scvi-tools' training defaults where no flag was given
    assert_eq!(back.training.batch_size, 128);
    assert_eq!(back.training.lr, 1e-3);
    assert_eq!(back.config.n_batches, 3);
    let msg = run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&scvi)
            .args(["--key", "X_scvi"]),
    );
    assert!(msg.contains("(400 × 10)"), "{msg}");
    let pca = dir.path().join("pca");
    let msg = run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "pca",
                "--n-hvg",
                "100",
                "--hidden-dim",
                "20",
                "-o",
            ])
            .arg(&pca),
    );
    assert!(
        msg.contains("fitted pca on 400 cells × 100 features (20 components)"),
        "{msg}"
    );
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&pca)
            .args(["--key", "X_pca20"]),
    );
    let ad = scssl_data::io::read(&sim).unwrap();
    assert_eq!(ad.obsm_get("X_scvi").unwrap().dim(), (400, 10));
    assert_eq!(ad.obsm_get("X_pca20").unwrap().dim(), (400, 20));
    // scVI on a log-normalised file without counts: the error says where counts come from
    let pp = dir.path().join("pp.h5ad");
    run_ok(
        scssl()
            .arg("preprocess")
            .arg(&sim)
            .args(["--n-hvg", "100", "-o"])
            .arg(&pp),
    );
    let err = run_err(
        scssl()
            .arg("train")
            .arg(&pp)
            .args(["--method", "scvi", "--epochs", "1", "-o"])
            .arg(dir.path().join("x")),
    );
    assert!(err.contains("--counts-layer"), "{err}");
}

/// The masked autoencoder with gene-programme masking (programmes the simulator writes as a
/// GMT), and DSBN, embedded on its training file and on a file whose batches training never
/// saw; bad GMT files are named.
#[test]
fn mae_with_gene_programmes_and_dsbn_train_and_embed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    let gmt = dir.path().join("programs.gmt");
    run_ok(
        scssl()
            .args([
                "simulate", "--cells", "400", "--genes", "200", "--seed", "3",
            ])
            .arg("-o")
            .arg(&sim)
            .arg("--gene-programs")
            .arg(&gmt),
    );
    let sets = scssl_data::gmt::read_gmt(&gmt).unwrap();
    assert_eq!(sets.len(), 8);
    let mae = dir.path().join("mae");
    let msg = run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "mae",
                "--masking",
                "gene_program",
                "--n-hvg",
                "200",
                "--epochs",
                "2",
                "--hidden-dim",
                "8",
                "--gene-programs",
            ])
            .arg(&gmt)
            .arg("-o")
            .arg(&mae),
    );
    assert!(msg.contains("trained mae on 400 cells"), "{msg}");
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&mae)
            .args(["--key", "X_mae"]),
    );
    // a GMT none of whose genes the data has: the error says how many matched
    let foreign = dir.path().join("foreign.gmt");
    std::fs::write(&foreign, "SET\t\tCD3E\tMS4A1\n").unwrap();
    let err = run_err(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "mae",
                "--masking",
                "gene_program",
                "--epochs",
                "1",
            ])
            .arg("--gene-programs")
            .arg(&foreign)
            .arg("-o")
            .arg(dir.path().join("x")),
    );
    assert!(err.contains("0 of 2 genes matched"), "{err}");
    // DSBN: trained on the file's three batches ...
    let dsbn = dir.path().join("dsbn");
    run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "simclr",
                "--dsbn",
                "--n-hvg",
                "100",
                "--epochs",
                "2",
                "--hidden-dim",
                "8",
                "--augment",
                "mask_only",
                "-o",
            ])
            .arg(&dsbn),
    );
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&dsbn)
            .args(["--key", "X_dsbn"]),
    );
    // ... and a query whose batches it never saw (another simulation, batches renamed)
    let query = dir.path().join("query.h5ad");
    simulate(&query, "--cells 100 --genes 200 --seed 9");
    let mut q = scssl_data::io::read(&query).unwrap();
    for (key, col) in q.obs.columns.iter_mut() {
        if let (true, scssl_data::frame::Column::Categorical { categories, .. }) =
            (key == "batch", col)
        {
            for c in categories.iter_mut() {
                *c = format!("query_{c}");
            }
        }
    }
    scssl_data::io::write(&q, &query).unwrap();
    run_ok(
        scssl()
            .arg("embed")
            .arg(&query)
            .arg("--model")
            .arg(&dsbn)
            .args(["--key", "X_dsbn"]),
    );
    let ad = scssl_data::io::read(&sim).unwrap();
    assert_eq!(ad.obsm_get("X_mae").unwrap().dim(), (400, 8));
    assert_eq!(ad.obsm_get("X_dsbn").unwrap().dim(), (400, 8));
    let q = scssl_data::io::read(&query).unwrap();
    let e = q.obsm_get("X_dsbn").unwrap();
    assert_eq!(e.dim(), (100, 8));
    assert!(e.iter().all(|v| v.is_finite()));
}

/// totalVI from the command line on simulated CITE-seq counts: trains, embeds, and says what
/// is missing without a protein block.
#[test]
fn totalvi_trains_and_embeds_and_names_the_protein_key() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("cite.h5ad");
    simulate(&sim, "--cells 300 --genes 200 --proteins 12 --seed 4");
    let model = dir.path().join("totalvi");
    let msg = run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "totalvi",
                "--protein-key",
                "protein_expression",
                "--n-hvg",
                "100",
                "--epochs",
                "3",
                "-o",
            ])
            .arg(&model),
    );
    assert!(msg.contains("trained totalvi on 300 cells"), "{msg}");
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&model)
            .args(["--key", "X_totalvi"]),
    );
    let ad = scssl_data::io::read(&sim).unwrap();
    assert_eq!(ad.obsm_get("X_totalvi").unwrap().dim(), (300, 20));
    let err = run_err(
        scssl()
            .arg("train")
            .arg(&sim)
            .args(["--method", "totalvi", "--epochs", "1", "-o"])
            .arg(dir.path().join("x")),
    );
    assert!(err.contains("protein_key"), "{err}");
}

/// `scssl train`'s settings are config keys: `--set` reaches any of them (by the reference's
/// name too), what is not given takes the method's defaults as a grid run would, and a sweep
/// or a mistyped key is refused.
#[test]
fn train_settings_are_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    simulate(&sim, "--cells 300 --genes 100 --seed 4");
    let model = dir.path().join("mae");
    run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "mae",
                "--n-hvg",
                "50",
                "--hidden-dim",
                "8",
                "--set",
                "model.mae.masking_rate=0.3",
                "--set",
                "training.epochs=1",
                "-o",
            ])
            .arg(&model),
    );
    let back = scssl_models::TrainedModel::load(&model).unwrap();
    assert_eq!(back.config.mae.mask_rate, 0.3);
    assert_eq!(back.config.hidden_dim, 8);
    assert_eq!(back.history.epochs.len(), 1);
    // the keys not given: the MAE's own training defaults (AdamW at 1e-3, clipping at 1.0)
    let training = &back.metadata["config"]["training"];
    assert_eq!(training["lr"], serde_json::json!(1e-3), "{training}");
    assert_eq!(training["optimizer"], "adamw", "{training}");
    assert_eq!(
        training["gradient_clip"],
        serde_json::json!(1.0),
        "{training}"
    );
    let refuse = |extra: &[&str]| {
        run_err(
            scssl()
                .arg("train")
                .arg(&sim)
                .args(extra)
                .arg("-o")
                .arg(dir.path().join("x")),
        )
    };
    let e = refuse(&["--set", "model.hidden_dim=8,16"]);
    assert!(e.contains("2 runs"), "{e}");
    let e = refuse(&["--set", "model.hiden_dim=8"]);
    assert!(e.contains("did you mean `model.hidden_dim`"), "{e}");
    let e = refuse(&["--method", "simclr", "--set", "training.schedule=sometimes"]);
    assert!(e.contains("sometimes"), "{e}");
}
