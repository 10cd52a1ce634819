//! scTEL trains on simulated CITE-seq data (tiny width: d = 16, 2 heads), its h3 embedding
//! beats a random one on cell-type silhouette, its protein prediction beats predicting the
//! training mean, validation runs every epoch, a checkpoint reloads to the same embedding, and
//! bad input gives named errors.

use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::Matrix;
use scssl_data::pp::{log1p, normalize_total, scale};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::sctel::{Sctel, SctelNetwork};
use scssl_models::{
    CpuBackend, EmbedInputs, EmbeddingOutput, Method, MethodRef, MiniBatch, ModelConfig,
    ModelError, NamedTensor, SctelParams, TrainConfig, TrainedModel, fit,
};

struct Data {
    rna: Array2<f32>,
    protein: Array2<f32>,
    labels: Vec<u32>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        // one batch: scTEL does no batch correction
        let mut ad = simulate(&SimConfig {
            n_cells: 600,
            n_genes: 200,
            n_proteins: 10,
            n_batches: 1,
            marker_fraction: 0.1,
            ..SimConfig::default()
        })
        .unwrap();
        // as the reference prepares them (one batch): log-normalised, then z-scored per
        // gene and per protein
        let protein = ad.obsm_get("protein_expression").unwrap().mapv(f32::ln_1p);
        let protein = scale(&Matrix::Dense(protein), None).unwrap();
        normalize_total(&mut ad, 1e4).unwrap();
        log1p(&mut ad);
        Data {
            rna: scale(&ad.x, None).unwrap(),
            protein,
            labels: ad.obs_groups("cell_type").unwrap().codes,
        }
    })
}

/// `p` at the test width (d = 16, 2 heads).
fn config(p: SctelParams) -> ModelConfig {
    let d = data();
    ModelConfig {
        input_dims: vec![d.rna.ncols(), d.protein.ncols()],
        sctel: SctelParams {
            h_size: 16,
            heads: 2,
            ..p
        },
        ..ModelConfig::new(MethodRef::parse("sctel").unwrap(), d.rna.ncols())
    }
}

