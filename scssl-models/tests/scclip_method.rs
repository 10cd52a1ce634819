//! scCLIP trains on simulated CITE-seq (tiny ViTs), its embedding beats a random one on
//! cell-type silhouette, the RNA scale is fitted on every training cell and stored in the
//! checkpoint, a saved model embeds the same, and bad input gives named errors.

use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::scclip::{RNA_MAXABS, Scclip, maxabs};
use scssl_models::{
    EmbeddingOutput, Method, MethodRef, MiniBatch, ModelConfig, ModelError, ScclipParams,
    TrainConfig, TrainedModel, fit,
};

struct Data {
    rna: Array2<f32>,
    protein: Array2<f32>,
    labels: Vec<u32>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut ad = simulate(&SimConfig {
            n_cells: 600,
            n_genes: 200,
            n_proteins: 14,
            n_batches: 1,
            marker_fraction: 0.1,
            ..SimConfig::default()
        })
        .unwrap();
        let protein = ad.obsm_get("protein_expression").unwrap().clone();
        normalize_total(&mut ad, 1e4).unwrap();
        log1p(&mut ad);
        Data {
            rna: ad.x.to_dense(),
            // CLR per cell, shifted so that above-average proteins are positive: the benchmark's
            // binarisation (x > 0) then keeps which proteins a cell expresses highly
            protein: scssl_data::pp::clr(&protein, Default::default())
                .unwrap()
                .mapv(|v| v - std::f32::consts::LN_2),
            labels: ad.obs_groups("cell_type").unwrap().codes,
        }
    })
}

fn config(p: ScclipParams) -> ModelConfig {
    let d = data();
    ModelConfig {
        input_dims: vec![d.rna.ncols(), d.protein.ncols()],
        scclip: ScclipParams {
            hidden_size: 16,
            num_layers: 1,
            num_heads: 2,
            intermediate_size: 32,
            num_patches: 16,
            projection_dim: 16,
            ..p
        },
        ..ModelConfig::new(MethodRef::parse("scclip").unwrap(), d.rna.ncols())
    }
}

/// Dropout 0.1 in widths this small keeps the embeddings collapsed (cosine ≈ 0.9995 between
/// cells, loss = ln B) for hundreds of steps — PyTorch's build of the same network too — so
/// the training test runs without it.
fn no_dropout() -> ScclipParams {
    ScclipParams {
        attention_dropout: 0.0,
        hidden_dropout: 0.0,
        ..ScclipParams::default()
    }
}

fn training(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 64,
        lr: 2e-3,
        schedule: scssl_models::LrSchedule::WarmupCosine { warmup_steps: 10 },
        seed: 3,
        ..Scclip.default_training()
    }
}

