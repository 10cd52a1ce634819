//! The embeddings, loss curves and checkpoint layouts of the generic methods, recorded from
//! the code before the method interface existed (`SCSSL_BLESS=1` rewrites the fixture), must
//! stay bit-identical: refactoring the trainer may not change a single result.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::Array2;
use scssl_augment::{Context, Pipeline};
use scssl_models::{
    EmbeddingOutput, Integration, MethodRef, MiniBatch, ModelConfig, OptimizerKind, TrainConfig,
    TrainedModel, fit,
};
use serde::{Deserialize, Serialize};

/// One recorded run.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Golden {
    /// Step losses as f64 bit patterns.
    losses: Vec<u64>,
    /// Joint embedding (backbone) as f32 bit patterns, row-major.
    joint: Vec<u32>,
    /// Per-modality embeddings (backbone).
    per_modality: Vec<Vec<u32>>,
    /// Joint embedding of the projection output.
    projection: Vec<u32>,
    /// Checkpoint tensor names with shapes.
    tensors: Vec<(String, Vec<usize>)>,
}

/// A small deterministic dataset: 96 cells × 24 "genes" with two groups, 6 proteins.
fn inputs() -> (Array2<f32>, Array2<f32>) {
    let rna = Array2::from_shape_fn((96, 24), |(i, j)| {
        let group = (i % 3) as f32;
        (((i * 13 + j * 7) % 17) as f32 / 17.0 + group * ((j % 4) as f32) * 0.3).ln_1p()
    });
    let protein = Array2::from_shape_fn((96, 6), |(i, j)| {
        ((i * 5 + j * 11) % 13) as f32 / 13.0 + (i % 3) as f32 * 0.5
    });
    (rna, protein)
}

fn cases() -> Vec<(String, ModelConfig, TrainConfig)> {
    let training = TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 1e-3,
        seed: 5,
        ..TrainConfig::default()
    };
    let mut out = Vec::new();
    // the seven generic methods (CLEAR also makes two views but is not one of them)
    let generic = [
        "simclr",
        "moco",
        "simsiam",
        "nnclr",
        "byol",
        "vicreg",
        "barlowtwins",
    ];
    for m in generic.into_iter().map(m) {
        let model = ModelConfig {
            hidden_dim: 16,
            momentum: 0.9,
            memory_bank_size: 64,
            ..ModelConfig::new(m, 24)
        };
        out.push((m.name().to_string(), model, training.clone()));
    }
    let multi = |m: MethodRef, how: Integration| ModelConfig {
        hidden_dim: 16,
        momentum: 0.9,
        memory_bank_size: 64,
        integration: how,
        input_dims: vec![24, 6],
        ..ModelConfig::new(m, 24)
    };
    for (m, how) in [
        (m("simclr"), Integration::Concat),
        (m("simclr"), Integration::Clip),
        (m("byol"), Integration::Add),
        (m("moco"), Integration::Mean),
        (m("nnclr"), Integration::Concat),
        (m("barlowtwins"), Integration::Clip),
    ] {
        out.push((
            format!("{}-{how:?}", m.name()),
            multi(m, how),
            training.clone(),
        ));
    }
    out.push((
        "simclr-dropout-adamw-cosine".into(),
        ModelConfig {
            hidden_dim: 16,
            dropout: 0.2,
            ..ModelConfig::new(m("simclr"), 24)
        },
        TrainConfig {
            optimizer: OptimizerKind::AdamW,
            schedule: scssl_models::LrSchedule::Cosine { min_lr: 1e-5 },
            ..training.clone()
        },
    ));
    out
}

fn bits32(x: &Array2<f32>) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn run(model: &ModelConfig, training: &TrainConfig) -> Golden {
    let (rna, protein) = inputs();
    let mats: Vec<&Array2<f32>> = if model.input_dims.len() == 2 {
        vec![&rna, &protein]
    } else {
        vec![&rna]
    };
    let pipes: Vec<Pipeline> = mats
        .iter()
        .map(|_| Pipeline::preset("clear", training.seed).unwrap())
        .collect();
    let trained: TrainedModel = fit(
        model,
        training,
        rna.nrows(),
        |r| {
            let mut first = Vec::new();
            let mut second = Vec::new();
            for (p, x) in pipes.iter().zip(&mats) {
                let (a, b) = p
                    .views(r.cells, r.epoch as u64, &Context::new(x.view()))
                    .map_err(|e| e.to_string())?;
                first.push(a);
                second.push(b);
            }
            Ok::<_, String>(MiniBatch::two_views(first, second))
        },
        |_| {},
    )
    .unwrap();
    let views: Vec<_> = mats.iter().map(|x| x.view()).collect();
    let backbone = trained.embed(&views, EmbeddingOutput::Backbone).unwrap();
    let projection = trained.embed(&views, EmbeddingOutput::Projection).unwrap();
    Golden {
        losses: trained
            .history
            .step_losses
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        joint: bits32(&backbone.joint),
        per_modality: backbone.per_modality.iter().map(bits32).collect(),
        projection: bits32(&projection.joint),
        tensors: trained
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect(),
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/method_goldens.json")
}

#[test]
fn generic_methods_are_bit_identical_to_the_recorded_goldens() {
    let got: BTreeMap<String, Golden> = cases()
        .into_iter()
        .map(|(name, m, t)| (name, run(&m, &t)))
        .collect();
    if std::env::var_os("SCSSL_BLESS").is_some() {
        std::fs::write(fixture(), serde_json::to_string(&got).unwrap()).unwrap();
        return;
    }
    let want: BTreeMap<String, Golden> =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (name, w) in &want {
        let g = &got[name];
        assert_eq!(w.tensors, g.tensors, "{name}: checkpoint layout");
        assert_eq!(w.losses, g.losses, "{name}: step losses");
        assert_eq!(
            w.per_modality, g.per_modality,
            "{name}: per-modality embeddings"
        );
        assert_eq!(w.joint, g.joint, "{name}: joint embedding");
        assert_eq!(w.projection, g.projection, "{name}: projection embedding");
    }
}

fn m(name: &str) -> MethodRef {
    MethodRef::parse(name).unwrap()
}
