//! The SSL network: one branch (encoder, projector, optional predictor) per modality, the
//! heads of methods.md §2.2, modality integration (§2.5) and inference (§2.6, eval mode).

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{Integration, Method, ModelConfig};
use crate::error::{ModelError, Result};
use crate::layers::{
    BlockSpec, Mlp, NamedTensor, Pass, dropout, encoder_specs, tensor_from, tensor_values,
};

/// Projector and predictor blocks of `method` for backbone width `h` and factor `f`
/// (lightly 1.5.10's heads as scSSL-Bench builds them; `nb` = no bias before a BatchNorm).
pub fn head_specs(method: Method, h: usize, f: usize) -> (Vec<BlockSpec>, Option<Vec<BlockSpec>>) {
    use BlockSpec as S;
    match method {
        Method::SimClr => (vec![S::hidden(h, h), S::linear_bn(h, h / f, true)], None),
        Method::MoCo => (
            vec![
                BlockSpec {
                    relu: true,
                    ..S::linear(h, h)
                },
                S::linear(h, h / f),
            ],
            None,
        ),
        Method::Byol => (
            vec![S::hidden(h, f * h), S::linear(f * h, h)],
            Some(vec![S::hidden(h, f * h), S::linear(f * h, h)]),
        ),
        Method::SimSiam => {
            let out = h / f;
            let mid = h / (2 * f);
            (
                vec![
                    S::hidden(h, h),
                    S::hidden(h, h),
                    S::linear_bn(h, out, false),
                ],
                Some(vec![S::hidden(out, mid), S::linear(mid, out)]),
            )
        }
        Method::Nnclr => {
            let out = h / f;
            (
                vec![S::hidden(h, h), S::hidden(h, h), S::linear_bn(h, out, true)],
                Some(vec![S::hidden(out, h), S::linear(h, out)]),
            )
        }
        Method::VicReg => (vec![S::hidden(h, h), S::linear(h, f * h)], None),
        Method::BarlowTwins => (
            vec![
                S::hidden(h, f * h),
                S::hidden(f * h, f * h),
                S::linear(f * h, f * h),
            ],
            None,
        ),
    }
}

/// One modality's networks.
#[derive(Module, Debug)]
pub struct Branch<B: Backend> {
    /// The shared-architecture encoder (backbone).
    pub encoder: Mlp<B>,
    /// Projection head.
    pub projector: Mlp<B>,
    /// Prediction head (SimSiam, NNCLR, BYOL).
    pub predictor: Option<Mlp<B>>,
}

/// Outputs of one branch for one view.
#[derive(Debug, Clone)]
pub struct BranchOutput<B: Backend> {
    /// Backbone output (the embedding), `[n, h]`.
    pub backbone: Tensor<B, 2>,
    /// Projector output.
    pub projection: Tensor<B, 2>,
    /// Predictor output, when the method has a predictor.
    pub prediction: Option<Tensor<B, 2>>,
}

/// The trainable network of one SSL model.
#[derive(Module, Debug)]
pub struct SslNetwork<B: Backend> {
    /// One branch per modality (RNA first).
    pub branches: Vec<Branch<B>>,
    /// Learnable log logit-scale of the CLIP loss (only with `clip` integration).
    pub clip_log_scale: Option<Param<Tensor<B, 1>>>,
    /// Dropout probability after each encoder.
    pub dropout: f64,
}

impl<B: Backend> SslNetwork<B> {
    /// Builds the network with seeded PyTorch-default initialisation. The configuration must
    /// have been validated.
    pub fn new(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (proj, pred) = head_specs(config.method, config.hidden_dim, config.factor());
        let branches = config
            .input_dims
            .iter()
            .map(|&g| Branch {
                encoder: Mlp::new(&encoder_specs(g, config.hidden_dim), &mut rng, device),
                projector: Mlp::new(&proj, &mut rng, device),
                predictor: pred.as_ref().map(|p| Mlp::new(p, &mut rng, device)),
            })
            .collect();
        let clip_log_scale =
            (config.integration == Integration::Clip && config.input_dims.len() > 1).then(|| {
                let v = (1.0 / config.clip_temperature).ln() as f32;
                Param::initialized(
                    ParamId::new(),
                    tensor_from::<B, 1>(vec![v], [1], device).require_grad(),
                )
            });
        SslNetwork {
            branches,
            clip_log_scale,
            dropout: config.dropout,
        }
    }

