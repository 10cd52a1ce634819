//! scTEL's network (methods.md §5.9; `scTEL/Network/scTEL.py`, `TE_Layer.py`): Input_TE, two
//! FF_TE blocks, three LSTM cells, the protein mean head and the quantile head.
//!
//! Shapes follow the reference: a cell's d-vector becomes a sequence of d tokens of width d
//! (`Linear(1, d)` applied to every entry), a PyTorch `TransformerEncoderLayer` (post-norm,
//! ReLU, `dim_feedforward = d`, dropout 0.2, LayerNorm ε 1e-5) runs over it, and `Linear(d, 1)`
//! folds it back to d values. The BatchNorms of the token sequence normalise over the token
//! axis (PyTorch's `BatchNorm1d(d)` on `(B, d, d)` takes axis 1, the tokens, as channels).
//!
//! Modules the reference defines but never calls (`Input_TE.Linear_in`,
//! `Input_TE.dropout_out`, `FF_Embedding.BN`, `Protein_Linear.BN2`) are not built: they
//! change no output, only the parameter count.
//!
//! PReLU, LayerNorm and the encoder layer are in `sctel_layers.rs`, re-exported here.

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::layers::{
    BatchNorm1d, Dense, NamedTensor, Pass, dropout, dropout_nd, reject_leftovers, tensor_from,
};

/// Dropout of the transformer encoder layers (fixed in the reference).
pub const TE_DROPOUT: f64 = 0.2;
/// Hidden width of the protein mean head (fixed in the reference).
pub const PROTEIN_HIDDEN: usize = 256;

// the PyTorch building blocks, at their old paths
use super::sctel_layers::sub;
pub use super::sctel_layers::{EncoderLayer, LayerNorm, Prelu};
/// `[n, d]` → `[n, d, d]`: `Linear(1, d)` applied to every entry (token j of cell i is
/// x_ij·w + b).
fn tokens<B: Backend>(linear: &Dense<B>, x: Tensor<B, 2>) -> Tensor<B, 3> {
    let [n, d] = x.dims();
    let width = linear.weight.val().dims()[1];
    linear.forward(x.reshape([n * d, 1])).reshape([n, d, width])
}

/// `[n, d, d]` → `[n, d]`: `Linear(d, 1)` on every token.
fn fold<B: Backend>(linear: &Dense<B>, x: Tensor<B, 3>) -> Tensor<B, 2> {
    let [n, t, d] = x.dims();
    linear.forward(x.reshape([n * t, d])).reshape([n, t])
}

/// `BatchNorm1d(d)` on `[n, d, k]`: channels on axis 1 (the tokens), statistics over cells and
/// axis 2.
fn bn_tokens<B: Backend>(bn: &mut BatchNorm1d<B>, x: Tensor<B, 3>, pass: Pass) -> Tensor<B, 3> {
    let [n, t, k] = x.dims();
    let rows = x.swap_dims(1, 2).reshape([n * k, t]);
    bn.forward(rows, pass).reshape([n, k, t]).swap_dims(1, 2)
}

/// `Input_TE`: Linear(G, d) → BN → PReLU → tokens (Linear(1, d)) → BN over tokens → the same
/// PReLU → Dropout → encoder layer → Linear(d, 1) → BN(d) → PReLU(d).
#[derive(Module, Debug)]
pub struct InputTe<B: Backend> {
    /// Linear(G, d) (`embedding.embedding`).
    pub embed: Dense<B>,
    /// BN(d) after it (`embedding.bnorm_in`).
    pub bn_in: BatchNorm1d<B>,
    /// Linear(1, d) making tokens (`embedding.Linear_out`).
    pub token: Dense<B>,
    /// BN over the token axis (`embedding.bnorm_out`).
    pub bn_tokens: BatchNorm1d<B>,
    /// The shared scalar PReLU, used twice (`embedding.act`).
    pub act: Prelu<B>,
    /// The transformer encoder layer (`TE`).
    pub te: EncoderLayer<B>,
    /// Linear(d, 1) (`Linear_out`).
    pub out: Dense<B>,
    /// BN(d) over the folded tokens (`bnorm_out`).
    pub bn_out: BatchNorm1d<B>,
    /// PReLU with one slope per token (`act`).
    pub act_out: Prelu<B>,
    /// Dropout after the token BN (the reference's `drop_rate`).
    pub dropout: f64,
}

