//! CLEAR on the simulator with its own views (`clear_original`): the embedding (the key
//! encoder's) beats a random one on cell-type silhouette; fewer cells than the batch size
//! shrink batch and queue to the cell count; bad inputs give named errors.

use std::sync::OnceLock;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_augment::{Context, Pipeline};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::clear::ClearParams;
use scssl_models::{
    BatchRequest, EmbeddingOutput, MethodRef, MiniBatch, ModelConfig, TrainConfig, TrainedModel,
    fit,
};

struct Data {
    x: Array2<f32>,
    labels: Vec<u32>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let sim = SimConfig {
            n_cells: 1500,
            n_genes: 300,
            n_batches: 1,
            marker_fraction: 0.1,
            ..SimConfig::default()
        };
        let mut ad = simulate(&sim).unwrap();
        normalize_total(&mut ad, 1e4).unwrap();
        log1p(&mut ad);
        Data {
            x: ad.x.to_dense(),
            labels: ad.obs_groups("cell_type").unwrap().codes,
        }
    })
}

fn config() -> ModelConfig {
    ModelConfig {
        clear: ClearParams {
            hidden_dim: 128,
            latent_dim: 32,
            queue_size: 256,
            ..ClearParams::default()
        },
        ..ModelConfig::new(MethodRef::parse("clear").unwrap(), data().x.ncols())
    }
}

fn train(
    x: &Array2<f32>,
    model: &ModelConfig,
    training: &TrainConfig,
) -> scssl_models::error::Result<TrainedModel> {
    let method = MethodRef::parse("clear").unwrap();
    let preset = method.default_augmentation().unwrap();
    assert_eq!(preset, "clear_original");
    let pipe = Pipeline::preset(preset, training.seed).unwrap();
    let source = |r: BatchRequest<'_>| -> Result<MiniBatch, String> {
        let (a, b) = pipe
            .views(r.cells, r.epoch as u64, &Context::new(x.view()))
            .map_err(|e| e.to_string())?;
        Ok(MiniBatch::two_views(vec![a], vec![b]))
    };
    fit(model, training, x.nrows(), source, |_| {})
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

#[test]
fn trains_with_its_own_views_and_beats_a_random_embedding() {
    let d = data();
    // few steps: a faster momentum than CLEAR's 0.999 so that the key encoder (the
    // embedding) moves away from its initialisation within the test
    let mut model = config();
    model.clear.momentum = 0.9;
    let training = TrainConfig {
        epochs: 10,
        batch_size: 128,
        seed: 2,
        ..MethodRef::parse("clear").unwrap().default_training()
    };
    let trained = train(&d.x, &model, &training).unwrap();
    let losses: Vec<f64> = trained.history.epochs.iter().map(|e| e.mean_loss).collect();
    println!("losses per epoch: {losses:?}");
    let emb = trained
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(emb.joint.dim(), (d.x.nrows(), 32));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = Array2::from_shape_fn(emb.joint.dim(), |_| StandardNormal.sample(&mut rng));
    let (ours, baseline) = (silhouette(&emb.joint), silhouette(&random));
    println!("cell-type silhouette: CLEAR {ours:.3}, random {baseline:.3}");
    assert!(ours > baseline + 0.05, "CLEAR {ours} vs random {baseline}");
}

#[test]
fn few_cells_shrink_batch_and_queue() {
    let d = data();
    let x = d.x.slice(ndarray::s![..100, ..]).to_owned();
    let training = TrainConfig {
        epochs: 2,
        ..MethodRef::parse("clear").unwrap().default_training()
    };
    // batch 512 > 100 cells: one step of 100 cells per epoch instead of an error
    let trained = train(&x, &config(), &training).unwrap();
    assert_eq!(trained.history.step_losses.len(), 2);
}

#[test]
fn bad_inputs_give_named_errors() {
    let d = data();
    let mut multi = config();
    multi.input_dims = vec![d.x.ncols(), 10];
    let err = multi.validate().unwrap_err().to_string();
    assert!(err.contains("protein_key"), "{err}");
    let mut bad = d.x.slice(ndarray::s![..300, ..]).to_owned();
    bad[[3, 4]] = f32::NAN;
    let training = TrainConfig {
        epochs: 1,
        batch_size: 100,
        ..MethodRef::parse("clear").unwrap().default_training()
    };
    let err = train(&bad, &config(), &training).unwrap_err().to_string();
    assert!(err.contains("non-finite"), "{err}");
    let trained = train(
        &d.x.slice(ndarray::s![..300, ..]).to_owned(),
        &config(),
        &training,
    )
    .unwrap();
    let narrow = d.x.slice(ndarray::s![.., ..50]).to_owned();
    let err = trained
        .embed(&[narrow.view()], EmbeddingOutput::Backbone)
        .unwrap_err()
        .to_string();
    assert!(err.contains("features"), "{err}");
}