    /// Runs branch `m` on `x`; the predictor only when asked.
    pub fn branch_forward(
        &mut self,
        m: usize,
        x: Tensor<B, 2>,
        pass: Pass,
        with_prediction: bool,
    ) -> BranchOutput<B> {
        let p = self.dropout;
        let branch = &mut self.branches[m];
        let backbone = dropout(branch.encoder.forward(x, pass), p, pass);
        let projection = branch.projector.forward(backbone.clone(), pass);
        let prediction = match (&mut branch.predictor, with_prediction) {
            (Some(pred), true) => Some(pred.forward(projection.clone(), pass)),
            _ => None,
        };
        BranchOutput {
            backbone,
            projection,
            prediction,
        }
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (i, b) in self.branches.iter().enumerate() {
            b.encoder.export(&format!("branch{i}.encoder"), &mut out);
            b.projector
                .export(&format!("branch{i}.projector"), &mut out);
            if let Some(p) = &b.predictor {
                p.export(&format!("branch{i}.predictor"), &mut out);
            }
        }
        if let Some(s) = &self.clip_log_scale {
            out.push(NamedTensor {
                name: "clip_log_scale".into(),
                shape: vec![1],
                data: tensor_values(s.val()),
            });
        }
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (i, b) in self.branches.iter_mut().enumerate() {
            b.encoder
                .import(&format!("branch{i}.encoder"), &mut store)?;
            b.projector
                .import(&format!("branch{i}.projector"), &mut store)?;
            if let Some(p) = &mut b.predictor {
                p.import(&format!("branch{i}.predictor"), &mut store)?;
            }
        }
        if let Some(s) = &mut self.clip_log_scale {
            let t = store
                .remove("clip_log_scale")
                .ok_or_else(|| ModelError::Checkpoint {
                    path: Default::default(),
                    message: "tensor clip_log_scale is missing".into(),
                })?;
            let old = s.val();
            let new = tensor_from::<B, 1>(t.data, [1], &old.device());
            *s = Param::initialized(
                s.id,
                if old.is_require_grad() {
                    new.require_grad()
                } else {
                    new
                },
            );
        }
        if let Some(extra) = store.keys().next() {
            return Err(ModelError::Checkpoint {
                path: Default::default(),
                message: format!("tensor {extra} does not belong to this model"),
            });
        }
        Ok(())
    }

    /// θ_self ← m·θ_self + (1 − m)·θ_online for every parameter (BatchNorm buffers excluded).
    pub fn momentum_update(&mut self, online: &Self, m: f64) {
        for (t, o) in self.branches.iter_mut().zip(&online.branches) {
            t.encoder.ema(&o.encoder, m);
            t.projector.ema(&o.projector, m);
            if let (Some(tp), Some(op)) = (&mut t.predictor, &o.predictor) {
                tp.ema(op, m);
            }
        }
    }

    /// A frozen copy (no parameter requires a gradient), for momentum targets.
    pub fn frozen_copy(&self) -> Self {
        let mut copy = self.clone();
        copy.branches = copy
            .branches
            .into_iter()
            .map(|b| Branch {
                encoder: b.encoder.freeze(),
                projector: b.projector.freeze(),
                predictor: b.predictor.map(Mlp::freeze),
            })
            .collect();
        copy.clip_log_scale = None;
        copy
    }
}

/// Combines per-modality outputs (`add`, `mean`; `concat` and `clip` concatenate). Callers pass
/// one tensor per branch, and a network has at least one branch.
pub(crate) fn integrate<B: Backend>(parts: Vec<Tensor<B, 2>>, how: Integration) -> Tensor<B, 2> {
    let k = parts.len() as f64;
    match how {
        _ if parts.len() == 1 => Tensor::cat(parts, 1),
        Integration::Concat | Integration::Clip => Tensor::cat(parts, 1),
        Integration::Add => Tensor::stack::<3>(parts, 0).sum_dim(0).squeeze_dim(0),
        Integration::Mean => Tensor::stack::<3>(parts, 0)
            .sum_dim(0)
            .squeeze_dim::<2>(0)
            .div_scalar(k),
    }
}

/// Which output [`SslModel::embed`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingOutput {
    /// The backbone output (the reference default, `predict_projection: False`).
    #[default]
    Backbone,
    /// The projector output (`predict_projection: True`; for BYOL the predictor output, as in
    /// the reference, whose `forward` returns p).
    Projection,
}

/// Embeddings of a (possibly multimodal) dataset.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// The integrated embedding (`add`/`mean`, or the concatenation).
    pub joint: Array2<f32>,
    /// Each modality's own embedding, RNA first.
    pub per_modality: Vec<Array2<f32>>,
}