fn train(model: &ModelConfig, epochs: usize) -> scssl_models::Result<TrainedModel> {
    let d = data();
    let training = TrainConfig {
        epochs,
        ..Sctel.default_training()
    };
    fit(
        model,
        &training,
        d.rna.nrows(),
        |r| {
            assert!(r.needs.features && r.needs.views == 0 && !r.needs.counts);
            Ok::<_, String>(MiniBatch {
                features: vec![
                    d.rna.select(Axis(0), r.cells),
                    d.protein.select(Axis(0), r.cells),
                ],
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

/// Mean squared error of `pred` against the protein block.
fn mse(pred: &Array2<f32>) -> f64 {
    let d = data();
    (pred - &d.protein)
        .mapv(|v| (v as f64).powi(2))
        .mean()
        .unwrap()
}

#[test]
fn trains_embeds_predicts_and_reloads() {
    let model = config(SctelParams::default());
    let trained = train(&model, 12).unwrap();
    let h = &trained.history;
    assert!(h.step_losses.iter().all(|l| l.is_finite()));
    // 10 % held out (60 cells): 540 training cells, 16 full batches + one of 28
    assert_eq!(h.step_losses.len() % 17, 0);
    let val: Vec<f64> = h
        .epochs
        .iter()
        .map(|e| e.validation_loss.unwrap())
        .collect();
    println!("validation loss per epoch: {val:.4?}");
    assert!(val.last().unwrap() < &val[0], "validation loss {val:?}");

    let d = data();
    let emb = trained
        .embed(&[d.rna.view(), d.protein.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(emb.joint.dim(), (d.rna.nrows(), 16));
    assert_eq!(emb.per_modality.len(), 1);
    assert_eq!(emb.per_modality[0], emb.joint);
    // RNA alone gives the same embedding (the protein block is not read)
    let rna_only = trained
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(rna_only.joint, emb.joint);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = Array2::from_shape_fn(emb.joint.dim(), |_| StandardNormal.sample(&mut rng));
    let (ours, baseline) = (silhouette(&emb.joint), silhouette(&random));
    println!("silhouette: scTEL h3 {ours:.3}, random {baseline:.3}");
    assert!(ours > baseline + 0.05, "scTEL {ours} vs random {baseline}");

    // the protein head predicts better than the per-protein mean
    let pred = Sctel
        .predict_modality(&trained.config, &trained.tensors, d.rna.view())
        .unwrap()
        .unwrap();
    assert_eq!(pred.dim(), d.protein.dim());
    let mean = d.protein.mean_axis(Axis(0)).unwrap();
    let constant = Array2::from_shape_fn(d.protein.dim(), |(_, j)| mean[j]);
    let (ours, base) = (mse(&pred), mse(&constant));
    println!("protein MSE: scTEL {ours:.4}, per-protein mean {base:.4}");
    assert!(ours < 0.7 * base, "scTEL {ours} vs mean {base}");

    // no gradient reaches the LSTM cells without the cell-type head (the protein heads read
    // x3): they keep their initial weights, as in the reference's unsupervised mode
    let initial = SctelNetwork::<CpuBackend>::new(
        d.rna.ncols(),
        d.protein.ncols(),
        16,
        2,
        0.15,
        4,
        trained.training.seed,
        &Default::default(),
    )
    .export();
    let find = |ts: &[NamedTensor], name: &str| ts.iter().find(|t| t.name == name).cloned();
    for name in ["lstm1.ih.weight", "lstm2.hh.bias", "lstm3.ih.weight"] {
        assert_eq!(find(&initial, name), find(&trained.tensors, name), "{name}");
    }
    assert_ne!(
        find(&initial, "input.embed.weight"),
        find(&trained.tensors, "input.embed.weight")
    );

    // save / load gives the same embedding
    let dir = std::env::temp_dir().join(format!("scssl-sctel-{}", std::process::id()));
    trained.save(&dir).unwrap();
    let loaded = TrainedModel::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(loaded.config.sctel, trained.config.sctel);
    let again = loaded
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(again.joint, emb.joint);
    Sctel
        .check_tensors(&loaded.config, &loaded.tensors)
        .unwrap();
}

#[test]
fn without_validation_every_cell_trains_for_every_epoch() {
    let model = config(SctelParams {
        val_split: 0.0,
        quantiles: Vec::new(),
        ..SctelParams::default()
    });
    let trained = train(&model, 2).unwrap();
    // 600 cells: 18 full batches and one of 24, both epochs
    assert_eq!(trained.history.step_losses.len(), 2 * 19);
    assert!(
        trained
            .history
            .epochs
            .iter()
            .all(|e| e.validation_loss.is_none())
    );
    // no quantile head in the checkpoint
    assert!(
        !trained
            .tensors
            .iter()
            .any(|t| t.name.starts_with("quantile"))
    );
}

#[test]
fn bad_input_gives_named_errors() {
    let d = data();
    // RNA only: the method needs the protein block
    let mut rna_only = config(SctelParams::default());
    rna_only.input_dims.truncate(1);
    let err = rna_only.validate().unwrap_err().to_string();
    assert!(err.contains("protein_key"), "{err}");

    // heads must divide the width
    let mut bad = config(SctelParams::default());
    bad.sctel.heads = 3;
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("model.sctel.heads"), "{err}");

    // a NaN in a training batch stops training with an error
    let model = config(SctelParams::default());
    let mut nan = d.rna.clone();
    nan[[5, 3]] = f32::NAN;
    let training = TrainConfig {
        epochs: 1,
        ..Sctel.default_training()
    };
    let result = fit(
        &model,
        &training,
        d.rna.nrows(),
        |r| {
            Ok::<_, String>(MiniBatch {
                features: vec![
                    nan.select(Axis(0), r.cells),
                    d.protein.select(Axis(0), r.cells),
                ],
                ..MiniBatch::default()
            })
        },
        |_| {},
    );
    assert!(result.is_err());

    // embedding: wrong gene count and NaN are shape errors
    // an empty checkpoint is rejected
    assert!(Sctel.check_tensors(&model, &[]).is_err());
    let net_tensors = SctelNetwork::<CpuBackend>::new(
        d.rna.ncols(),
        d.protein.ncols(),
        16,
        2,
        0.15,
        4,
        0,
        &Default::default(),
    )
    .export();
    let narrow = d.rna.slice(ndarray::s![.., ..50]).to_owned();
    let err = Sctel
        .embed(
            &model,
            &net_tensors,
            &EmbedInputs::features(&[narrow.view()]),
            EmbeddingOutput::Backbone,
        )
        .unwrap_err();
    assert!(matches!(err, ModelError::Shape(_)), "{err}");
    let mut nan_rna = d.rna.slice(ndarray::s![..10, ..]).to_owned();
    nan_rna[[0, 0]] = f32::NAN;
    let err = Sctel
        .embed(
            &model,
            &net_tensors,
            &EmbedInputs::features(&[nan_rna.view()]),
            EmbeddingOutput::Backbone,
        )
        .unwrap_err();
    assert!(matches!(err, ModelError::Shape(_)), "{err}");
    let err = Sctel
        .predict_modality(&model, &net_tensors, narrow.view())
        .unwrap_err();
    assert!(matches!(err, ModelError::Shape(_)), "{err}");
    // a checkpoint of another width is rejected
    let mut wide = config(SctelParams::default());
    wide.sctel.h_size = 32;
    assert!(Sctel.check_tensors(&wide, &net_tensors).is_err());
}
