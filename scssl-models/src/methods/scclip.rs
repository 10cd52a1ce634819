//! scCLIP (Xiong et al.; the scSSL-Bench authors' fork `OlgaOvcharenko/scCLIP`, methods.md
//! §5.4): one vision transformer per modality, trained with a CLIP loss that pairs each cell's
//! RNA with its own protein profile.
//!
//! * **ViT per modality** (`jsxlei/scCLIP:scclip/vit.py`, built from `get_model_config("small")`,
//!   DIV-33): the G features are zero-padded to T·⌈G/T⌉ (T = 128 patches) and reshaped into T
//!   patches of ⌈G/T⌉ consecutive features; Linear(⌈G/T⌉, 256); a zero-initialised CLS token is
//!   prepended and zero-initialised learned position embeddings are added; dropout 0.1; six
//!   HF `ViTLayer`s (pre-LN: LayerNorm → 8-head self-attention with qkv bias, attention-prob
//!   dropout 0.1, output Linear, dropout 0.1, residual; LayerNorm → Linear(256, 512) → exact
//!   (erf) GELU → Linear(512, 256) → dropout 0.1, residual; every LayerNorm ε 1e-12); a final
//!   LayerNorm; HF's `ViTPooler`, tanh(Linear(256, 256)(CLS)).
//! * **Head** (`scclip/clip.py`): Linear(256, 128, no bias), then L2 normalisation.
//! * **Loss**: logits = e^s·a·rᵀ with s = `logit_scale` = 1 fixed (`--logit_scale 1`,
//!   `requires_grad=False`), L = ½[CE(logits, I) + CE(logitsᵀ, I)].
//! * **Initialisation**: the fork's `ViTModel` never calls HF's `post_init`, so every Linear has
//!   PyTorch's default initialisation, LayerNorms are (1, 0), CLS and positions are zero.
//! * **Training** ([`Scclip::default_training`]): AdamW (lr 1.5e-4, weight decay 0.05, default
//!   betas), linear warm-up over 2,000 steps then cosine decay to 0 at the last step (stepped
//!   every step), batches of 256 with the last short batch kept (the fork's `DataLoader` does
//!   not drop it), gradient norm clipped at 5.
//! * **Input (the benchmark's CITE-seq change, DIV-34)**: protein is loaded as the fork's
//!   "atac" modality and binarised (x > 0 → 1); `binarize_protein: false` keeps it continuous.
//!   RNA is the prepared log-normalised HVG matrix, divided per gene by its maximum absolute
//!   value (`maxabs_scale`). The maxima are computed in `fit` over every training cell (one
//!   request for all cells), stored in the checkpoint as the non-trained tensor `rna_maxabs`
//!   and applied to the cells embedded later; a gene that is zero in every training cell keeps
//!   scale 1 (scikit-learn's rule).
//! * **Embedding**: per modality the normalised 128-d head output; the joint embedding is
//!   their concatenation (RNA first), as the fork's `metrics.py` evaluates it
//!   (`ad.concat([rna, atac], axis=1)` of the two written embeddings → `obsm["scclip"]`).
//!
//! Divergences from the fork, each with its reason:
//! * **Steps**: the fork trains 30,000 steps (`max_steps`), ≈ 384 epochs of 20,000 cells; here
//!   the default is 100 epochs (a budget users can afford on a CPU; the cosine horizon is the
//!   run's last step, as Lightning's `estimated_stepping_batches`). Set `training.epochs` to
//!   reach 30,000 steps.
//! * **Split**: the fork holds out a random 10 % of cells for its validation curve, which does
//!   not change the trained model; here every cell is trained on.
//! * **Gene filter**: the fork drops genes named ERCC*/MT-*/mt-*/mt*; the model sees no gene
//!   names, so this filter is the caller's preprocessing.
//! * **Dropout masks** are drawn on the CPU from the run's seed (keyed by step, modality,
//!   layer and site), so CPU and CUDA runs draw the same masks; PyTorch draws them on device.
//! * **Seed**: the fork seeds with 42; here the run's `training.seed`.
//!
//! Observed behaviour, not a divergence: the zero CLS token and positions, LayerNorm ε 1e-12
//! and the low fixed logit scale (e¹) start every cell at nearly the same embedding (cosine
//! ≈ 0.95 between cells), and with dropout 0.1 in very small widths (hidden 16, one layer) the
//! loss stays at ln B for hundreds of steps — a PyTorch build of the same network does the
//! same; without dropout it trains within a few epochs (`tests/scclip_method.rs`).

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use ndarray::{Array2, ArrayView2, Axis};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    BatchNeeds, BatchRequest, BatchSource, EmbedInputs, Fitted, Method, MiniBatch, Objective,
    ObjectiveFamily, StepContext, StepInputs, TrainPlan,
};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{Dense, NamedTensor, Pass, reject_leftovers, tensor_from, tensor_values};
use crate::model::{EmbeddingOutput, Embeddings, check_inputs};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// scCLIP's settings (the fork's `get_model_config("small")`, `train_clip.py` and
/// `scclip/data.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScclipParams {
    /// Width of every transformer token (`hidden_size`, 256).
    pub hidden_size: usize,
    /// Transformer layers per modality (`num_hidden_layers`, 6).
    pub num_layers: usize,
    /// Attention heads (`num_attention_heads`, 8); must divide `hidden_size`.
    pub num_heads: usize,
    /// Width of the feed-forward block (`intermediate_size`, 512).
    pub intermediate_size: usize,
    /// Patches the features are cut into (`num_patches`, 128).
    pub num_patches: usize,
    /// Width of the normalised embedding of each modality (`projection_dim`, 128).
    pub projection_dim: usize,
    /// Dropout of the attention probabilities (`attention_probs_dropout_prob`, 0.1).
    pub attention_dropout: f64,
    /// Dropout of the embeddings and of every sub-layer's output (`hidden_dropout_prob`, 0.1).
    pub hidden_dropout: f64,
    /// The CLIP loss's log logit scale s (logits = e^s·a·rᵀ), fixed (`--logit_scale`, 1).
    pub logit_scale: f64,
    /// Binarise the protein input (x > 0 → 1), as the benchmark ran scCLIP on CITE-seq
    /// (DIV-34); `false` keeps the protein values.
    pub binarize_protein: bool,
    /// Divide each gene by its maximum absolute value over the training cells
    /// (`maxabs_scale`, the fork's `--binary`, on by default).
    pub maxabs_rna: bool,
}

