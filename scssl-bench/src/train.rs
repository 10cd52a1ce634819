//! Training and embedding with an augmentation pipeline: the glue between `scssl-augment`'s
//! views and `scssl-models`' trainer. Model inputs from AnnData are
//! [`scssl_models::features`]'.

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayView2};
use scssl_augment::{AugmentConfig, NeighbourGraphs, Pipeline, PipelineConfig};
use scssl_models::{BatchRequest, MiniBatch, ModelConfig, TrainConfig, TrainEvent, TrainedModel};
use serde::{Deserialize, Serialize};

/// An augmentation given by preset name or by explicit steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AugmentSpec {
    /// A preset of `scssl_augment::PipelineConfig::preset` (e.g. `clear`).
    Preset(String),
    /// Explicit steps.
    Steps(PipelineConfig),
}

impl AugmentSpec {
    /// The pipeline configuration.
    pub fn config(&self) -> Result<PipelineConfig> {
        Ok(match self {
            AugmentSpec::Preset(name) => PipelineConfig::preset(name)?,
            AugmentSpec::Steps(c) => {
                c.validate()?;
                c.clone()
            }
        })
    }

    /// A short name for tables: the preset's name, or the steps written out, e.g.
    /// `mask(rate=0.3)@0.5+gauss(rate=0.8,sigma=0.2)@0.5` (so that two custom pipelines of a
    /// sweep never share a row label).
    pub fn label(&self) -> String {
        match self {
            AugmentSpec::Preset(n) => n.clone(),
            AugmentSpec::Steps(c) if c.steps.is_empty() => "none".into(),
            AugmentSpec::Steps(c) => c
                .steps
                .iter()
                .map(|st| {
                    let v = serde_json::to_value(&st.augment).unwrap_or_default();
                    let (kind, params) = v
                        .as_object()
                        .and_then(|o| o.iter().next())
                        .map(|(k, p)| (k.clone(), p.clone()))
                        .unwrap_or_default();
                    let params: Vec<String> = params
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, x)| match x {
                            serde_json::Value::String(t) => format!("{k}={t}"),
                            other => format!("{k}={other}"),
                        })
                        .collect();
                    let coin = match st.coin {
                        scssl_augment::Coin::Shared => "/shared",
                        scssl_augment::Coin::PerView => "",
                    };
                    format!("{kind}({})@{}{coin}", params.join(","), st.prob)
                })
                .collect::<Vec<_>>()
                .join("+"),
        }
    }
}

fn needs_graphs(cfg: &PipelineConfig) -> bool {
    cfg.steps
        .iter()
        .any(|s| matches!(s.augment, AugmentConfig::NeighbourMix(_)))
}

/// Trains `model` (whose `input_dims` are filled in from `inputs`) on the given matrices. The
/// method says what each mini-batch needs ([`scssl_models::Method::needs`]): augmented views
/// come from one pipeline per modality (same seed, so neighbour partners agree between
/// modalities; `batches` feeds the neighbour graphs of MNN/BBKNN steps), features are rows of
/// `inputs`, batch codes rows of `batches`.
pub fn train_on(
    inputs: &[Array2<f32>],
    counts: Option<&Array2<f32>>,
    batches: &[u32],
    mut model: ModelConfig,
    training: &TrainConfig,
    augment: &AugmentSpec,
    mut progress: impl FnMut(&TrainEvent),
) -> Result<TrainedModel> {
    model.input_dims = inputs.iter().map(|x| x.ncols()).collect();
    let n = inputs[0].nrows();
    let needs = model.method.needs(&model);
    model.n_batches = batches.iter().max().map_or(0, |&b| b as usize + 1);
    if needs.counts && counts.is_none_or(|c| c.dim() != (n, model.input_dims[0])) {
        bail!(
            "{} needs the raw counts of its {} genes for {n} cells (--counts-layer / data.counts_layer when X is normalised)",
            model.method,
            model.input_dims[0]
        );
    }
    if needs.batch_codes && batches.len() != n {
        bail!(
            "{} needs each cell's batch: give a batch key (data.batch_key) with {n} values",
            model.method
        );
    }
    // methods without views (PCA) neither build nor validate an augmentation
    let cfg = if needs.views > 0 {
        Some(augment.config()?)
    } else {
        None
    };
    let graphs = match &cfg {
        Some(c) if needs_graphs(c) => Some(
            NeighbourGraphs::build(inputs[0].view(), batches, 5, 5, training.seed)
                .context("building neighbour graphs for the augmentation")?,
        ),
        _ => None,
    };
    let pipes: Vec<Pipeline> = match &cfg {
        Some(c) => inputs
            .iter()
            .map(|_| Pipeline::new(c, training.seed))
            .collect::<std::result::Result<_, _>>()?,
        None => Vec::new(),
    };
    let source = |r: BatchRequest<'_>| -> std::result::Result<MiniBatch, String> {
        let mut batch = MiniBatch::default();
        if r.needs.views > 0 {
            let mut first = Vec::with_capacity(inputs.len());
            let mut second = Vec::with_capacity(inputs.len());
            for (p, x) in pipes.iter().zip(inputs) {
                let ctx = match &graphs {
                    Some(g) => g.context(x.view()),
                    None => scssl_augment::Context::new(x.view()),
                };
                let (a, b) = p
                    .views(r.cells, r.epoch as u64, &ctx)
                    .map_err(|e| e.to_string())?;
                first.push(a);
                second.push(b);
            }
            if r.needs.views != 2 {
                return Err(format!(
                    "the augmentation pipelines make two views, the method asks for {}",
                    r.needs.views
                ));
            }
            batch.views = vec![first, second];
        }
        if r.needs.features {
            batch.features = inputs
                .iter()
                .map(|x| x.select(ndarray::Axis(0), r.cells))
                .collect();
        }
        if r.needs.batch_codes {
            batch.batch_codes = Some(r.cells.iter().map(|&i| batches[i]).collect());
        }
        if let (true, Some(c)) = (r.needs.counts, counts) {
            batch.counts = Some(c.select(ndarray::Axis(0), r.cells));
        }
        Ok(batch)
    };
    Ok(scssl_models::fit(
        &model,
        training,
        n,
        source,
        &mut progress,
    )?)
}

/// Embeds cells in eval mode: the model's input matrices, the raw counts of its genes for
/// methods that read counts (scVI), each cell's batch for DSBN ([`batch_codes_for`]);
/// `projection` picks the projector output instead of the backbone's.
pub fn embed_matrices(
    model: &TrainedModel,
    inputs: &[Array2<f32>],
    counts: Option<&Array2<f32>>,
    batch_codes: Option<&[u32]>,
    projection: bool,
) -> Result<scssl_models::Embeddings> {
    let out = if projection {
        scssl_models::EmbeddingOutput::Projection
    } else {
        scssl_models::EmbeddingOutput::Backbone
    };
    let needs = model.config.method.needs(&model.config);
    let features: Vec<ArrayView2<'_, f32>> = if needs.counts && !needs.features {
        Vec::new()
    } else {
        inputs.iter().map(|x| x.view()).collect()
    };
    let embed_inputs = scssl_models::EmbedInputs {
        features,
        counts: counts.map(|c| c.view()),
        batch_codes,
    };
    Ok(model.embed_inputs(&embed_inputs, out)?)
}
