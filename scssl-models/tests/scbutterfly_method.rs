//! scButterfly-B trains its three phases on simulated CITE-seq data (log1p RNA, CLR protein),
//! its embedding beats a random one on cell-type silhouette, it predicts the protein block from
//! RNA, it is deterministic in its seed, survives a save/load round trip, and rejects bad input
//! with named errors.

use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::pp::{ClrAxis, clr};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::scbutterfly::Scbutterfly;
use scssl_models::{
    ComputeDevice, EmbeddingOutput, Method, MethodRef, MiniBatch, ModelConfig, ScbutterflyParams,
    TrainConfig, TrainEvent, TrainedModel, fit,
};

struct Data {
    rna: Array2<f32>,
    protein: Array2<f32>,
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
            rna: ad.x.to_dense().mapv(f32::ln_1p),
            protein: clr(ad.obsm_get("protein_expression").unwrap(), ClrAxis::Cells).unwrap(),
            labels: ad.obs_groups("cell_type").unwrap().codes,
        }
    })
}

fn config(epochs: [usize; 3]) -> ModelConfig {
    let d = data();
    ModelConfig {
        input_dims: vec![d.rna.ncols(), d.protein.ncols()],
        scbutterfly: ScbutterflyParams {
            rna_hidden: 32,
            adt_hidden: 16,
            encoder_dim: 16,
            embed_dim: 8,
            rna_pretrain_epochs: epochs[0],
            adt_pretrain_epochs: epochs[1],
            integrative_epochs: Some(epochs[2]),
            ..ScbutterflyParams::default()
        },
        ..ModelConfig::new(MethodRef::parse("scbutterfly").unwrap(), d.rna.ncols())
    }
}

