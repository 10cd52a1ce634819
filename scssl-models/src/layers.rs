//! Building blocks: linear layers, BatchNorm with PyTorch semantics, MLPs, the shared encoder.
//!
//! Our own small layers rather than `burn::nn`'s, for three reasons: initialisation comes from
//! an explicit seed (identical on CPU and CUDA), BatchNorm's running variance is updated with
//! the unbiased batch variance as PyTorch does, and train/eval mode is an explicit argument
//! (burn switches on whether autodiff is enabled, which would put a momentum network, that
//! PyTorch runs in train mode, into eval mode).

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ModelError, Result};

/// Forward-pass mode and the seed of this pass's dropout masks.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Train mode: BatchNorm uses (and records) batch statistics, dropout is active.
    pub train: bool,
    /// Seed of the dropout masks of this pass.
    pub dropout_seed: u64,
}

impl Pass {
    /// Eval mode: running statistics, no dropout.
    pub const EVAL: Pass = Pass {
        train: false,
        dropout_seed: 0,
    };
}

/// A named tensor as stored in checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Dotted path, e.g. `branch0.encoder.1.bn.running_var`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

pub(crate) fn tensor_from<B: Backend, const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

pub(crate) fn tensor_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32 just above")
}

pub(crate) fn export<B: Backend, const D: usize>(
    name: String,
    p: &Param<Tensor<B, D>>,
    out: &mut Vec<NamedTensor>,
) {
    let t = p.val();
    let shape = t.dims().to_vec();
    out.push(NamedTensor {
        name,
        shape,
        data: tensor_values(t),
    });
}

/// After a network took its tensors from `store`, anything left is not part of it: an error
/// naming the first such tensor.
pub(crate) fn reject_leftovers(store: &HashMap<String, NamedTensor>) -> Result<()> {
    match store.keys().min() {
        Some(extra) => Err(ModelError::Checkpoint {
            path: Default::default(),
            message: format!("tensor {extra} does not belong to this model"),
        }),
        None => Ok(()),
    }
}

pub(crate) fn import<B: Backend, const D: usize>(
    name: String,
    p: &mut Param<Tensor<B, D>>,
    store: &mut HashMap<String, NamedTensor>,
) -> Result<()> {
    let entry = store.remove(&name).ok_or_else(|| ModelError::Checkpoint {
        path: Default::default(),
        message: format!("tensor {name} is missing"),
    })?;
    let old = p.val();
    let dims = old.dims();
    if entry.shape != dims.to_vec() {
        return Err(ModelError::Checkpoint {
            path: Default::default(),
            message: format!(
                "tensor {name} has shape {:?}, the model expects {:?}",
                entry.shape, dims
            ),
        });
    }
    let require_grad = old.is_require_grad();
    let t = tensor_from::<B, D>(entry.data, dims, &old.device());
    let t = if require_grad { t.require_grad() } else { t };
    *p = Param::initialized(p.id, t);
    Ok(())
}

fn ema_param<B: Backend, const D: usize>(
    target: &mut Param<Tensor<B, D>>,
    online: &Param<Tensor<B, D>>,
    m: f64,
) {
    let o = online.val().detach();
    let t = target.val().detach();
    *target = Param::initialized(target.id, t.mul_scalar(m).add(o.mul_scalar(1.0 - m)));
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
}

/// Fully connected layer `y = x·W + b` (PyTorch's default initialisation:
/// U(−1/√fan_in, 1/√fan_in) for weights and biases).
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// Weights, `[in, out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// Bias, `[out]`, when the layer has one.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Dense<B> {
    /// A seeded layer.
    pub fn new(
        d_in: usize,
        d_out: usize,
        bias: bool,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (d_in as f32).sqrt();
        let weight = Param::initialized(
            ParamId::new(),
            tensor_from::<B, 2>(uniform(rng, d_in * d_out, bound), [d_in, d_out], device)
                .require_grad(),
        );
        let bias = bias.then(|| {
            Param::initialized(
                ParamId::new(),
                tensor_from::<B, 1>(uniform(rng, d_out, bound), [d_out], device).require_grad(),
            )
        });
        Dense { weight, bias }
    }

    /// Applies the layer to `[n, in]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => y.add(b.val().unsqueeze_dim(0)),
            None => y,
        }
    }

    pub(crate) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        export(format!("{prefix}.weight"), &self.weight, out);
        if let Some(b) = &self.bias {
            export(format!("{prefix}.bias"), b, out);
        }
    }

    pub(crate) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        import(format!("{prefix}.weight"), &mut self.weight, store)?;
        if let Some(b) = &mut self.bias {
            import(format!("{prefix}.bias"), b, store)?;
        }
        Ok(())
    }

    pub(crate) fn ema(&mut self, online: &Self, m: f64) {
        ema_param(&mut self.weight, &online.weight, m);
        if let (Some(t), Some(o)) = (&mut self.bias, &online.bias) {
            ema_param(t, o, m);
        }
    }
}