impl Default for ScclipParams {
    fn default() -> Self {
        ScclipParams {
            hidden_size: 256,
            num_layers: 6,
            num_heads: 8,
            intermediate_size: 512,
            num_patches: 128,
            projection_dim: 128,
            attention_dropout: 0.1,
            hidden_dropout: 0.1,
            logit_scale: 1.0,
            binarize_protein: true,
            maxabs_rna: true,
        }
    }
}

/// Name of the stored per-gene RNA scale (max |x| over the training cells).
pub const RNA_MAXABS: &str = "rna_maxabs";

/// A seed for dropout site `site` of a pass.
fn sub_pass(pass: Pass, site: u64) -> Pass {
    let mut h = pass.dropout_seed ^ site.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pass {
        dropout_seed: h ^ (h >> 31),
        ..pass
    }
}

/// Inverted dropout of a tensor of any rank, the mask drawn from the pass's seed (32-bit
/// uniform draws, cheaper than [`crate::layers::dropout`]'s for the attention maps).
fn dropout_nd<B: Backend, const D: usize>(x: Tensor<B, D>, p: f64, pass: Pass) -> Tensor<B, D> {
    if !pass.train || p <= 0.0 {
        return x;
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(pass.dropout_seed);
    let threshold = (p * 4_294_967_296.0) as u64;
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if (rng.next_u32() as u64) < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect();
    let device = x.device();
    x.mul(tensor_from::<B, D>(mask, dims, &device))
}

/// A linear layer applied to the last dimension of `[b, t, in]`.
fn dense3<B: Backend>(layer: &Dense<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, t, d] = x.dims();
    let y = layer.forward(x.reshape([b * t, d]));
    let out = y.dims()[1];
    y.reshape([b, t, out])
}