fn train_with(
    model: &ModelConfig,
    training: &TrainConfig,
    rna: &Array2<f32>,
) -> Result<TrainedModel, scssl_models::ModelError> {
    let d = data();
    fit(
        model,
        training,
        rna.nrows(),
        |r| {
            assert!(r.needs.features);
            let pick = |m: &Array2<f32>| m.select(Axis(0), r.cells);
            Ok::<_, String>(MiniBatch {
                features: vec![pick(rna), pick(&d.protein)],
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
}

fn train(model: &ModelConfig) -> TrainedModel {
    train_with(model, &Scbutterfly.default_training(), &data().rna).unwrap()
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&v| v as f64).sum::<f64>() / n,
        b.iter().map(|&v| v as f64).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-12)
}

#[test]
fn trains_three_phases_embeds_and_predicts_protein() {
    let d = data();
    let model = config([10, 10, 20]);
    let mut events = (0, 0);
    // a 10× learning rate: with 8 steps per epoch, the output BatchNorms' β (the per-feature
    // levels, which start at 0) would otherwise take hundreds of epochs to reach the data's
    let training = TrainConfig {
        lr: 1e-2,
        ..Scbutterfly.default_training()
    };
    let trained = fit(
        &model,
        &training,
        d.rna.nrows(),
        |r| {
            let pick = |m: &Array2<f32>| m.select(Axis(0), r.cells);
            Ok::<_, String>(MiniBatch {
                features: vec![pick(&d.rna), pick(&d.protein)],
                ..MiniBatch::default()
            })
        },
        |e| match e {
            TrainEvent::Step { .. } => events.0 += 1,
            TrainEvent::Epoch(_) => events.1 += 1,
        },
    )
    .unwrap();
    let h = &trained.history;
    // 480 training cells (20 % held out), batches of 64: 7 full batches and one of 32
    assert_eq!(h.epochs.len(), 40);
    assert_eq!(h.step_losses.len(), 40 * 8);
    assert_eq!(events, (320, 40));
    assert!(h.step_losses.iter().all(|l| l.is_finite()));
    assert!(
        h.epochs
            .iter()
            .all(|e| e.validation_loss.is_some_and(f64::is_finite))
    );
    // every phase lowers its validation reconstruction
    let v: Vec<f64> = h
        .epochs
        .iter()
        .map(|e| e.validation_loss.unwrap())
        .collect();
    println!("validation losses: {v:.4?}");
    assert!(v[9] < v[0] && v[19] < v[10] && v[39] < v[20], "{v:?}");

    let emb = trained
        .embed(&[d.rna.view(), d.protein.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(emb.joint.dim(), (600, 8));
    assert_eq!(emb.per_modality.len(), 2);
    let mean = (&emb.per_modality[0] + &emb.per_modality[1]) / 2.0;
    assert!(
        emb.joint
            .iter()
            .zip(&mean)
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let random = Array2::from_shape_fn(emb.joint.dim(), |_| StandardNormal.sample(&mut rng));
    let (joint, rna_only, baseline) = (
        silhouette(&emb.joint),
        silhouette(&emb.per_modality[0]),
        silhouette(&random),
    );
    println!("silhouette: joint {joint:.3}, μ_r {rna_only:.3}, random {baseline:.3}");
    assert!(
        joint > baseline + 0.05,
        "joint {joint} vs random {baseline}"
    );

    // a query with RNA only: per modality [μ_r], joint μ_r, the same μ_r as with both
    let query = trained
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(query.per_modality.len(), 1);
    assert_eq!(query.joint, query.per_modality[0]);
    assert_eq!(query.joint, emb.per_modality[0]);

    // R→ADT: clipped at 1e-4 from below; each protein's prediction follows the protein across
    // cells (the per-protein level is slow to learn: the ADT decoder ends in a BatchNorm whose
    // β starts at 0 and moves by about the learning rate per step)
    let pred = trained
        .config
        .method
        .predict_modality(&trained.config, &trained.tensors, d.rna.view())
        .unwrap()
        .unwrap();
    assert_eq!(pred.dim(), d.protein.dim());
    assert!(pred.iter().all(|&v| v == 0.0 || v >= 1e-4));
    let r: f64 = pred
        .axis_iter(Axis(1))
        .zip(d.protein.axis_iter(Axis(1)))
        .map(|(p, t)| pearson(&p.to_vec(), &t.to_vec()))
        .sum::<f64>()
        / d.protein.ncols() as f64;
    println!("mean per-protein Pearson r (across cells) of the R→ADT prediction: {r:.3}");
    assert!(r > 0.05, "{r}");
    // without the floor: the raw prediction, which the floor only zeroes below 1e-4
    let mut raw = trained.config.clone();
    raw.scbutterfly.prediction_floor = None;
    let unclipped = raw
        .method
        .predict_modality(&raw, &trained.tensors, d.rna.view())
        .unwrap()
        .unwrap();
    assert!(
        unclipped
            .iter()
            .zip(&pred)
            .all(|(&u, &p)| if u < 1e-4 { p == 0.0 } else { p == u })
    );
}

#[test]
fn same_seed_same_model_and_save_load_round_trip() {
    let d = data();
    let model = config([1, 1, 1]);
    let a = train(&model);
    let b = train(&model);
    assert_eq!(a.tensors, b.tensors);
    let other = train_with(
        &model,
        &TrainConfig {
            seed: 1,
            ..Scbutterfly.default_training()
        },
        &d.rna,
    )
    .unwrap();
    assert_ne!(a.tensors, other.tensors);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model");
    a.save(&path).unwrap();
    let loaded = TrainedModel::load(&path).unwrap();
    let inputs = [d.rna.view(), d.protein.view()];
    let (x, y) = (
        a.embed(&inputs, EmbeddingOutput::Backbone).unwrap(),
        loaded.embed(&inputs, EmbeddingOutput::Backbone).unwrap(),
    );
    assert_eq!(x.joint, y.joint);
    assert_eq!(x.per_modality, y.per_modality);
    // every tensor is checked on load: a missing one is named
    let mut broken = a.tensors.clone();
    broken.retain(|t| t.name != "translator.to_adt.bn.running_var");
    let e = Scbutterfly
        .check_tensors(&a.config, &broken)
        .unwrap_err()
        .to_string();
    assert!(e.contains("translator.to_adt.bn.running_var"), "{e}");
}

#[test]
fn bad_input_is_named() {
    let d = data();
    let mut rna_only = config([1, 1, 1]);
    rna_only.input_dims.truncate(1);
    let e = rna_only.validate().unwrap_err().to_string();
    assert!(e.contains("protein_key"), "{e}");

    let mut nan = d.rna.clone();
    nan[[17, 3]] = f32::NAN;
    let e = train_with(&config([1, 1, 1]), &Scbutterfly.default_training(), &nan)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite"), "{e}");

    let e = train_with(
        &config([1, 1, 1]),
        &TrainConfig {
            device: ComputeDevice::Cuda(0),
            ..Scbutterfly.default_training()
        },
        &d.rna,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cuda") || e.contains("CUDA"), "{e}");

    let trained = train(&config([1, 1, 1]));
    let narrow = d.rna.slice(ndarray::s![.., ..100]).to_owned();
    let e = trained
        .embed(
            &[narrow.view(), d.protein.view()],
            EmbeddingOutput::Backbone,
        )
        .unwrap_err();
    assert!(matches!(e, scssl_models::ModelError::Shape(_)), "{e}");
    let e = trained
        .config
        .method
        .predict_modality(&trained.config, &trained.tensors, narrow.view())
        .unwrap_err();
    assert!(matches!(e, scssl_models::ModelError::Shape(_)), "{e}");

    let mut bad = config([1, 1, 1]);
    bad.scbutterfly.rna_noise = 1.0;
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("rna_noise"), "{e}");
}