/// BatchNorm1d with PyTorch semantics: normalise with the biased batch variance, update the
/// running variance with the unbiased one (momentum 0.1, ε 1e-5).
#[derive(Module, Debug)]
pub struct BatchNorm1d<B: Backend> {
    /// Scale γ (absent when `affine=False`).
    pub gamma: Option<Param<Tensor<B, 1>>>,
    /// Shift β (absent when `affine=False`).
    pub beta: Option<Param<Tensor<B, 1>>>,
    /// Running mean (not trained).
    pub running_mean: Param<Tensor<B, 1>>,
    /// Running variance (not trained).
    pub running_var: Param<Tensor<B, 1>>,
    /// Weight of the batch statistics in the running statistics (PyTorch's `momentum`).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub eps: f64,
}

/// PyTorch's BatchNorm1d defaults.
const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

impl<B: Backend> BatchNorm1d<B> {
    /// γ = 1, β = 0, running mean 0 and variance 1, PyTorch's momentum 0.1 and ε 1e-5.
    pub fn new(d: usize, affine: bool, device: &B::Device) -> Self {
        Self::with_stats(d, affine, BN_MOMENTUM, BN_EPS, device)
    }

    /// As [`BatchNorm1d::new`] with another momentum and ε (scvi-tools: 0.01, 1e-3).
    pub fn with_stats(d: usize, affine: bool, momentum: f64, eps: f64, device: &B::Device) -> Self {
        let p = |v: f32, grad: bool| {
            let t = tensor_from::<B, 1>(vec![v; d], [d], device);
            Param::initialized(ParamId::new(), if grad { t.require_grad() } else { t })
        };
        BatchNorm1d {
            gamma: affine.then(|| p(1.0, true)),
            beta: affine.then(|| p(0.0, true)),
            running_mean: p(0.0, false),
            running_var: p(1.0, false),
            momentum,
            eps,
        }
    }

    /// Normalises `[n, d]`; in train mode also updates the running statistics.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let y = if pass.train {
            let n = x.dims()[0];
            let mean = x.clone().mean_dim(0);
            let centred = x.sub(mean.clone());
            let var = centred.clone().square().mean_dim(0);
            let unbiased = var
                .clone()
                .detach()
                .mul_scalar(n as f64 / (n as f64 - 1.0).max(1.0));
            let rm = self
                .running_mean
                .val()
                .mul_scalar(1.0 - self.momentum)
                .add(mean.detach().squeeze_dim::<1>(0).mul_scalar(self.momentum));
            let rv = self
                .running_var
                .val()
                .mul_scalar(1.0 - self.momentum)
                .add(unbiased.squeeze_dim::<1>(0).mul_scalar(self.momentum));
            self.running_mean = Param::initialized(self.running_mean.id, rm.detach());
            self.running_var = Param::initialized(self.running_var.id, rv.detach());
            centred.div(var.add_scalar(self.eps).sqrt())
        } else {
            let mean = self.running_mean.val().unsqueeze_dim(0);
            let std = self
                .running_var
                .val()
                .add_scalar(self.eps)
                .sqrt()
                .unsqueeze_dim(0);
            x.sub(mean).div(std)
        };
        match (&self.gamma, &self.beta) {
            (Some(g), Some(b)) => y
                .mul(g.val().unsqueeze_dim(0))
                .add(b.val().unsqueeze_dim(0)),
            _ => y,
        }
    }

    pub(crate) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        if let (Some(g), Some(b)) = (&self.gamma, &self.beta) {
            export(format!("{prefix}.gamma"), g, out);
            export(format!("{prefix}.beta"), b, out);
        }
        export(format!("{prefix}.running_mean"), &self.running_mean, out);
        export(format!("{prefix}.running_var"), &self.running_var, out);
    }

    pub(crate) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        if let (Some(g), Some(b)) = (&mut self.gamma, &mut self.beta) {
            import(format!("{prefix}.gamma"), g, store)?;
            import(format!("{prefix}.beta"), b, store)?;
        }
        import(
            format!("{prefix}.running_mean"),
            &mut self.running_mean,
            store,
        )?;
        import(
            format!("{prefix}.running_var"),
            &mut self.running_var,
            store,
        )
    }

    /// EMA of the parameters only; running statistics stay the network's own (as in the
    /// reference: buffers are not averaged).
    pub(crate) fn ema(&mut self, online: &Self, m: f64) {
        if let (Some(t), Some(o)) = (&mut self.gamma, &online.gamma) {
            ema_param(t, o, m);
        }
        if let (Some(t), Some(o)) = (&mut self.beta, &online.beta) {
            ema_param(t, o, m);
        }
    }
}

/// Linear → optional BatchNorm → optional ReLU.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// The linear layer.
    pub linear: Dense<B>,
    /// BatchNorm after the linear layer.
    pub bn: Option<BatchNorm1d<B>>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// Specification of one [`Block`]: `(in, out, bias, batch_norm, bn_affine, relu)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
    /// Linear bias.
    pub bias: bool,
    /// BatchNorm after the linear layer: `None`, or `Some(affine)`.
    pub batch_norm: Option<bool>,
    /// ReLU at the end.
    pub relu: bool,
}

