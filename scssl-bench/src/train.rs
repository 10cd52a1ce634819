//! Training and embedding with an augmentation pipeline: the glue between `scssl-augment`'s
//! views and `scssl-models`' trainer. Model inputs from AnnData are
//! [`scssl_models::features`]'.

use anyhow::{Context, Result, bail};
use ndarray::ArrayView2;
use scssl_augment::{AugmentConfig, NeighbourGraphs, Pipeline, PipelineConfig};
use scssl_data::matrix::Matrix;
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
/// `inputs`, batch codes rows of `batches`. A CSR input is never densified whole: each
/// mini-batch densifies its own rows.
pub fn train_on(
    inputs: &[Matrix],
    counts: Option<&Matrix>,
    batches: &[u32],
    mut model: ModelConfig,
    training: &TrainConfig,
    augment: &AugmentSpec,
    mut progress: impl FnMut(&TrainEvent),
) -> Result<TrainedModel> {
    let Some(first) = inputs.first() else {
        bail!("no input matrices to train on");
    };
    model.input_dims = inputs.iter().map(|x| x.shape().1).collect();
    let n = first.shape().0;
    if let Some(bad) = inputs.iter().find(|x| x.shape().0 != n) {
        bail!(
            "the input modalities have {n} and {} cells: one row per cell in each",
            bad.shape().0
        );
    }
    let needs = model.method.needs(&model);
    model.n_batches = batches.iter().max().map_or(0, |&b| b as usize + 1);
    if needs.counts && counts.is_none_or(|c| c.shape() != (n, model.input_dims[0])) {
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
            NeighbourGraphs::build_from_matrix(first, batches, 5, 5, training.seed)
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
    // one context per modality (a CSR matrix's row order is checked once, here)
    let contexts: Vec<scssl_augment::Context<'_>> = inputs
        .iter()
        .map(|x| match &graphs {
            Some(g) => g.context(x),
            None => scssl_augment::Context::new(x),
        })
        .collect();
    let source = |r: BatchRequest<'_>| -> std::result::Result<MiniBatch, String> {
        let mut batch = MiniBatch::default();
        if r.needs.views > 0 {
            let mut first = Vec::with_capacity(inputs.len());
            let mut second = Vec::with_capacity(inputs.len());
            for (p, ctx) in pipes.iter().zip(&contexts) {
                let (a, b) = p
                    .views(r.cells, r.epoch as u64, ctx)
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
                .map(|x| x.dense_select_rows(r.cells))
                .collect();
        }
        if r.needs.batch_codes {
            batch.batch_codes = Some(r.cells.iter().map(|&i| batches[i]).collect());
        }
        if let (true, Some(c)) = (r.needs.counts, counts) {
            batch.counts = Some(c.dense_select_rows(r.cells));
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

/// Rows embedded per forward pass when an input is CSR: the dense copy of one chunk
/// (16,384 cells × 2,000 genes: 131 MB) is all that is ever densified.
const EMBED_CHUNK: usize = 16_384;

/// Embeds cells in eval mode: the model's input matrices, the raw counts of its genes for
/// methods that read counts (scVI), each cell's batch for DSBN ([`batch_codes_for`]);
/// `projection` picks the projector output instead of the backbone's. Dense inputs go through
/// in one pass; when any input is CSR, cells go through in chunks, each densified on its own
/// (embeddings are per cell in eval mode, so the result is the same).
///
/// [`batch_codes_for`]: scssl_models::features::batch_codes_for
pub fn embed_matrices(
    model: &TrainedModel,
    inputs: &[Matrix],
    counts: Option<&Matrix>,
    batch_codes: Option<&[u32]>,
    projection: bool,
) -> Result<scssl_models::Embeddings> {
    embed_in_chunks(model, inputs, counts, batch_codes, projection, EMBED_CHUNK)
}

fn embed_in_chunks(
    model: &TrainedModel,
    inputs: &[Matrix],
    counts: Option<&Matrix>,
    batch_codes: Option<&[u32]>,
    projection: bool,
    chunk: usize,
) -> Result<scssl_models::Embeddings> {
    let out = if projection {
        scssl_models::EmbeddingOutput::Projection
    } else {
        scssl_models::EmbeddingOutput::Backbone
    };
    let needs = model.config.method.needs(&model.config);
    let use_features = !needs.counts || needs.features;
    let dense: Option<Vec<ArrayView2<'_, f32>>> = inputs
        .iter()
        .map(|x| x.as_dense().map(|a| a.view()))
        .collect();
    let dense_counts = counts.map(|c| c.as_dense().map(|a| a.view()));
    if let (Some(features), None | Some(Some(_))) = (dense, dense_counts) {
        let embed_inputs = scssl_models::EmbedInputs {
            features: if use_features { features } else { Vec::new() },
            counts: dense_counts.flatten(),
            batch_codes,
        };
        return Ok(model.embed_inputs(&embed_inputs, out)?);
    }
    let n = inputs.first().map_or(0, |x| x.shape().0);
    if let Some(codes) = batch_codes
        && codes.len() != n
    {
        bail!("{} batch codes for {n} cells", codes.len());
    }
    let mut builder: Option<scssl_models::EmbeddingsBuilder> = None;
    for start in (0..n).step_by(chunk.max(1)) {
        let end = (start + chunk.max(1)).min(n);
        let features: Vec<_> = if use_features {
            inputs.iter().map(|x| x.dense_rows(start, end)).collect()
        } else {
            Vec::new()
        };
        let counts = counts.map(|c| c.dense_rows(start, end));
        let part = model.embed_inputs(
            &scssl_models::EmbedInputs {
                features: features.iter().map(|x| x.view()).collect(),
                counts: counts.as_ref().map(|c| c.view()),
                batch_codes: batch_codes.map(|c| &c[start..end]),
            },
            out,
        )?;
        let b = builder
            .get_or_insert_with(|| scssl_models::Embeddings::builder(part.per_modality.len(), n));
        for (m, e) in part.per_modality.into_iter().enumerate() {
            let width = e.ncols();
            b.push_modality(m, width, e.into_raw_vec_and_offset().0);
        }
        let width = part.joint.ncols();
        b.push_joint(width, part.joint.into_raw_vec_and_offset().0);
    }
    match builder {
        Some(b) => Ok(b.finish()?),
        None => bail!("no cells to embed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scssl_data::matrix::CsrMatrix;
    use scssl_data::sim::{SimConfig, simulate};

    /// Log-normalised simulated RNA (mostly zeros), dense and CSR, and the batch codes.
    fn data() -> (Matrix, Matrix, Vec<u32>) {
        let mut ad = simulate(&SimConfig {
            n_cells: 150,
            n_genes: 60,
            ..Default::default()
        })
        .unwrap();
        scssl_data::pp::normalize_total(&mut ad, 1e4).unwrap();
        scssl_data::pp::log1p(&mut ad);
        let dense = ad.x.to_dense();
        let csr = Matrix::Csr(CsrMatrix::from_dense(dense.view()));
        let batches = ad.obs_groups("batch").unwrap().codes;
        (Matrix::Dense(dense), csr, batches)
    }

    /// Training from a CSR matrix gives the weights of training from the dense one, bit for
    /// bit (views and mini-batches are densified row by row from the same values), and a
    /// chunked embedding of the CSR input equals the one-pass embedding of the dense input.
    #[test]
    fn csr_inputs_train_and_embed_exactly_as_dense_ones() {
        let (dense, csr, batches) = data();
        for (method, augment) in [
            ("simclr", "clear"),
            ("vicreg", "mnn_only"),
            ("scvi", "none"),
        ] {
            let m = scssl_models::MethodRef::parse(method).unwrap();
            let model = ModelConfig {
                hidden_dim: 16,
                ..ModelConfig::new(m, 60)
            };
            let training = TrainConfig {
                epochs: 1,
                batch_size: 32,
                ..m.default_training()
            };
            let needs = m.needs(&model);
            // scVI reads counts: any non-negative matrix does for this comparison
            let (dc, cc) = if needs.counts {
                (Some(&dense), Some(&csr))
            } else {
                (None, None)
            };
            let spec = AugmentSpec::Preset(augment.into());
            let train = |x: &Matrix, c: Option<&Matrix>| {
                train_on(
                    std::slice::from_ref(x),
                    c,
                    &batches,
                    model.clone(),
                    &training,
                    &spec,
                    |_| {},
                )
                .unwrap()
            };
            let (a, b) = (train(&dense, dc), train(&csr, cc));
            assert_eq!(a.tensors, b.tensors, "{method}: weights differ");
            let one_pass = embed_in_chunks(
                &a,
                std::slice::from_ref(&dense),
                dc,
                Some(&batches),
                false,
                1000,
            )
            .unwrap();
            let chunked =
                embed_in_chunks(&a, std::slice::from_ref(&csr), cc, Some(&batches), false, 7)
                    .unwrap();
            assert_eq!(one_pass.joint.dim(), (150, 16), "{method}");
            assert_eq!(
                one_pass.joint, chunked.joint,
                "{method}: chunked embedding differs"
            );
            assert_eq!(one_pass.per_modality, chunked.per_modality, "{method}");
        }
    }
}