impl<B: Backend> InputTe<B> {
    fn new(
        g: usize,
        d: usize,
        heads: usize,
        dropout: f64,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        InputTe {
            embed: Dense::new(g, d, true, rng, device),
            bn_in: BatchNorm1d::new(d, true, device),
            token: Dense::new(1, d, true, rng, device),
            bn_tokens: BatchNorm1d::new(d, true, device),
            act: Prelu::new(1, device),
            te: EncoderLayer::new(d, heads, rng, device),
            out: Dense::new(d, 1, true, rng, device),
            bn_out: BatchNorm1d::new(d, true, device),
            act_out: Prelu::new(d, device),
            dropout,
        }
    }

    /// `[n, G]` → x1 `[n, d]`.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let e = self.embed.forward(x);
        let e = self.act.shared(self.bn_in.forward(e, pass));
        let t = bn_tokens(&mut self.bn_tokens, tokens(&self.token, e), pass);
        let t = dropout_nd(self.act.shared(t), self.dropout, sub(pass, 10));
        let y = fold(&self.out, self.te.forward(t, sub(pass, 11)));
        self.act_out.channels(self.bn_out.forward(y, pass))
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.embed.export(&format!("{prefix}.embed"), out);
        self.bn_in.export(&format!("{prefix}.bn_in"), out);
        self.token.export(&format!("{prefix}.token"), out);
        self.bn_tokens.export(&format!("{prefix}.bn_tokens"), out);
        self.act.export(&format!("{prefix}.act"), out);
        self.te.export(&format!("{prefix}.te"), out);
        self.out.export(&format!("{prefix}.out"), out);
        self.bn_out.export(&format!("{prefix}.bn_out"), out);
        self.act_out.export(&format!("{prefix}.act_out"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.embed.import(&format!("{prefix}.embed"), store)?;
        self.bn_in.import(&format!("{prefix}.bn_in"), store)?;
        self.token.import(&format!("{prefix}.token"), store)?;
        self.bn_tokens
            .import(&format!("{prefix}.bn_tokens"), store)?;
        self.act.import(&format!("{prefix}.act"), store)?;
        self.te.import(&format!("{prefix}.te"), store)?;
        self.out.import(&format!("{prefix}.out"), store)?;
        self.bn_out.import(&format!("{prefix}.bn_out"), store)?;
        self.act_out.import(&format!("{prefix}.act_out"), store)
    }
}

/// `FF_TE`: tokens (Linear(1, d)) → scalar PReLU → encoder layer → Linear(d, 1) → BN(d) →
/// PReLU(d) → Dropout.
#[derive(Module, Debug)]
pub struct FfTe<B: Backend> {
    /// Linear(1, d) making tokens (`FF_Em.FC`).
    pub token: Dense<B>,
    /// The scalar PReLU after it (`FF_Em.act`).
    pub act: Prelu<B>,
    /// The transformer encoder layer (`TE`).
    pub te: EncoderLayer<B>,
    /// Linear(d, 1) (`FC`).
    pub out: Dense<B>,
    /// BN(d) (`BN`).
    pub bn_out: BatchNorm1d<B>,
    /// PReLU with one slope per token (`act`).
    pub act_out: Prelu<B>,
    /// Final dropout (the reference's `drop_rate`).
    pub dropout: f64,
}

impl<B: Backend> FfTe<B> {
    fn new(d: usize, heads: usize, dropout: f64, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        FfTe {
            token: Dense::new(1, d, true, rng, device),
            act: Prelu::new(1, device),
            te: EncoderLayer::new(d, heads, rng, device),
            out: Dense::new(d, 1, true, rng, device),
            bn_out: BatchNorm1d::new(d, true, device),
            act_out: Prelu::new(d, device),
            dropout,
        }
    }

