//! The PyTorch building blocks scTEL's network is made of (methods.md §5.9; `TE_Layer.py`):
//! PReLU, LayerNorm and `TransformerEncoderLayer` (post-norm, ReLU), each with its weight
//! import and export, and the per-module dropout seeds. Re-exported from `sctel_network`, so
//! their paths are unchanged.

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::sctel_network::TE_DROPOUT;
use crate::error::Result;
use crate::layers::{Dense, NamedTensor, Pass, dropout, dropout_nd, export, import, tensor_from};

/// LayerNorm ε (PyTorch's default).
const LN_EPS: f64 = 1e-5;
/// PReLU's initial slope (PyTorch's default).
const PRELU_INIT: f32 = 0.25;

/// The pass of dropout site `site` within a module: its own mask seed.
pub(super) fn sub(pass: Pass, site: u64) -> Pass {
    let mut h = pass.dropout_seed ^ site.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pass {
        dropout_seed: h ^ (h >> 31),
        ..pass
    }
}

/// PReLU: one slope shared by every entry (`PReLU()`) or one per channel
/// (`PReLU(num_parameters = C)`, channels on axis 1).
#[derive(Module, Debug)]
pub struct Prelu<B: Backend> {
    /// Slopes of the negative side, `[1]` or `[C]`.
    pub weight: Param<Tensor<B, 1>>,
}

impl<B: Backend> Prelu<B> {
    /// `n` slopes at PyTorch's initial 0.25.
    pub fn new(n: usize, device: &B::Device) -> Self {
        Prelu {
            weight: Param::initialized(
                ParamId::new(),
                tensor_from::<B, 1>(vec![PRELU_INIT; n], [n], device).require_grad(),
            ),
        }
    }

    /// The shared slope applied to every entry.
    pub fn shared<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let a: Tensor<B, D> = self.weight.val().reshape([1; D]);
        x.clone().clamp_min(0.0).add(x.clamp_max(0.0).mul(a))
    }

    /// One slope per column of `[n, C]`.
    pub fn channels(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let a = self.weight.val().unsqueeze_dim::<2>(0);
        x.clone().clamp_min(0.0).add(x.clamp_max(0.0).mul(a))
    }

    pub(super) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        export(format!("{prefix}.weight"), &self.weight, out);
    }

    pub(super) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        import(format!("{prefix}.weight"), &mut self.weight, store)
    }
}

/// LayerNorm over the last axis (γ = 1, β = 0 initially, ε 1e-5).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale γ.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift β.
    pub beta: Param<Tensor<B, 1>>,
}

impl<B: Backend> LayerNorm<B> {
    pub(super) fn new(d: usize, device: &B::Device) -> Self {
        let p = |v: f32| {
            Param::initialized(
                ParamId::new(),
                tensor_from::<B, 1>(vec![v; d], [d], device).require_grad(),
            )
        };
        LayerNorm {
            gamma: p(1.0),
            beta: p(0.0),
        }
    }

    /// Normalises every row of `[n, d]` (biased variance, as PyTorch).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mean = x.clone().mean_dim(1);
        let centred = x.sub(mean);
        let var = centred.clone().square().mean_dim(1);
        centred
            .div(var.add_scalar(LN_EPS).sqrt())
            .mul(self.gamma.val().unsqueeze_dim(0))
            .add(self.beta.val().unsqueeze_dim(0))
    }

    pub(super) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        export(format!("{prefix}.gamma"), &self.gamma, out);
        export(format!("{prefix}.beta"), &self.beta, out);
    }

    pub(super) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        import(format!("{prefix}.gamma"), &mut self.gamma, store)?;
        import(format!("{prefix}.beta"), &mut self.beta, store)
    }
}

