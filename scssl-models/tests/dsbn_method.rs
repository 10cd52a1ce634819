//! Domain-specific BatchNorm: trains and embeds with each cell's batch (SimCLR, and MoCo with
//! its momentum copy), a query batch training never saw uses the mean of the domains' norms,
//! a domain with one cell in a mini-batch neither crashes nor updates its statistics, the two
//! second-BatchNorm modes differ, and bad inputs give named errors.

use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::{
    DsbnSecondNorm, EmbedInputs, EmbeddingOutput, MethodRef, MiniBatch, ModelConfig, NamedTensor,
    TrainConfig, TrainedModel, fit,
};

struct Data {
    x: Array2<f32>,
    batches: Vec<u32>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut ad = simulate(&SimConfig {
            n_cells: 600,
            n_genes: 120,
            n_batches: 3,
            ..SimConfig::default()
        })
        .unwrap();
        normalize_total(&mut ad, 1e4).unwrap();
        log1p(&mut ad);
        Data {
            x: ad.x.to_dense(),
            batches: ad.obs_groups("batch").unwrap().codes,
        }
    })
}

fn config(method: &str, batches: &[u32]) -> ModelConfig {
    ModelConfig {
        dsbn: true,
        hidden_dim: 16,
        n_batches: *batches.iter().max().unwrap() as usize + 1,
        ..ModelConfig::new(MethodRef::parse(method).unwrap(), data().x.ncols())
    }
}

/// Two epochs with two jittered copies of each cell as the views.
fn train(model: &ModelConfig, batches: &[u32]) -> TrainedModel {
    let d = data();
    let training = TrainConfig {
        epochs: 2,
        batch_size: 64,
        lr: 1e-3,
        ..TrainConfig::default()
    };
    fit(
        model,
        &training,
        d.x.nrows(),
        |r| {
            assert!(r.needs.batch_codes);
            let rows = d.x.select(Axis(0), r.cells);
            Ok::<_, String>(MiniBatch {
                batch_codes: Some(r.cells.iter().map(|&i| batches[i]).collect()),
                ..MiniBatch::two_views(vec![rows.clone() * 0.9], vec![rows * 1.1])
            })
        },
        |_| {},
    )
    .unwrap()
}

fn embed(trained: &TrainedModel, codes: Option<&[u32]>) -> scssl_models::Result<Array2<f32>> {
    let inputs = EmbedInputs {
        batch_codes: codes,
        ..EmbedInputs::features(&[data().x.view()])
    };
    Ok(trained
        .embed_inputs(&inputs, EmbeddingOutput::Backbone)?
        .joint)
}

fn tensor<'a>(t: &'a [NamedTensor], name: &str) -> &'a NamedTensor {
    t.iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

#[test]
fn trains_and_embeds_with_each_cells_batch_and_an_unseen_batch() {
    let d = data();
    for method in ["simclr", "moco"] {
        let model = config(method, &d.batches);
        let trained = train(&model, &d.batches);
        let names: Vec<&str> = trained.tensors.iter().map(|t| t.name.as_str()).collect();
        for dom in 0..3 {
            assert!(names.contains(&format!("branch0.dsbn.{dom}.gamma").as_str()));
        }
        assert!(
            !names.iter().any(|n| n.starts_with("branch0.encoder.0.bn")),
            "the first BatchNorm is the domain-specific one"
        );
        let emb = embed(&trained, Some(&d.batches)).unwrap();
        assert_eq!(emb.dim(), (d.x.nrows(), 16));
        assert!(emb.iter().all(|v| v.is_finite()));
        // a cell's embedding depends on its own batch's norm
        let shifted: Vec<u32> = d.batches.iter().map(|&b| (b + 1) % 3).collect();
        let other = embed(&trained, Some(&shifted)).unwrap();
        assert!(
            emb.row(0) != other.row(0),
            "{method}: the domain changes the embedding"
        );
        // eval mode: a cell's embedding does not depend on the other cells embedded with it
        let first = trained
            .embed_inputs(
                &EmbedInputs {
                    batch_codes: Some(&d.batches[..1]),
                    ..EmbedInputs::features(&[d.x.slice(ndarray::s![..1, ..])])
                },
                EmbeddingOutput::Backbone,
            )
            .unwrap()
            .joint;
        assert_eq!(first.row(0), emb.row(0));
        // an unseen batch (code 3, a query) uses the mean of the three domains' norms
        let unseen = vec![3u32; d.x.nrows()];
        let q = embed(&trained, Some(&unseen)).unwrap();
        assert!(q.iter().all(|v| v.is_finite()));
        let mut by_hand = trained.tensors.clone();
        for stat in ["gamma", "beta", "running_mean", "running_var"] {
            let k = 3.0f32;
            let parts: Vec<&NamedTensor> = (0..3)
                .map(|dom| tensor(&trained.tensors, &format!("branch0.dsbn.{dom}.{stat}")))
                .collect();
            let mean: Vec<f32> = (0..parts[0].data.len())
                .map(|i| parts.iter().map(|p| p.data[i]).sum::<f32>() / k)
                .collect();
            for t in by_hand.iter_mut() {
                if t.name == format!("branch0.dsbn.0.{stat}") {
                    t.data = mean.clone();
                }
            }
        }
        let mean_model = TrainedModel {
            tensors: by_hand,
            ..trained.clone()
        };
        let zeros = vec![0u32; d.x.nrows()];
        let want = embed(&mean_model, Some(&zeros)).unwrap();
        let diff = q
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-4,
            "{method}: unseen batch differs from the mean norm by {diff}"
        );
    }
}

#[test]
fn a_one_cell_domain_neither_crashes_nor_updates_its_statistics() {
    let d = data();
    // batch 3 has a single cell: every mini-batch that holds it has one cell of that domain
    let mut batches = d.batches.clone();
    batches[7] = 3;
    let model = config("simclr", &batches);
    let trained = train(&model, &batches);
    let rm = tensor(&trained.tensors, "branch0.dsbn.3.running_mean");
    let rv = tensor(&trained.tensors, "branch0.dsbn.3.running_var");
    assert!(rm.data.iter().all(|&v| v == 0.0));
    assert!(rv.data.iter().all(|&v| v == 1.0));
    let seen = tensor(&trained.tensors, "branch0.dsbn.0.running_mean");
    assert!(seen.data.iter().any(|&v| v != 0.0));
    assert!(
        embed(&trained, Some(&batches))
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn the_second_norm_modes_differ() {
    let d = data();
    let per_subset = train(&config("simclr", &d.batches), &d.batches);
    let mixed = train(
        &ModelConfig {
            dsbn_bn2: DsbnSecondNorm::SharedMixed,
            ..config("simclr", &d.batches)
        },
        &d.batches,
    );
    assert_ne!(
        per_subset.history.step_losses[1..],
        mixed.history.step_losses[1..]
    );
}

#[test]
fn bad_inputs_are_named() {
    let d = data();
    let trained = train(&config("simclr", &d.batches), &d.batches);
    let e = embed(&trained, None).unwrap_err().to_string();
    assert!(e.contains("batch codes"), "{e}");
    let e = embed(&trained, Some(&d.batches[..3]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 batch codes"), "{e}");
    let mut multimodal = config("simclr", &d.batches);
    multimodal.input_dims.push(5);
    let e = multimodal.validate().unwrap_err().to_string();
    assert!(e.contains("model.dsbn"), "{e}");
}
