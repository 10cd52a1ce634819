//! Every single-cell method from the command line: `scssl train --method METHOD` on the
//! simulator, `scssl embed`, and the embedding beats a random one on cell-type silhouette; a
//! multimodal method without protein is refused naming `protein_key`.

mod common;

use std::path::Path;

use common::{run_err, run_ok, scssl, simulate};

/// Cell-type silhouette of `obsm[key]` of `path` and of a random embedding of the same shape.
fn silhouette_vs_random(path: &Path, key: &str) -> (f64, f64) {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let ad = scssl_data::io::read(path).unwrap();
    let labels = ad.obs_groups("cell_type").unwrap().codes;
    let emb = ad.obsm_get(key).unwrap().to_owned();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let random = ndarray::Array2::from_shape_fn(emb.dim(), |_| -> f32 {
        rand_distr::StandardNormal.sample(&mut rng)
    });
    let s = |x: &ndarray::Array2<f32>| {
        scssl_metrics::silhouette::silhouette_label(x.view(), &labels, None).unwrap()
    };
    (s(&emb), s(&random))
}

/// `scssl train --method METHOD` on the simulator (with its protein for a multimodal method),
/// `scssl embed`, and the embedding beats a random one on cell-type silhouette; a multimodal
/// method without the protein is refused naming `protein_key`.
fn single_cell_method_from_the_command_line(method: &str, multimodal: bool, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    // four cell types in two batches: an RNA signal that PCA scores 0.54 on (random 0.50)
    simulate(
        &sim,
        "--cells 1000 --genes 1000 --proteins 12 --cell-types 4 --batches 2 --seed 5",
    );
    let model = dir.path().join(method);
    let protein: &[&str] = if multimodal {
        &["--protein-key", "protein_expression"]
    } else {
        &[]
    };
    let msg = run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args(["--method", method, "--n-hvg", "400"])
            .args(protein)
            .args(args)
            .arg("-o")
            .arg(&model),
    );
    assert!(
        msg.contains(&format!("trained {method} on 1000 cells")),
        "{msg}"
    );
    let key = format!("X_{method}");
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&model)
            .args(["--key", &key]),
    );
    let (ours, random) = silhouette_vs_random(&sim, &key);
    println!("{method}: cell-type silhouette {ours:.3}, random {random:.3}");
    assert!(ours > random + 0.02, "{method}: {ours} vs random {random}");
    if multimodal {
        let err = run_err(
            scssl()
                .arg("train")
                .arg(&sim)
                .args(["--method", method, "--epochs", "1", "-o"])
                .arg(dir.path().join("rna-only")),
        );
        assert!(err.contains("protein_key"), "{method}: {err}");
    }
}

#[test]
fn claire_trains_from_the_command_line() {
    single_cell_method_from_the_command_line(
        "claire",
        false,
        &[
            "--batch-size",
            "64",
            "--epochs",
            "6",
            "--lr",
            "1e-3",
            "--set",
            "model.claire.latent_dim=16",
            "--set",
            "model.claire.queue_size=128",
        ],
    );
}

#[test]
fn clear_trains_from_the_command_line() {
    single_cell_method_from_the_command_line(
        "clear",
        false,
        &[
            "--batch-size",
            "64",
            "--epochs",
            "30",
            "--lr",
            "1e-2",
            "--set",
            "model.clear.hidden_dim=64",
            "--set",
            "model.clear.latent_dim=16",
            "--set",
            "model.clear.queue_size=128",
            "--set",
            "model.clear.momentum=0.99",
        ],
    );
}

#[test]
fn concerto_trains_from_the_command_line() {
    single_cell_method_from_the_command_line(
        "concerto",
        false,
        &[
            "--batch-size",
            "16",
            "--epochs",
            "4",
            "--lr",
            "1e-3",
            "--set",
            "model.concerto.embedding_dim=16",
            "--set",
            "model.concerto.head_dim=16",
        ],
    );
}

#[test]
fn concerto_with_protein_trains_from_the_command_line() {
    // the multimodal variant (modalities added); Concerto also accepts RNA alone
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    simulate(
        &sim,
        "--cells 1000 --genes 1000 --proteins 12 --cell-types 4 --batches 2 --seed 5",
    );
    let model = dir.path().join("concerto");
    run_ok(
        scssl()
            .arg("train")
            .arg(&sim)
            .args([
                "--method",
                "concerto",
                "--n-hvg",
                "400",
                "--batch-size",
                "16",
            ])
            .args([
                "--protein-key",
                "protein_expression",
                "--epochs",
                "4",
                "--lr",
                "1e-3",
            ])
            .args(["--set", "model.concerto.embedding_dim=16"])
            .args(["--set", "model.concerto.head_dim=16", "-o"])
            .arg(&model),
    );
    run_ok(
        scssl()
            .arg("embed")
            .arg(&sim)
            .arg("--model")
            .arg(&model)
            .args(["--key", "X_concerto"]),
    );
    let (ours, random) = silhouette_vs_random(&sim, "X_concerto");
    println!("concerto (RNA + protein): cell-type silhouette {ours:.3}, random {random:.3}");
    assert!(ours > random + 0.05, "{ours} vs random {random}");
}

#[test]
fn scbutterfly_trains_from_the_command_line() {
    single_cell_method_from_the_command_line(
        "scbutterfly",
        true,
        &[
            "--epochs",
            "20",
            "--lr",
            "1e-2",
            "--set",
            "model.scbutterfly.rna_pretrain_epochs=10",
            "--set",
            "model.scbutterfly.adt_pretrain_epochs=10",
        ],
    );
}

#[test]
fn sctel_trains_from_the_command_line() {
    single_cell_method_from_the_command_line(
        "sctel",
        true,
        &[
            "--epochs",
            "10",
            "--set",
            "model.sctel.h_size=16",
            "--set",
            "model.sctel.heads=2",
        ],
    );
}

#[test]
fn scclip_trains_from_the_command_line() {
    // a tiny ViT without dropout (in widths this small dropout keeps the embeddings collapsed),
    // and the protein kept continuous: the benchmark's binarisation (DIV-34) turns CITE-seq
    // counts, almost all positive, into a constant block
    single_cell_method_from_the_command_line(
        "scclip",
        true,
        &[
            "--epochs",
            "16",
            "--batch-size",
            "32",
            "--lr",
            "2e-3",
            "--schedule",
            "warmup_cosine:10",
            "--set",
            "model.scclip.hidden_size=16",
            "--set",
            "model.scclip.num_layers=1",
            "--set",
            "model.scclip.num_heads=2",
            "--set",
            "model.scclip.intermediate_size=32",
            "--set",
            "model.scclip.num_patches=16",
            "--set",
            "model.scclip.projection_dim=16",
            "--set",
            "model.scclip.attention_dropout=0",
            "--set",
            "model.scclip.hidden_dropout=0",
            "--set",
            "model.scclip.binarize_protein=false",
        ],
    );
}

#[test]
fn scdc_trains_from_the_command_line() {
    // K from the data's four cell types
    single_cell_method_from_the_command_line(
        "scdc",
        false,
        &[
            "--batch-size",
            "64",
            "--epochs",
            "10",
            "--set",
            "model.scdc.hidden_units=[64,32]",
            "--set",
            "model.scdc.latent_dim=16",
        ],
    );
}
