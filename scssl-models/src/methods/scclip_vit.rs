//! scCLIP's networks (methods.md §5.4): the HF-style ViT of each modality (patching, CLS and
//! position embeddings, pre-LN encoder layers, final LayerNorm, tanh pooler) and the two
//! projection heads; the method, its loss and training are in [`super::scclip`].

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::scclip::ScclipParams;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::fused::attention::{AttentionSpec, self_attention};
use crate::fused::dropout::dropout;
use crate::fused::gelu::gelu;
use crate::fused::layer_norm::layer_norm;
use crate::fused::linear::linear;
use crate::layers::{Dense, NamedTensor, Pass, reject_leftovers};

/// A seed for dropout site `site` of a pass.
pub(super) fn sub_pass(pass: Pass, site: u64) -> Pass {
    let mut h = pass.dropout_seed ^ site.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pass {
        dropout_seed: h ^ (h >> 31),
        ..pass
    }
}

/// A linear layer applied to the last dimension of `[b, t, in]`.
pub(super) fn dense3<B: Backend>(layer: &Dense<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    linear(layer, x)
}

pub(super) fn zeros_param<B: Backend, const D: usize>(
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
        layer_norm(x, self.weight.val(), self.bias.val(), self.eps)
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
        let normed = self.layernorm_before.forward(x.clone());
        let (q, k, v) = (
            dense3(&self.query, normed.clone()),
            dense3(&self.key, normed.clone()),
            dense3(&self.value, normed),
        );
        let context = self_attention(
            q,
            k,
            v,
            AttentionSpec {
                heads: self.num_heads,
                dropout: if pass.train {
                    self.attention_dropout
                } else {
                    0.0
                },
                seed: sub_pass(pass, 1).dropout_seed,
            },
        );
        let attended = dropout(
            dense3(&self.attention_output, context),
            self.hidden_dropout,
            sub_pass(pass, 2),
        );
        let x = attended.add(x);
        let inner = gelu(dense3(
            &self.intermediate,
            self.layernorm_after.forward(x.clone()),
        ));
        let out = dropout(
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
        tokens = dropout(tokens, self.hidden_dropout, sub_pass(pass, 0));
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