/// A configuration with its network.
#[derive(Debug, Clone)]
pub struct SslModel<B: Backend> {
    /// The configuration the network was built from.
    pub config: ModelConfig,
    /// The network.
    pub network: SslNetwork<B>,
}

impl<B: Backend> SslModel<B> {
    /// A freshly initialised model (validates the configuration).
    pub fn new(config: ModelConfig, seed: u64, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let network = SslNetwork::new(&config, seed, device);
        Ok(SslModel { config, network })
    }

    /// Checks that `inputs` has one matrix per modality with the expected widths and the same
    /// number of cells, and no non-finite value.
    pub fn check_inputs(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<usize> {
        let dims = &self.config.input_dims;
        if inputs.len() != dims.len() {
            return Err(ModelError::Shape(format!(
                "the model has {} modalities, {} input matrices were given",
                dims.len(),
                inputs.len()
            )));
        }
        let n = inputs[0].nrows();
        for (m, (x, &g)) in inputs.iter().zip(dims).enumerate() {
            if x.ncols() != g {
                return Err(ModelError::Shape(format!(
                    "modality {m} has {} features, the model was trained on {g}",
                    x.ncols()
                )));
            }
            if x.nrows() != n {
                return Err(ModelError::Shape(format!(
                    "modality {m} has {} cells, modality 0 has {n}",
                    x.nrows()
                )));
            }
            if let Some(v) = x.iter().find(|v| !v.is_finite()) {
                return Err(ModelError::Shape(format!(
                    "modality {m} contains a non-finite value ({v})"
                )));
            }
        }
        Ok(n)
    }

    /// Embeds cells in eval mode (BatchNorm running statistics, no dropout), `chunk` cells at
    /// a time. Returns the integrated embedding and each modality's own.
    pub fn embed(
        &self,
        inputs: &[ArrayView2<'_, f32>],
        output: EmbeddingOutput,
        chunk: usize,
    ) -> Result<Embeddings> {
        let n = self.check_inputs(inputs)?;
        let device = self
            .network
            .branches
            .first()
            .map(|b| b.encoder.blocks[0].linear.weight.val().device())
            .ok_or_else(|| ModelError::Shape("the model has no branch".into()))?;
        let mut net = self.network.clone();
        let chunk = chunk.max(1);
        let mut parts: Vec<Vec<f32>> = vec![Vec::new(); inputs.len()];
        let mut joint_rows: Vec<f32> = Vec::new();
        let mut widths = vec![0usize; inputs.len()];
        let mut joint_width = 0;
        let wants_pred =
            output == EmbeddingOutput::Projection && self.config.method == Method::Byol;
        let how = if self.config.integration == Integration::Clip {
            Integration::Concat
        } else {
            self.config.integration
        };
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let mut outs = Vec::with_capacity(inputs.len());
            for (m, x) in inputs.iter().enumerate() {
                let rows = x.slice(ndarray::s![start..end, ..]);
                let data: Vec<f32> = rows.iter().copied().collect();
                let t = tensor_from::<B, 2>(data, [end - start, x.ncols()], &device);
                let o = net.branch_forward(m, t, Pass::EVAL, wants_pred);
                let e = match output {
                    EmbeddingOutput::Backbone => o.backbone,
                    EmbeddingOutput::Projection => o.prediction.unwrap_or(o.projection),
                };
                outs.push(e);
            }
            for (m, e) in outs.iter().enumerate() {
                widths[m] = e.dims()[1];
                parts[m].extend(tensor_values(e.clone()));
            }
            let j = integrate(outs, how);
            joint_width = j.dims()[1];
            joint_rows.extend(tensor_values(j));
            start = end;
        }
        let per_modality = parts
            .into_iter()
            .zip(widths)
            // each chunk appended (end − start) × width values, so the lengths are n × width
            .map(|(v, w)| Array2::from_shape_vec((n, w), v).map_err(shape_inconsistent))
            .collect::<Result<Vec<_>>>()?;
        let joint =
            Array2::from_shape_vec((n, joint_width), joint_rows).map_err(shape_inconsistent)?;
        Ok(Embeddings {
            joint,
            per_modality,
        })
    }
}

/// Each embedding chunk appends (end − start) × width values, so a shape mismatch here is a
/// bug of this crate, reported as such rather than a panic.
fn shape_inconsistent(e: ndarray::ShapeError) -> ModelError {
    ModelError::Inconsistent(format!("embedding rows × width: {e}"))
}
