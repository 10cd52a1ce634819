//! totalVI trains on simulated CITE-seq counts (empirical background prior, validation every
//! epoch), embeds training and unseen batches, stops early when the validation ELBO stalls,
//! and rejects bad input with named errors.

use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::totalvi::Totalvi;
use scssl_models::{
    EmbedInputs, EmbeddingOutput, Method, MethodRef, MiniBatch, ModelConfig, TotalviParams,
    TrainConfig, TrainedModel, fit,
};

struct Data {
    counts: Array2<f32>,
    protein: Array2<f32>,
    batches: Vec<u32>,
    labels: Vec<u32>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let ad = simulate(&SimConfig {
            n_cells: 600,
            n_genes: 150,
            n_proteins: 14,
            ..SimConfig::default()
        })
        .unwrap();
        Data {
            counts: ad.x.to_dense(),
            protein: ad.obsm_get("protein_expression").unwrap().clone(),
            batches: ad.obs_groups("batch").unwrap().codes,
            labels: ad.obs_groups("cell_type").unwrap().codes,
        }
    })
}

fn config(p: TotalviParams) -> ModelConfig {
    let d = data();
    ModelConfig {
        input_dims: vec![d.counts.ncols(), d.protein.ncols()],
        n_batches: 3,
        totalvi: TotalviParams {
            n_hidden: 32,
            n_latent: 8,
            ..p
        },
        ..ModelConfig::new(MethodRef::parse("totalvi").unwrap(), d.counts.ncols())
    }
}

fn train(model: &ModelConfig, epochs: usize) -> TrainedModel {
    let d = data();
    let training = TrainConfig {
        epochs,
        batch_size: 128,
        ..Totalvi.default_training()
    };
    fit(
        model,
        &training,
        d.counts.nrows(),
        |r| {
            assert!(r.needs.counts && r.needs.protein_counts && r.needs.batch_codes);
            let pick = |m: &Array2<f32>| m.select(Axis(0), r.cells);
            Ok::<_, String>(MiniBatch {
                features: vec![pick(&d.counts).mapv(f32::ln_1p), pick(&d.protein)],
                counts: Some(pick(&d.counts)),
                batch_codes: Some(r.cells.iter().map(|&i| d.batches[i]).collect()),
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
    .unwrap()
}

fn embed(trained: &TrainedModel, codes: &[u32]) -> Array2<f32> {
    let d = data();
    let logn = d.counts.mapv(f32::ln_1p);
    trained
        .embed_inputs(
            &EmbedInputs {
                features: vec![logn.view(), d.protein.view()],
                counts: Some(d.counts.view()),
                batch_codes: Some(codes),
            },
            EmbeddingOutput::Backbone,
        )
        .unwrap()
        .joint
}

#[test]
fn trains_validates_and_embeds_training_and_unseen_batches() {
    let model = config(TotalviParams::default());
    let trained = train(&model, 30);
    let h = &trained.history;
    assert!(h.step_losses.iter().all(|l| l.is_finite()));
    assert!(
        h.epochs
            .iter()
            .all(|e| e.validation_loss.is_some_and(f64::is_finite))
    );
    let first = h.epochs[0].validation_loss.unwrap();
    let last = h.epochs.last().unwrap().validation_loss.unwrap();
    assert!(last < first, "validation ELBO {first} → {last}");
    // 14 > 10 proteins: the empirical background prior, whose scale is √(Σ s²)/100 per batch
    assert!(Totalvi::uses_empirical_prior(&model));
    let prior = scssl_models::methods::background_prior::empirical_prior(
        data().protein.view(),
        &data().batches,
        3,
        0,
    );
    assert!(prior.mean.iter().all(|m| *m > 0.0 && m.is_finite()));
    assert!(prior.scale.iter().all(|s| *s > 0.0 && *s < 1.0));
    let d = data();
    let emb = embed(&trained, &d.batches);
    assert_eq!(emb.dim(), (d.counts.nrows(), 8));
    let sil = scssl_metrics::silhouette::silhouette_label(emb.view(), &d.labels, None).unwrap();
    assert!(sil > 0.52, "cell-type silhouette {sil}");
    // a batch training never saw: the mean covariate, finite and different from batch 0's
    let unseen = embed(&trained, &vec![7; d.counts.nrows()]);
    assert!(unseen.iter().all(|v| v.is_finite()));
    assert_ne!(unseen, embed(&trained, &vec![0; d.counts.nrows()]));
}

#[test]
fn early_stopping_ends_a_stalled_run() {
    // a learning rate too small to move the weights: once BatchNorm's running statistics have
    // settled, the validation ELBO only jitters, and 45 epochs without a new best stop the run
    let d = data();
    let model = config(TotalviParams {
        reduce_lr_on_plateau: false,
        ..TotalviParams::default()
    });
    let training = TrainConfig {
        epochs: 400,
        batch_size: 300,
        lr: 1e-20,
        ..Totalvi.default_training()
    };
    let trained = fit(
        &model,
        &training,
        d.counts.nrows(),
        |r| {
            let pick = |m: &Array2<f32>| m.select(Axis(0), r.cells);
            Ok::<_, String>(MiniBatch {
                features: vec![pick(&d.counts), pick(&d.protein)],
                counts: Some(pick(&d.counts)),
                batch_codes: Some(r.cells.iter().map(|&i| d.batches[i]).collect()),
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
    .unwrap();
    let v: Vec<f64> = trained
        .history
        .epochs
        .iter()
        .map(|e| e.validation_loss.unwrap())
        .collect();
    println!("stopped after {} epochs", v.len());
    assert!(v.len() < 400, "no early stop in 400 epochs");
    let (before, last) = v.split_at(v.len() - 45);
    let best_before = before.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        last.iter().all(|&x| x >= best_before),
        "an improvement in the last 45 epochs"
    );
}

#[test]
fn bad_input_is_named() {
    let d = data();
    let mut rna_only = config(TotalviParams::default());
    rna_only.input_dims.truncate(1);
    let e = rna_only.validate().unwrap_err().to_string();
    assert!(e.contains("protein_key"), "{e}");
    let trained = train(&config(TotalviParams::default()), 1);
    let logn = d.counts.mapv(f32::ln_1p);
    let e = trained
        .embed_inputs(
            &EmbedInputs {
                features: vec![logn.view(), d.protein.view()],
                counts: Some(logn.view()),
                batch_codes: None,
            },
            EmbeddingOutput::Backbone,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch"), "{e}");
    let negative = d.protein.mapv(|v| v - 100.0);
    let e = trained
        .embed_inputs(
            &EmbedInputs {
                features: vec![logn.view(), negative.view()],
                counts: Some(d.counts.view()),
                batch_codes: Some(&d.batches),
            },
            EmbeddingOutput::Backbone,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("protein counts"), "{e}");
}