/// Trains on (rna, protein); returns the model and the sizes of the requests made.
fn train_on(
    model: &ModelConfig,
    epochs: usize,
    rna: &Array2<f32>,
    protein: &Array2<f32>,
) -> Result<(TrainedModel, Vec<usize>), ModelError> {
    let mut requests = Vec::new();
    let trained = fit(
        model,
        &training(epochs),
        rna.nrows(),
        |r| {
            assert!(r.needs.features && r.needs.views == 0);
            requests.push(r.cells.len());
            Ok::<_, String>(MiniBatch {
                features: vec![
                    rna.select(Axis(0), r.cells),
                    protein.select(Axis(0), r.cells),
                ],
                ..MiniBatch::default()
            })
        },
        |_| {},
    )?;
    Ok((trained, requests))
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

fn random_silhouette(width: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = Array2::from_shape_fn((data().rna.nrows(), width), |_| {
        StandardNormal.sample(&mut rng)
    });
    silhouette(&random)
}

#[test]
fn trains_and_beats_a_random_embedding() {
    let d = data();
    let model = config(no_dropout());
    let (trained, requests) = train_on(&model, 30, &d.rna, &d.protein).unwrap();
    // one request with every cell (the RNA scale), then the mini-batches
    assert_eq!(requests[0], d.rna.nrows());
    assert!(requests[1..].iter().all(|&n| n <= 64));
    let losses = &trained.history.step_losses;
    assert!(losses.iter().all(|l| l.is_finite()));
    let first = trained.history.epochs[0].mean_loss;
    let last = trained.history.epochs.last().unwrap().mean_loss;
    println!(
        "CLIP loss per epoch: {first:.4} → {last:.4} (ln 64 = {:.4})",
        64f64.ln()
    );
    assert!(last < first - 0.2, "loss {first} → {last}");
    // the stored scale is max |x| per gene of the training cells
    let scale = trained
        .tensors
        .iter()
        .find(|t| t.name == RNA_MAXABS)
        .unwrap();
    assert_eq!(scale.data, maxabs(d.rna.view()));

    let emb = trained
        .embed(&[d.rna.view(), d.protein.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(emb.joint.dim(), (d.rna.nrows(), 32));
    assert_eq!(emb.per_modality.len(), 2);
    for m in &emb.per_modality {
        // L2-normalised
        for row in m.rows() {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
    }
    let (joint, rna, baseline) = (
        silhouette(&emb.joint),
        silhouette(&emb.per_modality[0]),
        random_silhouette(32),
    );
    println!("cell-type silhouette: joint {joint:.3}, RNA {rna:.3}, random {baseline:.3}");
    assert!(
        joint > baseline + 0.05,
        "scCLIP {joint} vs random {baseline}"
    );

    // a saved model reloads and embeds the same
    let dir = tempfile::tempdir().unwrap();
    trained.save(&dir.path().join("m")).unwrap();
    let loaded = TrainedModel::load(&dir.path().join("m")).unwrap();
    let again = loaded
        .embed(&[d.rna.view(), d.protein.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(again.joint, emb.joint);
}

#[test]
fn protein_binarisation_and_rna_scale_are_switches() {
    let d = data();
    // a doubled protein block gives the same binarised input, so the same model (dropout
    // masks included: they come from the run's seed)
    let model = config(ScclipParams::default());
    let (a, _) = train_on(&model, 1, &d.rna, &d.protein).unwrap();
    let (b, _) = train_on(&model, 1, &d.rna, &d.protein.mapv(|v| 2.0 * v)).unwrap();
    assert_eq!(a.tensors, b.tensors);
    // continuous protein and unscaled RNA: no stored scale, a different model
    let plain = config(ScclipParams {
        binarize_protein: false,
        maxabs_rna: false,
        ..ScclipParams::default()
    });
    let (c, requests) = train_on(&plain, 1, &d.rna, &d.protein).unwrap();
    assert!(requests.iter().all(|&n| n <= 64), "no all-cell request");
    assert!(c.tensors.iter().all(|t| t.name != RNA_MAXABS));
    assert_ne!(a.tensors[..a.tensors.len() - 1], c.tensors[..]);
}

#[test]
fn bad_input_is_named() {
    let d = data();
    // RNA only
    let mut rna_only = config(ScclipParams::default());
    rna_only.input_dims.truncate(1);
    let e = rna_only.validate().unwrap_err().to_string();
    assert!(e.contains("protein_key") && e.contains("protein"), "{e}");
    // heads must divide the width
    let mut heads = config(ScclipParams::default());
    heads.scclip.num_heads = 3;
    let e = heads.validate().unwrap_err().to_string();
    assert!(e.contains("model.scclip.num_heads"), "{e}");
    // a NaN in the training data
    let mut nan = d.rna.clone();
    nan[[5, 7]] = f32::NAN;
    let model = config(ScclipParams::default());
    let e = train_on(&model, 1, &nan, &d.protein)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    // a wrong feature count, or a NaN, at embedding time
    let (trained, _) = train_on(&model, 1, &d.rna, &d.protein).unwrap();
    let narrow = d.rna.slice(ndarray::s![.., ..150]).to_owned();
    let e = trained
        .embed(
            &[narrow.view(), d.protein.view()],
            EmbeddingOutput::Backbone,
        )
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape(_)), "{e}");
    let e = trained
        .embed(&[nan.view(), d.protein.view()], EmbeddingOutput::Backbone)
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape(_)), "{e}");
    let e = trained
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape(_)), "{e}");
}
