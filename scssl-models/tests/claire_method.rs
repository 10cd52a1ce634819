//! CLAIRE on the simulator: it trains from anchored cells only, its embedding beats a random
//! one on cell-type silhouette, the GMM re-filtering removes most wrong anchor pairs of a
//! synthetic set with 30 % wrong pairs, and bad inputs give named errors.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::methods::claire::{ClaireParams, prepare, refilter};
use scssl_models::{
    BatchRequest, EmbeddingOutput, MethodRef, MiniBatch, ModelConfig, TrainConfig, TrainedModel,
    fit,
};

struct Data {
    x: Array2<f32>,
    labels: Vec<u32>,
    batches: Vec<u32>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let sim = SimConfig {
            n_cells: 1500,
            n_genes: 400,
            n_batches: 3,
            marker_fraction: 0.1,
            ..SimConfig::default()
        };
        let mut ad = simulate(&sim).unwrap();
        normalize_total(&mut ad, 1e4).unwrap();
        log1p(&mut ad);
        Data {
            x: ad.x.to_dense(),
            labels: ad.obs_groups("cell_type").unwrap().codes,
            batches: ad.obs_groups("batch").unwrap().codes,
        }
    })
}

fn config(params: ClaireParams) -> ModelConfig {
    ModelConfig {
        claire: params,
        ..ModelConfig::new(MethodRef::parse("claire").unwrap(), data().x.ncols())
    }
}

fn small() -> ClaireParams {
    ClaireParams {
        latent_dim: 32,
        queue_size: 256,
        refilter_epochs: vec![2],
        ..ClaireParams::default()
    }
}

fn training(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 128,
        lr: 1e-3,
        seed: 3,
        ..MethodRef::parse("claire").unwrap().default_training()
    }
}

/// Trains on `x`/`batches`, recording the cells of every training step.
fn train_on(
    x: &Array2<f32>,
    batches: &[u32],
    model: &ModelConfig,
    training: &TrainConfig,
    seen: &RefCell<BTreeSet<usize>>,
) -> scssl_models::error::Result<TrainedModel> {
    let n = x.nrows();
    let source = |r: BatchRequest<'_>| -> Result<MiniBatch, String> {
        if r.cells.len() < n {
            seen.borrow_mut().extend(r.cells.iter().copied());
        }
        Ok(MiniBatch {
            features: vec![x.select(ndarray::Axis(0), r.cells)],
            batch_codes: Some(r.cells.iter().map(|&i| batches[i]).collect()),
            ..MiniBatch::default()
        })
    };
    fit(model, training, n, source, |_| {})
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