fn zeros_param<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::initialized(
        ParamId::new(),
        Tensor::<B, D>::zeros(shape, device).require_grad(),
    )
}

/// LayerNorm over the last dimension (PyTorch's: biased variance, affine), ε 1e-12 here.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale γ (1 at initialisation).
    pub weight: Param<Tensor<B, 1>>,
    /// Shift β (0 at initialisation).
    pub bias: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    fn new(d: usize, eps: f64, device: &B::Device) -> Self {
        LayerNorm {
            weight: Param::initialized(
                ParamId::new(),
                Tensor::<B, 1>::ones([d], device).require_grad(),
            ),
            bias: zeros_param([d], device),
            eps,
        }
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mean = x.clone().mean_dim(2);
        let centred = x.sub(mean);
        let var = centred.clone().square().mean_dim(2);
        let y = centred.div(var.add_scalar(self.eps).sqrt());
        y.mul(self.weight.val().unsqueeze_dim::<2>(0).unsqueeze_dim(0))
            .add(self.bias.val().unsqueeze_dim::<2>(0).unsqueeze_dim(0))
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        crate::layers::export(format!("{prefix}.weight"), &self.weight, out);
        crate::layers::export(format!("{prefix}.bias"), &self.bias, out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        crate::layers::import(format!("{prefix}.weight"), &mut self.weight, store)?;
        crate::layers::import(format!("{prefix}.bias"), &mut self.bias, store)
    }
}

/// One HF `ViTLayer`: pre-LN multi-head self-attention and a GELU feed-forward block, each
/// with a residual connection.
#[derive(Module, Debug)]
pub struct VitLayer<B: Backend> {
    /// LayerNorm before the attention.
    pub layernorm_before: LayerNorm<B>,
    /// Query projection (with bias).
    pub query: Dense<B>,
    /// Key projection (with bias).
    pub key: Dense<B>,
    /// Value projection (with bias).
    pub value: Dense<B>,
    /// Attention output projection.
    pub attention_output: Dense<B>,
    /// LayerNorm before the feed-forward block.
    pub layernorm_after: LayerNorm<B>,
    /// Linear(hidden, intermediate), followed by GELU.
    pub intermediate: Dense<B>,
    /// Linear(intermediate, hidden).
    pub output: Dense<B>,
    /// Attention heads.
    pub num_heads: usize,
    /// Attention-probability dropout.
    pub attention_dropout: f64,
    /// Hidden-state dropout.
    pub hidden_dropout: f64,
}

impl<B: Backend> VitLayer<B> {
    fn new(p: &ScclipParams, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let h = p.hidden_size;
        VitLayer {
            layernorm_before: LayerNorm::new(h, 1e-12, device),
            query: Dense::new(h, h, true, rng, device),
            key: Dense::new(h, h, true, rng, device),
            value: Dense::new(h, h, true, rng, device),
            attention_output: Dense::new(h, h, true, rng, device),
            layernorm_after: LayerNorm::new(h, 1e-12, device),
            intermediate: Dense::new(h, p.intermediate_size, true, rng, device),
            output: Dense::new(p.intermediate_size, h, true, rng, device),
            num_heads: p.num_heads,
            attention_dropout: p.attention_dropout,
            hidden_dropout: p.hidden_dropout,
        }
    }

