//! Concerto trains on simulated cells (RNA alone, and RNA + protein added before the heads),
//! its L2-normalised teacher embedding beats a random embedding on cell-type silhouette, the
//! embedding survives a save/load round trip, and bad input gives named errors.
//!
//! Dropout (0.1, before the heads) is Concerto's only augmentation, so teacher and student
//! can match each cell without much cell-type structure: on this simulator (1,200 cells,
//! 200 genes, two batches, strong markers) the trained embedding scores ≈ 0.57 on cell-type
//! silhouette, an untrained one ≈ 0.50 (= random), PCA 0.68 (measured while writing this
//! test; RNA only, batches of 16, 6 epochs at lr 1e-3).

use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::concerto::Concerto;
use scssl_models::{
    ConcertoParams, EmbeddingOutput, Method, MethodRef, MiniBatch, ModelConfig, ModelError,
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
        let sim = SimConfig {
            n_cells: 1200,
            n_genes: 200,
            n_proteins: 12,
            n_batches: 2,
            marker_fraction: 0.1,
            marker_log2fc: 3.0,
            ..SimConfig::default()
        };
        let mut ad = simulate(&sim).unwrap();
        let protein = ad.obsm_get("protein_expression").unwrap().mapv(f32::ln_1p);
        normalize_total(&mut ad, 1e4).unwrap();
        log1p(&mut ad);
        Data {
            rna: ad.x.to_dense(),
            protein,
            labels: ad.obs_groups("cell_type").unwrap().codes,
        }
    })
}

fn config(multimodal: bool) -> ModelConfig {
    let d = data();
    let mut dims = vec![d.rna.ncols()];
    if multimodal {
        dims.push(d.protein.ncols());
    }
    ModelConfig {
        input_dims: dims,
        concerto: ConcertoParams {
            embedding_dim: 16,
            head_dim: 32,
            ..ConcertoParams::default()
        },
        ..ModelConfig::new(MethodRef::parse("concerto").unwrap(), d.rna.ncols())
    }
}

fn matrices(multimodal: bool) -> Vec<&'static Array2<f32>> {
    let d = data();
    if multimodal {
        vec![&d.rna, &d.protein]
    } else {
        vec![&d.rna]
    }
}

