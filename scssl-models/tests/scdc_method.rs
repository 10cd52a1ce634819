//! SCDC (interpretation): trains on simulated counts from several batches and its feature
//! embedding beats a random one on cell-type silhouette; bad input gives named errors.

use std::sync::OnceLock;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::scdc::{Scdc, ScdcParams};
use scssl_models::{
    CpuBackend, EmbeddingOutput, LrSchedule, MethodRef, MiniBatch, ModelConfig, TrainConfig,
    TrainedModel, fit,
};

struct Data {
    x: Array2<f32>,
    counts: Array2<f32>,
    batches: Vec<u32>,
    labels: Vec<u32>,
}

fn make(sim: SimConfig) -> Data {
    let mut ad = simulate(&sim).unwrap();
    let counts = ad.x.to_dense();
    normalize_total(&mut ad, 1e4).unwrap();
    log1p(&mut ad);
    Data {
        x: ad.x.to_dense(),
        counts,
        batches: ad.obs_groups("batch").unwrap().codes,
        labels: ad.obs_groups("cell_type").unwrap().codes,
    }
}

/// 1,200 simulated cells × 300 genes, 3 batches, 5 cell types (10 % marker genes each).
fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        make(SimConfig {
            n_cells: 1200,
            n_genes: 300,
            n_batches: 3,
            n_cell_types: 5,
            marker_fraction: 0.1,
            seed: 2,
            ..SimConfig::default()
        })
    })
}

fn config(d: &Data, params: ScdcParams) -> ModelConfig {
    ModelConfig {
        n_batches: *d.batches.iter().max().unwrap() as usize + 1,
        n_cell_types: *d.labels.iter().max().unwrap() as usize + 1,
        scdc: params,
        ..ModelConfig::new(MethodRef::parse("scdc").unwrap(), d.x.ncols())
    }
}

fn small() -> ScdcParams {
    ScdcParams {
        hidden_units: vec![64, 32],
        latent_dim: 16,
        ..ScdcParams::default()
    }
}

fn train(d: &Data, model: &ModelConfig, epochs: usize) -> scssl_models::Result<TrainedModel> {
    let training = TrainConfig {
        epochs,
        batch_size: 64,
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        seed: 3,
        ..MethodRef::parse("scdc").unwrap().default_training()
    };
    fit(
        model,
        &training,
        d.x.nrows(),
        |r| {
            assert!(r.needs.features && r.needs.counts && r.needs.batch_codes);
            Ok::<_, String>(MiniBatch {
                features: vec![d.x.select(ndarray::Axis(0), r.cells)],
                counts: Some(d.counts.select(ndarray::Axis(0), r.cells)),
                batch_codes: Some(r.cells.iter().map(|&i| d.batches[i]).collect()),
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
}

fn silhouette(x: &Array2<f32>, labels: &[u32]) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), labels, None).unwrap()
}

fn random_like(x: &Array2<f32>) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    Array2::from_shape_fn(x.dim(), |_| StandardNormal.sample(&mut rng))
}

/// Silhouettes of z (cell type, batch), b (cell type, batch), random, cluster histogram.
fn report(d: &Data, m: &TrainedModel, name: &str) -> (f64, f64) {
    use burn::tensor::{Tensor, TensorData};
    let emb = m
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap()
        .joint;
    let net = Scdc::cpu_network(&m.config, &m.tensors).unwrap();
    let (n, g) = d.x.dim();
    let x = Tensor::<CpuBackend, 2>::from_data(
        TensorData::new(d.x.iter().copied().collect::<Vec<f32>>(), [n, g]),
        &Default::default(),
    );
    let b = net.batch_encoder.forward(x.clone(), false);
    let logits = net.cluster_head.forward(net.embed(x), false);
    let k = logits.dims()[1];
    let arg: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let mut hist = vec![0usize; k];
    for a in arg {
        hist[a as usize] += 1;
    }
    let bv: Vec<f32> = b.clone().into_data().convert::<f32>().to_vec().unwrap();
    let b = Array2::from_shape_vec((n, bv.len() / n), bv).unwrap();
    let (zc, zb) = (silhouette(&emb, &d.labels), silhouette(&emb, &d.batches));
    let (bc, bb) = (silhouette(&b, &d.labels), silhouette(&b, &d.batches));
    let random = silhouette(&random_like(&emb), &d.labels);
    println!(
        "{name}: z cell {zc:.3} batch {zb:.3} | b cell {bc:.3} batch {bb:.3} | random {random:.3} | clusters {hist:?}"
    );
    (zc, random)
}

#[test]
fn scdc_trains_and_its_feature_embedding_separates_cell_types() {
    let d = data();
    let model = config(d, small());
    let m = train(d, &model, 30).unwrap();
    let (ours, random) = report(d, &m, "SCDC 30 epochs");
    // measured 0.689 against 0.494 (the published settings: 0.523)
    assert!(ours > random + 0.1, "SCDC {ours} vs random {random}");
    // the embedding is deterministic and reloads from the checkpoint tensors
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    let again = TrainedModel::load(dir.path()).unwrap();
    let a = m
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap()
        .joint;
    let b = again
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap()
        .joint;
    assert_eq!(a, b);
    assert_eq!(a.dim(), (d.x.nrows(), 16));
}

#[test]
fn bad_input_gives_named_errors() {
    let d = data();
    let model = config(d, small());
    // NaN in the features
    let mut bad = Data {
        x: d.x.clone(),
        counts: d.counts.clone(),
        batches: d.batches.clone(),
        labels: d.labels.clone(),
    };
    bad.x[[3, 4]] = f32::NAN;
    assert!(train(&bad, &model, 1).is_err(), "NaN input trained");
    // wrong width at embed
    let m = train(d, &model, 1).unwrap();
    let narrow = d.x.slice(ndarray::s![.., ..10]).to_owned();
    let err = m
        .embed(&[narrow.view()], EmbeddingOutput::Backbone)
        .unwrap_err();
    assert!(matches!(err, scssl_models::ModelError::Shape(_)), "{err}");
    // no K
    let no_k = ModelConfig {
        n_cell_types: 0,
        ..model.clone()
    };
    let err = train(d, &no_k, 1).unwrap_err().to_string();
    assert!(err.contains("model.scdc.n_clusters"), "{err}");
    // RNA + protein
    let multi = ModelConfig {
        input_dims: vec![d.x.ncols(), 12],
        ..model.clone()
    };
    let err = train(d, &multi, 1).unwrap_err().to_string();
    assert!(err.contains("protein_key"), "{err}");
}

#[test]
#[ignore = "diagnostics: the published settings against the project's"]
fn diagnose() {
    let d = data();
    let published = ScdcParams {
        batch_weight: 0.01,
        unshuffled_weight: 1.0,
        decoder_sees_features: false,
        hard_gumbel: false,
        balance_weight: 0.0,
        ..small()
    };
    for (name, p) in [("published", published), ("project", small())] {
        let m = train(d, &config(d, p), 30).unwrap();
        report(d, &m, name);
    }
}
