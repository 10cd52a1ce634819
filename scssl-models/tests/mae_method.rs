//! The masked autoencoder: its masked-reconstruction error falls by at least 30 % over 10
//! epochs on the simulator, its embedding beats a random one on cell-type silhouette, the
//! gene-programme masks hide whole programmes, and bad inputs give named errors.

use std::sync::OnceLock;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scssl_data::gmt::GenePrograms;
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, gene_programs, simulate};
use scssl_models::Method;
use scssl_models::methods::mae::{Mae, MaeNetwork, draw_mask, masked_loss};
use scssl_models::{
    CpuBackend, EmbedInputs, EmbeddingOutput, Masking, MethodRef, MiniBatch, ModelConfig,
    TrainConfig, TrainedModel, fit,
};

struct Data {
    x: Array2<f32>,
    labels: Vec<u32>,
    genes: Vec<String>,
    sim: SimConfig,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        // one batch with clear cell types: the MAE does no batch correction
        let sim = SimConfig {
            n_cells: 3000,
            n_genes: 1000,
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
            genes: ad.var.index.clone(),
            sim,
        }
    })
}

fn config() -> ModelConfig {
    ModelConfig::new(MethodRef::parse("mae").unwrap(), data().x.ncols())
}

fn train(model: &ModelConfig, epochs: usize) -> TrainedModel {
    let d = data();
    let training = TrainConfig {
        epochs,
        ..MethodRef::parse("mae").unwrap().default_training()
    };
    fit(
        model,
        &training,
        d.x.nrows(),
        |r| {
            assert!(r.needs.features && r.needs.views == 0);
            Ok::<_, String>(MiniBatch {
                features: vec![d.x.select(ndarray::Axis(0), r.cells)],
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
    .unwrap()
}

/// The masked-reconstruction error of `net` on every cell, with one fixed mask, eval mode.
fn reconstruction_error(model: &ModelConfig, net: &MaeNetwork<CpuBackend>) -> f64 {
    let d = data();
    let (n, g) = d.x.dim();
    let mask = draw_mask(model, n, g, 12345).unwrap();
    let x = burn::tensor::Tensor::<CpuBackend, 2>::from_data(
        burn::tensor::TensorData::new(d.x.iter().copied().collect::<Vec<f32>>(), [n, g]),
        &Default::default(),
    );
    let loss = masked_loss(net, x, &mask, scssl_models::layers::Pass::EVAL);
    loss.into_scalar() as f64
}

fn silhouette(x: &Array2<f32>) -> f64 {
    scssl_metrics::silhouette::silhouette_label(x.view(), &data().labels, None).unwrap()
}

#[test]
fn random_masking_error_falls_and_the_embedding_beats_random() {
    let model = config();
    let before = reconstruction_error(&model, &MaeNetwork::new(&model, 0, &Default::default()));
    let trained = train(&model, 10);
    let net = Mae::cpu_network(&trained.config, &trained.tensors).unwrap();
    let after = reconstruction_error(&model, &net);
    println!(
        "masked reconstruction error: {before:.5} → {after:.5} ({:.1} % lower)",
        100.0 * (1.0 - after / before)
    );
    assert!(
        after <= 0.7 * before,
        "the error fell from {before} to {after}, less than 30 %"
    );
    let d = data();
    let emb = trained
        .embed(&[d.x.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(emb.joint.dim(), (d.x.nrows(), 64));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = Array2::from_shape_fn(emb.joint.dim(), |_| StandardNormal.sample(&mut rng));
    let (ours, baseline) = (silhouette(&emb.joint), silhouette(&random));
    println!("silhouette: MAE {ours:.3}, random {baseline:.3}");
    assert!(ours > baseline + 0.05, "MAE {ours} vs random {baseline}");
    // eval-mode embedding is deterministic and reloads from the checkpoint tensors
    let again = Mae
        .embed(
            &trained.config,
            &trained.tensors,
            &EmbedInputs::features(&[d.x.view()]),
            EmbeddingOutput::Backbone,
        )
        .unwrap();
    assert_eq!(again.joint, emb.joint);
}

#[test]
fn the_reference_sigmoid_output_stays_in_the_unit_interval() {
    let mut model = config();
    model.mae.output_activation = scssl_models::MaeOutput::Sigmoid;
    let net = MaeNetwork::<CpuBackend>::new(&model, 3, &Default::default());
    let d = data();
    let x = burn::tensor::Tensor::<CpuBackend, 2>::from_data(
        burn::tensor::TensorData::new(
            d.x.slice(ndarray::s![..50, ..])
                .iter()
                .copied()
                .collect::<Vec<f32>>(),
            [50, d.x.ncols()],
        ),
        &Default::default(),
    );
    let (_, recon) = net.forward(x, scssl_models::layers::Pass::EVAL);
    let v: Vec<f32> = recon.into_data().to_vec().unwrap();
    assert!(v.iter().all(|&r| r > 0.0 && r < 1.0));
}

fn programmes() -> GenePrograms {
    let d = data();
    GenePrograms::encode(&gene_programs(&d.sim).unwrap(), &d.genes).unwrap()
}

#[test]
fn gene_programme_masks_hide_whole_programmes_for_every_cell() {
    let mut model = config();
    model.mae.masking = Masking::GeneProgram;
    model.gene_program_sets = Some(programmes());
    let g = data().x.ncols();
    let mask = draw_mask(&model, 5, g, 7).unwrap();
    let first = &mask.keep[..g];
    for row in mask.keep.chunks(g) {
        assert_eq!(row, first, "the same mask for every cell");
    }
    let masked = first.iter().filter(|k| **k == 0.0).count();
    assert!(masked > 0 && masked < g);
    assert!((mask.scale - g as f32 / (g - masked) as f32).abs() < 1e-4);
    // ⌊8 · 0.5⌋ = 4 programmes: each is either wholly masked or not masked as a unit
    let progs = model.gene_program_sets.as_ref().unwrap();
    let hidden = progs
        .sets
        .iter()
        .filter(|s| s.genes.iter().all(|&j| first[j] == 0.0))
        .count();
    assert!(hidden >= 4, "{hidden} programmes wholly masked");
    // and it trains
    let trained = train(&model, 2);
    assert!(trained.history.step_losses.iter().all(|l| l.is_finite()));
}

#[test]
fn bad_configurations_are_named() {
    let mut model = config();
    model.mae.masking = Masking::GeneProgram;
    let e = draw_mask(&model, 2, 4, 0).unwrap_err().to_string();
    assert!(e.contains("model.gene_programs"), "{e}");
    model.input_dims.push(10);
    let e = model.validate().unwrap_err().to_string();
    assert!(e.contains("protein_key"), "{e}");
    let mut model = config();
    model.mae.mask_rate = 1.0;
    let e = model.validate().unwrap_err().to_string();
    assert!(e.contains("model.mae.mask_rate"), "{e}");
    // too few programmes for the rate: ⌊1 · 0.5⌋ = 0
    let mut model = config();
    model.mae.masking = Masking::GeneProgram;
    let mut one = programmes();
    one.sets.truncate(1);
    model.gene_program_sets = Some(one);
    let training = TrainConfig {
        epochs: 1,
        ..MethodRef::parse("mae").unwrap().default_training()
    };
    let e = fit(
        &model,
        &training,
        data().x.nrows(),
        |_| Ok::<_, String>(MiniBatch::default()),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.mae.mask_rate"), "{e}");
}