/// PyTorch's `TransformerEncoderLayer(d, heads, dim_feedforward = d, dropout = 0.2,
/// batch_first = True)`: post-norm, ReLU.
///
/// x ← LN1(x + Drop(MHA(x))), x ← LN2(x + Drop(W2·Drop(ReLU(W1·x)))); the attention weights
/// get dropout too (MHA's own `dropout`).
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Q, K, V projections in one (`in_proj_weight` transposed, `[d, 3d]`; Xavier-uniform,
    /// bias 0).
    pub in_proj: Dense<B>,
    /// Output projection (bias 0 initially).
    pub out_proj: Dense<B>,
    /// Feed-forward d → d.
    pub linear1: Dense<B>,
    /// Feed-forward d → d.
    pub linear2: Dense<B>,
    /// LayerNorm after attention.
    pub norm1: LayerNorm<B>,
    /// LayerNorm after the feed-forward block.
    pub norm2: LayerNorm<B>,
    /// Attention heads.
    pub heads: usize,
    /// Dropout of the attention weights and the two residual branches ([`TE_DROPOUT`]).
    pub dropout: f64,
}

impl<B: Backend> EncoderLayer<B> {
    pub(super) fn new(d: usize, heads: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        // MultiheadAttention._reset_parameters: xavier_uniform_ on [3d, d], biases 0
        let bound = (6.0 / (4 * d) as f64).sqrt() as f32;
        let w: Vec<f32> = (0..3 * d * d)
            .map(|_| rng.random_range(-bound..=bound))
            .collect();
        let zeros = |n: usize| {
            Some(Param::initialized(
                ParamId::new(),
                tensor_from::<B, 1>(vec![0.0; n], [n], device).require_grad(),
            ))
        };
        let in_proj = Dense {
            weight: Param::initialized(
                ParamId::new(),
                tensor_from::<B, 2>(w, [d, 3 * d], device).require_grad(),
            ),
            bias: zeros(3 * d),
        };
        let mut out_proj = Dense::new(d, d, true, rng, device);
        out_proj.bias = zeros(d);
        EncoderLayer {
            in_proj,
            out_proj,
            linear1: Dense::new(d, d, true, rng, device),
            linear2: Dense::new(d, d, true, rng, device),
            norm1: LayerNorm::new(d, device),
            norm2: LayerNorm::new(d, device),
            heads,
            dropout: TE_DROPOUT,
        }
    }

    /// Applies the layer to `[batch, tokens, d]`.
    pub fn forward(&self, x: Tensor<B, 3>, pass: Pass) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let h = self.heads;
        let hd = d / h;
        let flat = x.reshape([b * t, d]);
        let qkv = self.in_proj.forward(flat.clone());
        let split = |i: usize| -> Tensor<B, 4> {
            qkv.clone()
                .narrow(1, i * d, d)
                .reshape([b, t, h, hd])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = q
            .mul_scalar(1.0 / (hd as f64).sqrt())
            .matmul(k.swap_dims(2, 3));
        let attn = dropout_nd(softmax(scores, 3), self.dropout, sub(pass, 0));
        let o = attn.matmul(v).swap_dims(1, 2).reshape([b * t, d]);
        let sa = dropout(self.out_proj.forward(o), self.dropout, sub(pass, 1));
        let x = self.norm1.forward(flat.add(sa));
        let ff = dropout(
            relu(self.linear1.forward(x.clone())),
            self.dropout,
            sub(pass, 2),
        );
        let ff = dropout(self.linear2.forward(ff), self.dropout, sub(pass, 3));
        self.norm2.forward(x.add(ff)).reshape([b, t, d])
    }

    pub(super) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.in_proj.export(&format!("{prefix}.in_proj"), out);
        self.out_proj.export(&format!("{prefix}.out_proj"), out);
        self.linear1.export(&format!("{prefix}.linear1"), out);
        self.linear2.export(&format!("{prefix}.linear2"), out);
        self.norm1.export(&format!("{prefix}.norm1"), out);
        self.norm2.export(&format!("{prefix}.norm2"), out);
    }

    pub(super) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        self.in_proj.import(&format!("{prefix}.in_proj"), store)?;
        self.out_proj.import(&format!("{prefix}.out_proj"), store)?;
        self.linear1.import(&format!("{prefix}.linear1"), store)?;
        self.linear2.import(&format!("{prefix}.linear2"), store)?;
        self.norm1.import(&format!("{prefix}.norm1"), store)?;
        self.norm2.import(&format!("{prefix}.norm2"), store)
    }
}