    fn forward(&self, x: Tensor<B, 3>, pass: Pass) -> Tensor<B, 3> {
        let [b, t, h] = x.dims();
        let nh = self.num_heads;
        let hd = h / nh;
        let normed = self.layernorm_before.forward(x.clone());
        let heads = |layer: &Dense<B>| {
            dense3(layer, normed.clone())
                .reshape([b, t, nh, hd])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (heads(&self.query), heads(&self.key), heads(&self.value));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt());
        let probs = dropout_nd(
            softmax(scores, 3),
            self.attention_dropout,
            sub_pass(pass, 1),
        );
        let context = probs.matmul(v).swap_dims(1, 2).reshape([b, t, h]);
        let attended = dropout_nd(
            dense3(&self.attention_output, context),
            self.hidden_dropout,
            sub_pass(pass, 2),
        );
        let x = attended.add(x);
        let inner = gelu(dense3(
            &self.intermediate,
            self.layernorm_after.forward(x.clone()),
        ));
        let out = dropout_nd(
            dense3(&self.output, inner),
            self.hidden_dropout,
            sub_pass(pass, 3),
        );
        out.add(x)
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.layernorm_before
            .export(&format!("{prefix}.layernorm_before"), out);
        self.query
            .export(&format!("{prefix}.attention.attention.query"), out);
        self.key
            .export(&format!("{prefix}.attention.attention.key"), out);
        self.value
            .export(&format!("{prefix}.attention.attention.value"), out);
        self.attention_output
            .export(&format!("{prefix}.attention.output.dense"), out);
        self.layernorm_after
            .export(&format!("{prefix}.layernorm_after"), out);
        self.intermediate
            .export(&format!("{prefix}.intermediate.dense"), out);
        self.output.export(&format!("{prefix}.output.dense"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.layernorm_before
            .import(&format!("{prefix}.layernorm_before"), store)?;
        self.query
            .import(&format!("{prefix}.attention.attention.query"), store)?;
        self.key
            .import(&format!("{prefix}.attention.attention.key"), store)?;
        self.value
            .import(&format!("{prefix}.attention.attention.value"), store)?;
        self.attention_output
            .import(&format!("{prefix}.attention.output.dense"), store)?;
        self.layernorm_after
            .import(&format!("{prefix}.layernorm_after"), store)?;
        self.intermediate
            .import(&format!("{prefix}.intermediate.dense"), store)?;
        self.output.import(&format!("{prefix}.output.dense"), store)
    }
}

/// The fork's `ViTModel` for one modality: patch embedding, CLS, positions, encoder, final
/// LayerNorm and pooler.
#[derive(Module, Debug)]
pub struct Vit<B: Backend> {
    /// Linear(patch width, hidden).
    pub patch_projection: Dense<B>,
    /// The CLS token, `[1, 1, hidden]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// Learned position embeddings, `[1, patches + 1, hidden]`.
    pub position_embeddings: Param<Tensor<B, 3>>,
    /// The encoder layers.
    pub layers: Vec<VitLayer<B>>,
    /// The final LayerNorm.
    pub layernorm: LayerNorm<B>,
    /// The pooler's Linear(hidden, hidden), followed by tanh.
    pub pooler: Dense<B>,
    /// Input features.
    pub n_features: usize,
    /// Patches.
    pub num_patches: usize,
    /// Features per patch, ⌈features / patches⌉.
    pub patch_size: usize,
    /// Dropout of the embeddings.
    pub hidden_dropout: f64,
}

impl<B: Backend> Vit<B> {
    fn new(n_features: usize, p: &ScclipParams, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let t = p.num_patches;
        let patch_size = n_features.div_ceil(t);
        let h = p.hidden_size;
        Vit {
            patch_projection: Dense::new(patch_size, h, true, rng, device),
            cls_token: zeros_param([1, 1, h], device),
            position_embeddings: zeros_param([1, t + 1, h], device),
            layers: (0..p.num_layers)
                .map(|_| VitLayer::new(p, rng, device))
                .collect(),
            layernorm: LayerNorm::new(h, 1e-12, device),
            pooler: Dense::new(h, h, true, rng, device),
            n_features,
            num_patches: t,
            patch_size,
            hidden_dropout: p.hidden_dropout,
        }
    }

    /// The pooled output `[b, hidden]` of `[b, features]`.
    pub fn forward(&self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let [b, g] = x.dims();
        let (t, ps) = (self.num_patches, self.patch_size);
        let pad = t * ps - g;
        let x = if pad > 0 {
            Tensor::cat(vec![x.clone(), Tensor::zeros([b, pad], &x.device())], 1)
        } else {
            x
        };
        let patches = dense3(&self.patch_projection, x.reshape([b, t, ps]));
        let h = patches.dims()[2];
        let cls = self.cls_token.val().repeat_dim(0, b);
        let mut tokens = Tensor::cat(vec![cls, patches], 1).add(self.position_embeddings.val());
        tokens = dropout_nd(tokens, self.hidden_dropout, sub_pass(pass, 0));
        for (i, layer) in self.layers.iter().enumerate() {
            tokens = layer.forward(tokens, sub_pass(pass, 100 + i as u64));
        }
        let tokens = self.layernorm.forward(tokens);
        let cls = tokens.slice([0..b, 0..1, 0..h]).reshape([b, h]);
        self.pooler.forward(cls).tanh()
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.patch_projection.export(
            &format!("{prefix}.embeddings.patch_embeddings.projection"),
            out,
        );
        crate::layers::export(
            format!("{prefix}.embeddings.cls_token"),
            &self.cls_token,
            out,
        );
        crate::layers::export(
            format!("{prefix}.embeddings.position_embeddings"),
            &self.position_embeddings,
            out,
        );
        for (i, l) in self.layers.iter().enumerate() {
            l.export(&format!("{prefix}.encoder.layer.{i}"), out);
        }
        self.layernorm.export(&format!("{prefix}.layernorm"), out);
        self.pooler.export(&format!("{prefix}.pooler.dense"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.patch_projection.import(
            &format!("{prefix}.embeddings.patch_embeddings.projection"),
            store,
        )?;
        crate::layers::import(
            format!("{prefix}.embeddings.cls_token"),
            &mut self.cls_token,
            store,
        )?;
        crate::layers::import(
            format!("{prefix}.embeddings.position_embeddings"),
            &mut self.position_embeddings,
            store,
        )?;
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.import(&format!("{prefix}.encoder.layer.{i}"), store)?;
        }
        self.layernorm
            .import(&format!("{prefix}.layernorm"), store)?;
        self.pooler.import(&format!("{prefix}.pooler.dense"), store)
    }
}

/// Both modalities' ViTs and heads.
#[derive(Module, Debug)]
pub struct ScclipNetwork<B: Backend> {
    /// The RNA ViT.
    pub rna_model: Vit<B>,
    /// The protein ViT (the fork's `atac_model`).
    pub protein_model: Vit<B>,
    /// RNA head, Linear(hidden, projection, no bias).
    pub rna_projection: Dense<B>,
    /// Protein head, Linear(hidden, projection, no bias).
    pub protein_projection: Dense<B>,
}

impl<B: Backend> ScclipNetwork<B> {
    /// A seeded network (PyTorch-default Linear initialisation, zero CLS and positions).
    pub fn new(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let p = &config.scclip;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rna_model = Vit::new(config.input_dims[0], p, &mut rng, device);
        let protein_model = Vit::new(config.input_dims[1], p, &mut rng, device);
        let rna_projection = Dense::new(p.hidden_size, p.projection_dim, false, &mut rng, device);
        let protein_projection =
            Dense::new(p.hidden_size, p.projection_dim, false, &mut rng, device);
        ScclipNetwork {
            rna_model,
            protein_model,
            rna_projection,
            protein_projection,
        }
    }

    /// The L2-normalised RNA embedding of prepared (scaled) RNA input.
    pub fn embed_rna(&self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let pooled = self.rna_model.forward(x, sub_pass(pass, 10));
        crate::losses::l2_normalize(self.rna_projection.forward(pooled))
    }

    /// The L2-normalised protein embedding of prepared (binarised) protein input.
    pub fn embed_protein(&self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let pooled = self.protein_model.forward(x, sub_pass(pass, 11));
        crate::losses::l2_normalize(self.protein_projection.forward(pooled))
    }

    /// Every tensor with its checkpoint name (the fork's parameter names, `atac` → `protein`).
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.rna_model.export("rna_model", &mut out);
        self.protein_model.export("protein_model", &mut out);
        self.rna_projection.export("rna_projection", &mut out);
        self.protein_projection
            .export("protein_projection", &mut out);
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.rna_model.import("rna_model", &mut store)?;
        self.protein_model.import("protein_model", &mut store)?;
        self.rna_projection.import("rna_projection", &mut store)?;
        self.protein_projection
            .import("protein_projection", &mut store)?;
        reject_leftovers(&store)
    }
}

/// The CLIP loss of normalised embeddings `a` (RNA) and `r` (protein) with the fixed log scale
/// `s`: ½[CE(e^s·a·rᵀ, I) + CE(e^s·r·aᵀ, I)].
pub fn clip_loss<B: Backend>(a: Tensor<B, 2>, r: Tensor<B, 2>, s: f64) -> Tensor<B, 1> {
    let scale = Tensor::<B, 1>::from_floats([s as f32], &a.device());
    crate::losses::clip(a, r, scale)
}

/// The per-gene scale of `rna`: max |x| over the cells, 1 where a gene is all zeros.
pub fn maxabs(rna: ArrayView2<'_, f32>) -> Vec<f32> {
    rna.fold_axis(Axis(0), 0.0f32, |m, v| m.max(v.abs()))
        .iter()
        .map(|&m| if m == 0.0 { 1.0 } else { m })
        .collect()
}

/// The method's input transformation: RNA divided by `scale` per gene (when given), protein
/// binarised (when `binarize`).
pub fn prepare(
    rna: ArrayView2<'_, f32>,
    protein: ArrayView2<'_, f32>,
    scale: Option<&[f32]>,
    binarize: bool,
) -> (Array2<f32>, Array2<f32>) {
    let mut r = rna.to_owned();
    if let Some(s) = scale {
        for mut row in r.rows_mut() {
            for (v, &d) in row.iter_mut().zip(s) {
                *v /= d;
            }
        }
    }
    let p = if binarize {
        protein.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 })
    } else {
        protein.to_owned()
    };
    (r, p)
}