    /// `[n, d]` → `[n, d]`.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let t = self.act.shared(tokens(&self.token, x));
        let y = fold(&self.out, self.te.forward(t, sub(pass, 20)));
        let y = self.act_out.channels(self.bn_out.forward(y, pass));
        dropout(y, self.dropout, sub(pass, 21))
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.token.export(&format!("{prefix}.token"), out);
        self.act.export(&format!("{prefix}.act"), out);
        self.te.export(&format!("{prefix}.te"), out);
        self.out.export(&format!("{prefix}.out"), out);
        self.bn_out.export(&format!("{prefix}.bn_out"), out);
        self.act_out.export(&format!("{prefix}.act_out"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.token.import(&format!("{prefix}.token"), store)?;
        self.act.import(&format!("{prefix}.act"), store)?;
        self.te.import(&format!("{prefix}.te"), store)?;
        self.out.import(&format!("{prefix}.out"), store)?;
        self.bn_out.import(&format!("{prefix}.bn_out"), store)?;
        self.act_out.import(&format!("{prefix}.act_out"), store)
    }
}

/// PyTorch's `LSTMCell(d, d)`: gates = x·W_ih + b_ih + h·W_hh + b_hh split as (i, f, g, o);
/// c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c'). Every weight and bias U(−1/√d, 1/√d).
#[derive(Module, Debug)]
pub struct LstmCell<B: Backend> {
    /// Input weights `[in, 4d]` (`weight_ih` transposed) and `bias_ih`.
    pub ih: Dense<B>,
    /// Hidden weights `[d, 4d]` (`weight_hh` transposed) and `bias_hh`.
    pub hh: Dense<B>,
}

impl<B: Backend> LstmCell<B> {
    fn new(d_in: usize, d: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let bound = 1.0 / (d as f32).sqrt();
        let mut layer = |rows: usize| {
            let w: Vec<f32> = (0..rows * 4 * d)
                .map(|_| rng.random_range(-bound..=bound))
                .collect();
            let b: Vec<f32> = (0..4 * d)
                .map(|_| rng.random_range(-bound..=bound))
                .collect();
            Dense {
                weight: Param::initialized(
                    ParamId::new(),
                    tensor_from::<B, 2>(w, [rows, 4 * d], device).require_grad(),
                ),
                bias: Some(Param::initialized(
                    ParamId::new(),
                    tensor_from::<B, 1>(b, [4 * d], device).require_grad(),
                )),
            }
        };
        let ih = layer(d_in);
        let hh = layer(d);
        LstmCell { ih, hh }
    }