fn train(model: &ModelConfig, epochs: usize) -> Result<TrainedModel, ModelError> {
    let mats = matrices(model.input_dims.len() == 2);
    // 75 steps per epoch: Keras' BatchNorm momentum (0.99) needs a few hundred steps before
    // the moving statistics used at inference match the batches' (with batches of 64, i.e.
    // 18 steps per epoch, four epochs leave many all-zero ReLU outputs in eval mode)
    let training = TrainConfig {
        epochs,
        lr: 1e-3,
        batch_size: 16,
        schedule: Concerto::schedule_for(epochs),
        ..Concerto.default_training()
    };
    fit(
        model,
        &training,
        mats[0].nrows(),
        |r| {
            assert!(r.needs.features && r.needs.views == 0);
            Ok::<_, String>(MiniBatch {
                features: mats.iter().map(|m| m.select(Axis(0), r.cells)).collect(),
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

fn random_silhouette(dim: (usize, usize)) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = Array2::from_shape_fn(dim, |_| StandardNormal.sample(&mut rng));
    silhouette(&random)
}

fn beats_random(multimodal: bool) -> TrainedModel {
    let model = config(multimodal);
    let trained = train(&model, 6).unwrap();
    assert!(trained.history.step_losses.iter().all(|l| l.is_finite()));
    let mats = matrices(multimodal);
    let views: Vec<_> = mats.iter().map(|m| m.view()).collect();
    let emb = trained.embed(&views, EmbeddingOutput::Backbone).unwrap();
    assert_eq!(emb.joint.dim(), (data().rna.nrows(), 32));
    assert_eq!(emb.per_modality.len(), mats.len());
    for row in emb.joint.rows() {
        let norm = row.dot(&row).sqrt();
        assert!(
            norm < 1.0 + 1e-4,
            "rows are L2-normalised (or zero): {norm}"
        );
    }
    let (ours, baseline) = (silhouette(&emb.joint), random_silhouette(emb.joint.dim()));
    let rna_only = silhouette(&emb.per_modality[0]);
    println!(
        "silhouette (multimodal {multimodal}): Concerto {ours:.3}, its RNA part {rna_only:.3}, random {baseline:.3}; loss {:.3} → {:.3}",
        trained.history.step_losses[0],
        trained.history.step_losses.last().unwrap()
    );
    assert!(
        ours > baseline + 0.05,
        "Concerto {ours} vs random {baseline}"
    );
    assert!(
        rna_only > baseline + 0.05,
        "RNA part {rna_only} vs random {baseline}"
    );
    trained
}

#[test]
fn rna_only_embedding_beats_random_and_reloads() {
    let trained = beats_random(false);
    let d = data();
    let emb = trained
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    trained.save(&dir.path().join("concerto")).unwrap();
    let loaded = TrainedModel::load(&dir.path().join("concerto")).unwrap();
    let again = loaded
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(again.joint, emb.joint);
}

#[test]
fn rna_and_protein_embedding_beats_random() {
    beats_random(true);
}

#[test]
fn bad_input_is_named() {
    // a NaN in the training data: the loss is not finite, the run fails loudly
    let d = data();
    let mut bad = d.rna.clone();
    bad[[3, 7]] = f32::NAN;
    let model = config(false);
    let training = TrainConfig {
        epochs: 1,
        ..Concerto.default_training()
    };
    let err = fit(
        &model,
        &training,
        bad.nrows(),
        |r| {
            Ok::<_, String>(MiniBatch {
                features: vec![bad.select(Axis(0), r.cells)],
                ..MiniBatch::default()
            })
        },
        |_| {},
    );
    assert!(err.is_err(), "training on a NaN must fail");
    // embedding: a NaN, then the wrong number of features
    let trained = train(&model, 1).unwrap();
    let e = trained
        .embed(&[bad.view()], EmbeddingOutput::Backbone)
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape(_)), "{e}");
    let narrow = d.rna.slice(ndarray::s![.., ..150]).to_owned();
    let e = trained
        .embed(&[narrow.view()], EmbeddingOutput::Backbone)
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape(_)), "{e}");
    // a multimodal model given RNA alone
    let multi = config(true);
    let trained = train(&multi, 1).unwrap();
    let e = trained
        .embed(&[d.rna.view()], EmbeddingOutput::Backbone)
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape(_)), "{e}");
    // settings
    let mut m = config(false);
    m.concerto.dropout = 1.0;
    let e = m.validate().unwrap_err().to_string();
    assert!(e.contains("model.concerto.dropout"), "{e}");
    let mut m = config(false);
    m.concerto.temperature = 0.0;
    let e = m.validate().unwrap_err().to_string();
    assert!(e.contains("model.concerto.temperature"), "{e}");
    let mut m = config(true);
    m.input_dims.push(5);
    let e = m.validate().unwrap_err().to_string();
    assert!(e.contains("model.input_dims"), "{e}");
}

#[test]
fn defaults_are_the_reference_values() {
    let t = Concerto.default_training();
    assert_eq!(
        (t.epochs, t.batch_size, t.lr, t.weight_decay),
        (100, 64, 1e-4, 0.0)
    );
    assert_eq!(t.schedule.to_string(), "polynomial:15000:0.01");
    // the decay ends at 1 % of the rate, after 150 training steps per epoch
    assert!((t.schedule.lr_at(1e-4, 0, 100, 15_000, 100_000) - 1e-6).abs() < 1e-15);
    assert!((t.schedule.lr_at(1e-4, 0, 100, 7_500, 100_000) - 0.505e-4).abs() < 1e-12);
    let p = ConcertoParams::default();
    assert_eq!((p.embedding_dim, p.head_dim), (128, 128));
    assert_eq!((p.dropout, p.temperature), (0.1, 0.1));
    let needs = Concerto.needs(&config(false));
    assert!(needs.features && needs.views == 0 && !needs.counts);
}