/// scCLIP's training state (the fixed logit scale).
pub struct ScclipObjective<B: AutodiffBackend> {
    logit_scale: f64,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> Objective<B> for ScclipObjective<B> {
    type Network = ScclipNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, ScclipNetwork<B>)> {
        Ok((
            ScclipObjective {
                logit_scale: config.scclip.logit_scale,
                backend: PhantomData,
            },
            ScclipNetwork::new(config, training.seed, device),
        ))
    }

    /// Every cell; the last short mini-batch is kept (the fork's `DataLoader`,
    /// `drop_last=False`).
    fn plan(_config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        Ok(TrainPlan {
            min_last_batch: Some(1),
            ..TrainPlan::standard(training, n_cells)
        })
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) -> Option<f64> {
        None
    }

    fn loss(
        &mut self,
        net: &mut ScclipNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        let mut features = inputs.features.into_iter();
        let (Some(rna), Some(protein)) = (features.next(), features.next()) else {
            return Err(ModelError::Inconsistent(
                "scCLIP's RNA and protein features".into(),
            ));
        };
        let pass = step.pass(0);
        let a = net.embed_rna(rna, pass);
        let r = net.embed_protein(protein, pass);
        Ok(clip_loss(a, r, self.logit_scale))
    }

    fn export(net: &ScclipNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

struct ScclipFamily;

impl ObjectiveFamily for ScclipFamily {
    type On<B: AutodiffBackend> = ScclipObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scclip;

/// Cells per forward pass when embedding (the attention maps of 8 heads × 129² per cell).
const EMBED_CHUNK: usize = 256;

impl Scclip {
    /// The network on the CPU with `tensors` loaded (the RNA scale, if any, is ignored here).
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ScclipNetwork<CpuBackend>> {
        let mut net = ScclipNetwork::<CpuBackend>::new(config, 0, &Default::default());
        net.import(
            tensors
                .iter()
                .filter(|t| t.name != RNA_MAXABS)
                .cloned()
                .collect(),
        )?;
        Ok(net)
    }

    /// The stored per-gene RNA scale (when `maxabs_rna`), checked against the gene count.
    fn scale<'a>(config: &ModelConfig, tensors: &'a [NamedTensor]) -> Result<Option<&'a [f32]>> {
        let found = tensors.iter().find(|t| t.name == RNA_MAXABS);
        let bad = |message: String| ModelError::Checkpoint {
            path: Default::default(),
            message,
        };
        match (config.scclip.maxabs_rna, found) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err(bad(format!(
                "tensor {RNA_MAXABS} does not belong to this model (maxabs_rna is off)"
            ))),
            (true, None) => Err(bad(format!("tensor {RNA_MAXABS} is missing"))),
            (true, Some(t)) => {
                let g = config.input_dims[0];
                if t.shape != [g] || t.data.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(bad(format!(
                        "tensor {RNA_MAXABS} must hold {g} positive scales, has shape {:?}",
                        t.shape
                    )));
                }
                Ok(Some(&t.data))
            }
        }
    }
}