    /// One step from state `(h, c)`; returns `(h', c')`.
    pub fn forward(
        &self,
        x: Tensor<B, 2>,
        h: Tensor<B, 2>,
        c: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let gates = self.ih.forward(x).add(self.hh.forward(h));
        let d = gates.dims()[1] / 4;
        let gate = |k: usize| gates.clone().narrow(1, k * d, d);
        let (i, f, g, o) = (gate(0), gate(1), gate(2), gate(3));
        let c = sigmoid(f).mul(c).add(sigmoid(i).mul(tanh(g)));
        let h = sigmoid(o).mul(tanh(c.clone()));
        (h, c)
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.ih.export(&format!("{prefix}.ih"), out);
        self.hh.export(&format!("{prefix}.hh"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.ih.import(&format!("{prefix}.ih"), store)?;
        self.hh.import(&format!("{prefix}.hh"), store)
    }
}

/// `Protein_Linear`: Linear(d, d) → BN → PReLU → Dropout → Linear(d, 256) → PReLU →
/// Linear(256, P) → PReLU, one scalar PReLU throughout (also on the output).
#[derive(Module, Debug)]
pub struct ProteinHead<B: Backend> {
    /// Linear(d, d) (`FC1`).
    pub fc1: Dense<B>,
    /// BN(d) (`BN1`).
    pub bn1: BatchNorm1d<B>,
    /// Linear(d, 256) (`FC2`).
    pub fc2: Dense<B>,
    /// Linear(256, P) (`FC3`).
    pub fc3: Dense<B>,
    /// The shared scalar PReLU (`act`).
    pub act: Prelu<B>,
    /// Dropout after the first block.
    pub dropout: f64,
}

impl<B: Backend> ProteinHead<B> {
    fn new(d: usize, p: usize, dropout: f64, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        ProteinHead {
            fc1: Dense::new(d, d, true, rng, device),
            bn1: BatchNorm1d::new(d, true, device),
            fc2: Dense::new(d, PROTEIN_HIDDEN, true, rng, device),
            fc3: Dense::new(PROTEIN_HIDDEN, p, true, rng, device),
            act: Prelu::new(1, device),
            dropout,
        }
    }

    /// `[n, d]` → the protein means `[n, P]`.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let y = self.act.shared(self.bn1.forward(self.fc1.forward(x), pass));
        let y = dropout(y, self.dropout, sub(pass, 30));
        let y = self.act.shared(self.fc2.forward(y));
        self.act.shared(self.fc3.forward(y))
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.fc1.export(&format!("{prefix}.fc1"), out);
        self.bn1.export(&format!("{prefix}.bn1"), out);
        self.fc2.export(&format!("{prefix}.fc2"), out);
        self.fc3.export(&format!("{prefix}.fc3"), out);
        self.act.export(&format!("{prefix}.act"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.fc1.import(&format!("{prefix}.fc1"), store)?;
        self.bn1.import(&format!("{prefix}.bn1"), store)?;
        self.fc2.import(&format!("{prefix}.fc2"), store)?;
        self.fc3.import(&format!("{prefix}.fc3"), store)?;
        self.act.import(&format!("{prefix}.act"), store)
    }
}

/// What one forward pass gives.
#[derive(Debug, Clone)]
pub struct SctelOutput<B: Backend> {
    /// The embedding h3 `[n, d]`.
    pub embedding: Tensor<B, 2>,
    /// The protein means `[n, P]`.
    pub protein: Tensor<B, 2>,
    /// The quantile predictions `[n, P, Q]` (absent without quantiles).
    pub quantiles: Option<Tensor<B, 3>>,
}

/// The whole network: Input_TE → LSTM1, FF_TE2 → LSTM2, FF_TE3 → LSTM3; heads on x3.
#[derive(Module, Debug)]
pub struct SctelNetwork<B: Backend> {
    /// Input_TE (`input_TE_1`).
    pub input: InputTe<B>,
    /// FF_TE 2 (`FF_TE_2`).
    pub ff2: FfTe<B>,
    /// FF_TE 3 (`FF_TE_3`).
    pub ff3: FfTe<B>,
    /// `LSTMCell1`.
    pub lstm1: LstmCell<B>,
    /// `LSTMCell2`.
    pub lstm2: LstmCell<B>,
    /// `LSTMCell3`.
    pub lstm3: LstmCell<B>,
    /// The protein mean head (`mod2_out.MSE_layer`).
    pub protein: ProteinHead<B>,
    /// Linear(d, Q·P), read as `[n, P, Q]` (`mod2_out.Quantile_layer.0`); absent without
    /// quantiles.
    pub quantile: Option<Dense<B>>,
    /// Number of quantiles Q.
    pub n_quantiles: usize,
}

impl<B: Backend> SctelNetwork<B> {
    /// A seeded network for `g` genes and `p` proteins, width `d`, `heads` attention heads,
    /// dropout `dropout` (the reference's `drop_rate`) and `n_quantiles` quantiles.
    pub fn new(
        g: usize,
        p: usize,
        d: usize,
        heads: usize,
        dropout: f64,
        n_quantiles: usize,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lstm1 = LstmCell::new(d, d, &mut rng, device);
        let lstm2 = LstmCell::new(d, d, &mut rng, device);
        let lstm3 = LstmCell::new(d, d, &mut rng, device);
        let input = InputTe::new(g, d, heads, dropout, &mut rng, device);
        let ff2 = FfTe::new(d, heads, dropout, &mut rng, device);
        let ff3 = FfTe::new(d, heads, dropout, &mut rng, device);
        let protein = ProteinHead::new(d, p, dropout, &mut rng, device);
        let quantile =
            (n_quantiles > 0).then(|| Dense::new(d, p * n_quantiles, true, &mut rng, device));
        SctelNetwork {
            input,
            ff2,
            ff3,
            lstm1,
            lstm2,
            lstm3,
            protein,
            quantile,
            n_quantiles,
        }
    }

    /// Sets every dropout rate: `block` for the Input_TE tokens, the FF_TE outputs and the
    /// protein head, `encoder` inside the three encoder layers (tests run train mode without
    /// dropout this way).
    pub fn set_dropout(&mut self, block: f64, encoder: f64) {
        self.input.dropout = block;
        self.ff2.dropout = block;
        self.ff3.dropout = block;
        self.protein.dropout = block;
        self.input.te.dropout = encoder;
        self.ff2.te.dropout = encoder;
        self.ff3.te.dropout = encoder;
    }

    /// The forward pass on RNA `[n, G]`.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> SctelOutput<B> {
        let x1 = self.input.forward(x, sub(pass, 100));
        let zeros = x1.zeros_like();
        let (h, c) = self.lstm1.forward(x1.clone(), zeros.clone(), zeros);
        let x2 = self.ff2.forward(x1, sub(pass, 200));
        let (h, c) = self.lstm2.forward(x2.clone(), h, c);
        let x3 = self.ff3.forward(x2, sub(pass, 300));
        let (h, _c) = self.lstm3.forward(x3.clone(), h, c);
        let protein = self.protein.forward(x3.clone(), sub(pass, 400));
        let quantiles = self.quantile.as_ref().map(|q| {
            let [n, _] = x3.dims();
            let p = protein.dims()[1];
            q.forward(x3).reshape([n, p, self.n_quantiles])
        });
        SctelOutput {
            embedding: h,
            protein,
            quantiles,
        }
    }

    /// The embedding h3 only (the heads are not run, so no BatchNorm of theirs moves).
    pub fn embed(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let x1 = self.input.forward(x, sub(pass, 100));
        let zeros = x1.zeros_like();
        let (h, c) = self.lstm1.forward(x1.clone(), zeros.clone(), zeros);
        let x2 = self.ff2.forward(x1, sub(pass, 200));
        let (h, c) = self.lstm2.forward(x2.clone(), h, c);
        let x3 = self.ff3.forward(x2, sub(pass, 300));
        self.lstm3.forward(x3, h, c).0
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.input.export("input", &mut out);
        self.ff2.export("ff2", &mut out);
        self.ff3.export("ff3", &mut out);
        self.lstm1.export("lstm1", &mut out);
        self.lstm2.export("lstm2", &mut out);
        self.lstm3.export("lstm3", &mut out);
        self.protein.export("protein", &mut out);
        if let Some(q) = &self.quantile {
            q.export("quantile", &mut out);
        }
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.input.import("input", &mut store)?;
        self.ff2.import("ff2", &mut store)?;
        self.ff3.import("ff3", &mut store)?;
        self.lstm1.import("lstm1", &mut store)?;
        self.lstm2.import("lstm2", &mut store)?;
        self.lstm3.import("lstm3", &mut store)?;
        self.protein.import("protein", &mut store)?;
        if let Some(q) = &mut self.quantile {
            q.import("quantile", &mut store)?;
        }
        reject_leftovers(&store)
    }
}

/// The per-entry protein loss `[n, P]` of the reference's `sse_quantile` before its mean:
/// m ⊙ [(ŷ − y)² + mean_q ρ_q(ŷ_q − y)], with ρ_q(e) = |e|·(1 − q) for e > 0 and |e|·q
/// otherwise (the side is read off the detached error, as the reference). `mask` is the
/// protein-present mask (`None`: every protein measured).
pub fn protein_loss_terms<B: Backend>(
    out: &SctelOutput<B>,
    y: Tensor<B, 2>,
    quantiles: &[f64],
    mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 2> {
    let mut terms = out.protein.clone().sub(y.clone()).square();
    if let Some(pred) = &out.quantiles {
        let [n, p, nq] = pred.dims();
        let qs: Vec<f32> = quantiles.iter().map(|&q| q as f32).collect();
        let q = tensor_from::<B, 3>(qs, [1, 1, nq], &y.device());
        let bias = pred.clone().sub(y.reshape([n, p, 1]));
        let over = bias.clone().detach().greater_elem(0.0).float();
        // (1 − q) where over, q elsewhere: q + over·(1 − 2q)
        let weight = over.mul(q.clone().mul_scalar(-2.0).add_scalar(1.0)).add(q);
        let pinball = bias.abs().mul(weight).mean_dim(2).reshape([n, p]);
        terms = terms.add(pinball);
    }
    match mask {
        Some(m) => terms.mul(m),
        None => terms,
    }
}

/// The reference's protein loss: the mean over cells and proteins of
/// [`protein_loss_terms`].
pub fn protein_loss<B: Backend>(
    out: &SctelOutput<B>,
    y: Tensor<B, 2>,
    quantiles: &[f64],
    mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    protein_loss_terms(out, y, quantiles, mask).mean()
}