impl BlockSpec {
    /// Linear without bias → BatchNorm (affine) → ReLU: lightly's hidden layer.
    pub fn hidden(d_in: usize, d_out: usize) -> Self {
        BlockSpec {
            d_in,
            d_out,
            bias: false,
            batch_norm: Some(true),
            relu: true,
        }
    }

    /// Linear with bias, nothing after: lightly's plain output layer.
    pub fn linear(d_in: usize, d_out: usize) -> Self {
        BlockSpec {
            d_in,
            d_out,
            bias: true,
            batch_norm: None,
            relu: false,
        }
    }

    /// Linear without bias → BatchNorm (`affine`), no ReLU.
    pub fn linear_bn(d_in: usize, d_out: usize, affine: bool) -> Self {
        BlockSpec {
            d_in,
            d_out,
            bias: false,
            batch_norm: Some(affine),
            relu: false,
        }
    }
}

/// A sequence of blocks.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// The blocks, applied in order.
    pub blocks: Vec<Block<B>>,
}

impl<B: Backend> Mlp<B> {
    /// Builds the blocks in order from the seeded generator.
    pub fn new(specs: &[BlockSpec], rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let blocks = specs
            .iter()
            .map(|s| Block {
                linear: Dense::new(s.d_in, s.d_out, s.bias, rng, device),
                bn: s
                    .batch_norm
                    .map(|affine| BatchNorm1d::new(s.d_out, affine, device)),
                relu: s.relu,
            })
            .collect();
        Mlp { blocks }
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.blocks
            .last()
            .map(|b| b.linear.weight.val().dims()[1])
            .unwrap_or(0)
    }

    /// Applies every block.
    pub fn forward(&mut self, mut x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        for block in &mut self.blocks {
            x = block.linear.forward(x);
            if let Some(bn) = &mut block.bn {
                x = bn.forward(x, pass);
            }
            if block.relu {
                x = burn::tensor::activation::relu(x);
            }
        }
        x
    }

    pub(crate) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        for (i, b) in self.blocks.iter().enumerate() {
            b.linear.export(&format!("{prefix}.{i}.linear"), out);
            if let Some(bn) = &b.bn {
                bn.export(&format!("{prefix}.{i}.bn"), out);
            }
        }
    }

    pub(crate) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.linear.import(&format!("{prefix}.{i}.linear"), store)?;
            if let Some(bn) = &mut b.bn {
                bn.import(&format!("{prefix}.{i}.bn"), store)?;
            }
        }
        Ok(())
    }

    pub(crate) fn ema(&mut self, online: &Self, m: f64) {
        for (t, o) in self.blocks.iter_mut().zip(&online.blocks) {
            t.linear.ema(&o.linear, m);
            if let (Some(tb), Some(ob)) = (&mut t.bn, &o.bn) {
                tb.ema(ob, m);
            }
        }
    }

    /// Marks every parameter as not trained (momentum copies).
    pub(crate) fn freeze(self) -> Self {
        self.no_grad()
    }
}

/// Inner width of the shared encoder (fixed in the reference).
pub const ENCODER_INNER: usize = 128;

/// The shared encoder's blocks: Linear(G,128) → BN → ReLU → Linear(128,h) → BN
/// (PyTorch `nn.Linear`, so both linear layers have biases; no final ReLU).
pub fn encoder_specs(n_features: usize, hidden_dim: usize) -> Vec<BlockSpec> {
    vec![
        BlockSpec {
            d_in: n_features,
            d_out: ENCODER_INNER,
            bias: true,
            batch_norm: Some(true),
            relu: true,
        },
        BlockSpec {
            d_in: ENCODER_INNER,
            d_out: hidden_dim,
            bias: true,
            batch_norm: Some(true),
            relu: false,
        },
    ]
}

/// Inverted dropout with a mask drawn from `seed` (reproducible and backend-independent).
pub fn dropout<B: Backend>(x: Tensor<B, 2>, p: f64, pass: Pass) -> Tensor<B, 2> {
    if !pass.train || p <= 0.0 {
        return x;
    }
    let [n, d] = x.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(pass.dropout_seed);
    let keep = 1.0 / (1.0 - p) as f32;
    let mask: Vec<f32> = (0..n * d)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    let mask = tensor_from::<B, 2>(mask, [n, d], &x.device());
    x.mul(mask)
}

/// Inverted dropout of a tensor of any rank: the mask [`dropout`] draws for the tensor seen as
/// `[dims[0], rest]` (attention maps, token sequences).
pub fn dropout_nd<B: Backend, const D: usize>(x: Tensor<B, D>, p: f64, pass: Pass) -> Tensor<B, D> {
    if !pass.train || p <= 0.0 {
        return x;
    }
    let dims = x.dims();
    let rows = dims[0];
    let cols: usize = dims[1..].iter().product();
    dropout(x.reshape([rows, cols]), p, pass).reshape(dims)
}