impl Method for Scclip {
    fn name(&self) -> &'static str {
        "scclip"
    }

    fn summary(&self) -> &'static str {
        "scCLIP: one ViT per modality (RNA, protein) aligned by a CLIP loss (the benchmark's fork)"
    }

    /// The fork's `lightning.py` and `train_clip.py`: AdamW (lr 1.5e-4, weight decay 0.05),
    /// 2,000 warm-up steps then cosine decay to 0, batches of 256, gradient norm clipped at 5.
    /// 100 epochs instead of the fork's 30,000 steps (≈ 384 epochs of 20,000 cells), a budget a
    /// CPU can afford; raise `training.epochs` for the reference's length.
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 100,
            batch_size: 256,
            lr: 1.5e-4,
            weight_decay: 0.05,
            optimizer: OptimizerKind::AdamW,
            schedule: LrSchedule::WarmupCosine { warmup_steps: 2000 },
            gradient_clip: Some(5.0),
            ..TrainConfig::default()
        }
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            features: true,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.scclip;
        if config.input_dims.len() != 2 {
            return Err(invalid(
                "data.protein_key",
                "scCLIP aligns RNA with protein: give the protein block (data.protein_key / --protein-key)",
            ));
        }
        for (name, v) in [
            ("model.scclip.hidden_size", p.hidden_size),
            ("model.scclip.num_layers", p.num_layers),
            ("model.scclip.num_heads", p.num_heads),
            ("model.scclip.intermediate_size", p.intermediate_size),
            ("model.scclip.num_patches", p.num_patches),
            ("model.scclip.projection_dim", p.projection_dim),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if !p.hidden_size.is_multiple_of(p.num_heads) {
            return Err(invalid(
                "model.scclip.num_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    p.num_heads, p.hidden_size
                ),
            ));
        }
        for (name, v) in [
            ("model.scclip.attention_dropout", p.attention_dropout),
            ("model.scclip.hidden_dropout", p.hidden_dropout),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(invalid(name, "expected a probability in [0, 1)"));
            }
        }
        if !(p.logit_scale.is_finite() && p.logit_scale.abs() <= 20.0) {
            return Err(invalid(
                "model.scclip.logit_scale",
                "expected a finite log scale in [-20, 20]",
            ));
        }
        Ok(())
    }

    fn fit(
        &self,
        config: &ModelConfig,
        training: &TrainConfig,
        n_cells: usize,
        source: &mut BatchSource<'_>,
        progress: &mut dyn FnMut(&TrainEvent),
    ) -> Result<Fitted> {
        let p = &config.scclip;
        // the per-gene maxima over every training cell, before any step
        let scale = if p.maxabs_rna {
            let cells: Vec<usize> = (0..n_cells).collect();
            let batch = source(BatchRequest {
                epoch: 0,
                step: 0,
                cells: &cells,
                needs: BatchNeeds {
                    all_cells: true,
                    ..self.needs(config)
                },
            })
            .map_err(|message| ModelError::Views { epoch: 0, message })?;
            let views: Vec<_> = batch.features.iter().map(|x| x.view()).collect();
            let n = check_inputs(&config.input_dims, &views).map_err(|e| ModelError::Views {
                epoch: 0,
                message: e.to_string(),
            })?;
            if n != n_cells {
                return Err(ModelError::Views {
                    epoch: 0,
                    message: format!("{n} cells given, {n_cells} expected"),
                });
            }
            Some(maxabs(views[0]))
        } else {
            None
        };
        let binarize = p.binarize_protein;
        let mut prepared = |r: BatchRequest<'_>| -> std::result::Result<MiniBatch, String> {
            let mut batch = source(r)?;
            if batch.features.len() == 2 {
                let (rna, protein) = prepare(
                    batch.features[0].view(),
                    batch.features[1].view(),
                    scale.as_deref(),
                    binarize,
                );
                batch.features = vec![rna, protein];
            }
            Ok(batch)
        };
        let mut fitted =
            fit_objective::<ScclipFamily>(config, training, n_cells, &mut prepared, progress)?;
        if let Some(s) = scale {
            fitted.tensors.push(NamedTensor {
                name: RNA_MAXABS.into(),
                shape: vec![s.len()],
                data: s,
            });
        }
        Ok(fitted)
    }

    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = check_inputs(&config.input_dims, &inputs.features)?;
        let scale = Self::scale(config, tensors)?;
        let net = Self::cpu_network(config, tensors)?;
        let width = config.scclip.projection_dim;
        let mut out = Embeddings::builder(2, n);
        let mut start = 0;
        while start < n {
            let end = (start + EMBED_CHUNK).min(n);
            let rows = ndarray::s![start..end, ..];
            let (rna, protein) = prepare(
                inputs.features[0].slice(rows),
                inputs.features[1].slice(rows),
                scale,
                config.scclip.binarize_protein,
            );
            let device = Default::default();
            let to_tensor = |x: Array2<f32>| {
                let (r, c) = x.dim();
                tensor_from::<CpuBackend, 2>(x.into_raw_vec_and_offset().0, [r, c], &device)
            };
            let a = tensor_values(net.embed_rna(to_tensor(rna), Pass::EVAL));
            let r = tensor_values(net.embed_protein(to_tensor(protein), Pass::EVAL));
            let mut joint = Vec::with_capacity(a.len() * 2);
            for (ra, rr) in a.chunks(width).zip(r.chunks(width)) {
                joint.extend_from_slice(ra);
                joint.extend_from_slice(rr);
            }
            out.push_modality(0, width, a);
            out.push_modality(1, width, r);
            out.push_joint(2 * width, joint);
            start = end;
        }
        out.finish()
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::scale(config, tensors)?;
        Self::cpu_network(config, tensors).map(|_| ())
    }
}