#[test]
fn trains_on_anchored_cells_and_beats_a_random_embedding() {
    let d = data();
    let model = config(small());
    let training = training(20);
    let seen = RefCell::new(BTreeSet::new());
    let trained = train_on(&d.x, &d.batches, &model, &training, &seen).unwrap();
    let prepared = prepare(&model.claire, d.x.clone(), &d.batches, training.seed).unwrap();
    let anchored: BTreeSet<usize> = prepared
        .pairs
        .iter()
        .flat_map(|&(a, b)| [a as usize, b as usize])
        .collect();
    let seen = seen.into_inner();
    println!(
        "{} anchor pairs over {} of {} cells; {} cells trained on",
        prepared.pairs.len(),
        anchored.len(),
        d.x.nrows(),
        seen.len()
    );
    assert!(anchored.len() < d.x.nrows() && !seen.is_empty());
    assert!(
        seen.is_subset(&anchored),
        "a cell without anchors was trained on"
    );
    let losses: Vec<f64> = trained.history.epochs.iter().map(|e| e.mean_loss).collect();
    println!("losses per epoch: {losses:?}");
    assert_eq!(losses.len(), 20);
    let emb = trained
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(emb.joint.dim(), (d.x.nrows(), 32));
    // a non-negative unit vector per cell
    for row in emb.joint.rows() {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4 && row.iter().all(|v| *v >= 0.0));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = Array2::from_shape_fn(emb.joint.dim(), |_| StandardNormal.sample(&mut rng));
    let (ours, baseline) = (silhouette(&emb.joint), silhouette(&random));
    println!("cell-type silhouette: CLAIRE {ours:.3}, random {baseline:.3}");
    assert!(ours > baseline + 0.05, "CLAIRE {ours} vs random {baseline}");
    // a saved and reloaded model embeds the same
    let dir = std::env::temp_dir().join(format!("scssl-claire-{}", std::process::id()));
    trained.save(&dir).unwrap();
    let loaded = TrainedModel::load(&dir).unwrap();
    let again = loaded
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(again.joint, emb.joint);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn refiltering_removes_most_wrong_pairs() {
    // 10 cell types, each a direction of a 16-d non-negative embedding plus noise; 1,000
    // anchor pairs, 30 % of them between different types
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (types, dim, cells) = (10, 16, 2000);
    let centres: Vec<Vec<f64>> = (0..types)
        .map(|_| (0..dim).map(|_| rng.random::<f64>()).collect())
        .collect();
    let label: Vec<usize> = (0..cells).map(|i| i % types).collect();
    let emb: Vec<Vec<f64>> = label
        .iter()
        .map(|&t| {
            let v: Vec<f64> = centres[t]
                .iter()
                .map(|c| (c + 0.15 * rng.sample::<f64, _>(StandardNormal)).max(0.0))
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let mut pairs = Vec::new();
    let mut right = Vec::new();
    while pairs.len() < 1000 {
        let a = rng.random_range(0..cells);
        let wrong = pairs.len() % 10 < 3;
        let b = loop {
            let b = rng.random_range(0..cells);
            if b != a && (label[a] == label[b]) != wrong {
                break b;
            }
        };
        pairs.push((a, b));
        right.push(!wrong);
    }
    let sims: Vec<f64> = pairs
        .iter()
        .map(|&(a, b)| emb[a].iter().zip(&emb[b]).map(|(u, v)| u * v).sum())
        .collect();
    let keep = refilter(&sims, 0.5).unwrap();
    let kept_right = keep.iter().zip(&right).filter(|(k, r)| **k && **r).count();
    let kept_wrong = keep.iter().zip(&right).filter(|(k, r)| **k && !**r).count();
    println!(
        "right pairs kept: {kept_right} of 700 ({:.1} %), wrong pairs removed: {} of 300 ({:.1} %)",
        kept_right as f64 / 7.0,
        300 - kept_wrong,
        (300 - kept_wrong) as f64 / 3.0
    );
    assert!(
        kept_right >= 630,
        "only {kept_right} of 700 right pairs kept"
    );
    assert!(kept_wrong <= 60, "{kept_wrong} of 300 wrong pairs kept");
}

#[test]
fn bad_inputs_give_named_errors() {
    let d = data();
    let seen = RefCell::new(BTreeSet::new());
    // one batch: no anchors between batches
    let one = vec![0u32; d.x.nrows()];
    let err = train_on(&d.x, &one, &config(small()), &training(1), &seen)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.batch_key") && err.contains("1 batch"),
        "{err}"
    );
    // RNA + protein
    let mut multi = config(small());
    multi.input_dims = vec![d.x.ncols(), 10];
    let err = multi.validate().unwrap_err().to_string();
    assert!(err.contains("protein_key"), "{err}");
    // anchors naming cells beyond the data
    let mut given = small();
    given.anchor_pairs = Some(vec![(0, 1), (3, 99_999)]);
    let err = train_on(&d.x, &d.batches, &config(given), &training(1), &seen)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.claire.anchors") && err.contains("99999"),
        "{err}"
    );
    // a NaN in the input
    let mut bad = d.x.clone();
    bad[[5, 7]] = f32::NAN;
    let err = train_on(&bad, &d.batches, &config(small()), &training(1), &seen)
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn given_anchors_are_used_and_a_wrong_width_is_refused() {
    let d = data();
    // anchors between same-type cells of batches 0 and 1 only
    let mut pairs = Vec::new();
    for i in 0..d.x.nrows() {
        if d.batches[i] != 0 {
            continue;
        }
        if let Some(j) = (0..d.x.nrows()).find(|&j| d.batches[j] == 1 && d.labels[j] == d.labels[i])
        {
            pairs.push((i as u32, j as u32));
        }
        if pairs.len() == 200 {
            break;
        }
    }
    let mut given = small();
    given.anchor_pairs = Some(pairs.clone());
    given.refilter_epochs = vec![];
    let seen = RefCell::new(BTreeSet::new());
    let trained = train_on(&d.x, &d.batches, &config(given), &training(2), &seen).unwrap();
    let anchored: BTreeSet<usize> = pairs
        .iter()
        .flat_map(|&(a, b)| [a as usize, b as usize])
        .collect();
    assert!(seen.into_inner().is_subset(&anchored));
    let narrow = d.x.slice(ndarray::s![.., ..100]).to_owned();
    let err = trained
        .embed(&[narrow.view()], EmbeddingOutput::Backbone)
        .unwrap_err()
        .to_string();
    assert!(err.contains("features"), "{err}");
}
