//! Concerto (Yang et al., Nature Machine Intelligence 2022), the original TensorFlow model as
//! the benchmark's multimodal numbers were produced with it (methods.md §5.3; the authors' fork
//! `OlgaOvcharenko/concerto-reproducibility`, `bgi/models/DeepSingleCell.py`,
//! `bgi/layers/attention.py`, `concerto_function5_3.py`; the loss from
//! `bgi/losses/contrastive_loss.py` of the upstream `melobio/Concerto-reproducibility`, which
//! the fork imports).
//!
//! An asymmetric teacher–student pair, both trained, on the same un-augmented cells; dropout
//! is the only augmentation.
//!
//! * **Teacher** (`multi_embedding_attention_transfer(include_attention=True)`), per modality
//!   with G features: v = x + 1e-5; v̂ = BN₁(v), one scalar BatchNorm over every (cell, gene)
//!   entry (Keras normalises the `(B, G, 1)` tensor over its last axis); e_g = E_g · v̂_g with
//!   E ∈ R^{G×d} the feature-identity embedding (d = `embedding_dim`, 128);
//!   `AttentionWithContext`: u_g = tanh(W e_g + b), s_g = u_gᵀ u, a_g = exp(s_g) /
//!   (Σ_g exp(s_g) + 1e-7); f = BN₃(tanh(Σ_g a_g e_g)).
//! * **Student** (`include_attention=False`), per modality: f = BN₃(ReLU(Dense(BN₁(v)))),
//!   BN₁ per feature, Dense G → `head_dim`.
//! * **Head** (each network its own): z = ReLU(Dense(Dropout(Σ_m f_m))) of width `head_dim`;
//!   with two modalities the per-modality features are added first (`combine_omics=True`,
//!   `model_type=0`: Keras `Add`). The model's `integrate` key is not read: Concerto always adds.
//! * **Loss**: `simclr_loss(z_teacher, z_student, temperature=0.1)`: both L2-normalised
//!   (`tf.math.l2_normalize`, ‖·‖² floored at 1e-12), NT-Xent logits in both directions, the
//!   mean over cells of the *sum* of the two cross-entropies — twice lightly's NT-Xent
//!   ([`simclr_loss`]). No stop-gradient: one Adam updates both networks.
//! * **Training** (defaults, [`Concerto::default_training`]): Adam(lr 1e-4, Keras ε 1e-7, no
//!   weight decay), batches of 64 (last partial batch dropped, `drop_remainder=True`), 100
//!   epochs (the fork's multimodal result CSVs; the function default is 3), Keras'
//!   `PolynomialDecay(lr, 300·epochs, lr·1e-2, power=1)`, see DIV-C-3 for the step count.
//! * **Embedding**: the L2-normalised teacher output in eval mode (`training=False`: moving
//!   BatchNorm statistics, no dropout). Per modality m: the teacher head on f_m alone (the
//!   joint model with the other modality's feature absent), L2-normalised.
//!
//! Settings: [`ConcertoParams`] (`model.concerto.*`). The generic `model.hidden_dim`,
//! `model.dropout`, `model.temperature`, `model.integrate` and `model.predict_projection` are
//! not read (their defaults belong to the two-view methods).
//!
//! Which loss the fork's runs used is not certain (methods.md §5.3, **[unverified]**): some
//! versions of `concerto_train_multimodal` add a KL term from two `EncoderHead`s, and the
//! version at fork commit `004e0fa` has no `simclr_loss` path at all (four summed CLIP terms
//! between the teacher's and the student's per-modality outputs, or one teacher CLIP term for
//! `model_type=1`). This implements the original Concerto loss, as specified.
//!
//! Zero-valued genes: the fork writes its TFRecords with `zero_filter=False`
//! (`concerto_make_tfrecord`), i.e. every gene of every cell with value x + 1e-5, so the
//! teacher attends over all G features and the student sees the dense vector. Our dense HVG
//! input is therefore the reference's input exactly (the +1e-5 is applied here too). Upstream
//! Concerto's `zero_filter=True` variant (only the non-zero genes) is not what the fork ran.
//!
//! Keras layers, not PyTorch's: BatchNormalization with momentum 0.99 (the batch weighs 0.01),
//! ε 1e-3, moving variance updated with the biased batch variance (the non-fused path that
//! 2-D and 3-D inputs take; tensorflow/tensorflow#55545); Glorot-uniform Dense and attention
//! kernels with zero biases; the attention context vector u Glorot-uniform over (d,), i.e.
//! U(±√(3/d)); Embedding U(±0.05). The initial draws come from the run's seed (ChaCha8), not
//! from TensorFlow's generator.
//!
//! Divergences from the fork (also in `scssl-models/README.md`):
//! * **DIV-C-1 (mini-batches)**: the fork writes one TFRecord per batch (domain), batches cells
//!   in file order (`padded_batch`) and only then shuffles the *batches*, so every mini-batch
//!   holds consecutive cells of one domain (training-mode BatchNorm then standardises within a
//!   domain). Here mini-batches are drawn from all cells, reshuffled every epoch, as for every
//!   other method.
//! * **DIV-C-2 (attention softmax)**: computed as exp(s − m) / (Σ exp(s − m) + 1e-7·exp(−m))
//!   with m = max_g s, the same value without overflow; the reference exponentiates s directly.
//! * **DIV-C-3 (optimiser steps)**: the reference calls `apply_gradients` twice per training
//!   step (teacher, then student) on one Adam, so Keras' iteration counter, which drives the
//!   schedule and Adam's bias correction, advances by 2 per step: the rate reaches lr·1e-2
//!   after 300·epochs / 2 = 150·epochs training steps. The default schedule here is therefore
//!   `polynomial:15000:0.01` (100 epochs; [`Concerto::schedule_for`] gives it for other
//!   epoch counts); one optimiser step per training step, so Adam's bias correction uses t
//!   rather than 2t − 1 / 2t (a difference in the first few hundred steps only).
//! * **DIV-C-4 (initial weights)**: Keras' initialisers, drawn from ChaCha8 with the run's
//!   seed; the same distributions, not TensorFlow's draws.
//! * Not built: scSSL-Bench's own PyTorch port (methods.md §2.8), whose teacher embeds the
//!   integer-truncated *values* (vocabulary 10) instead of gene identities (DIV-19a), with
//!   two-layer lightly heads (DIV-19b), T = 0.2, batch 32, 3–5 epochs. It is a different
//!   network, not a switch of this one; the benchmark's multimodal Concerto numbers come from
//!   the original.

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    BatchNeeds, BatchSource, EmbedInputs, Fitted, Method, Objective, ObjectiveFamily, StepContext,
    StepInputs, TrainPlan,
};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{
    Dense, NamedTensor, Pass, dropout, export, import, reject_leftovers, tensor_from, tensor_values,
};
use crate::losses::nt_xent;
use crate::model::{EMBED_CHUNK, EmbeddingOutput, Embeddings, check_inputs, rows_tensor};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// Added to every input value before the networks (the fork's `x + 10e-6` when it writes the
/// TFRecords).
pub const VALUE_OFFSET: f64 = 1e-5;
/// Keras BatchNormalization's momentum (weight of the old moving statistics).
pub const KERAS_BN_MOMENTUM: f64 = 0.99;
/// Keras BatchNormalization's ε.
pub const KERAS_BN_EPS: f64 = 1e-3;
/// `K.epsilon()`, added to the attention's normaliser.
pub const ATTENTION_EPS: f64 = 1e-7;
/// Keras Adam's ε.
pub const KERAS_ADAM_EPS: f64 = 1e-7;
/// Training steps per epoch of the reference's decay horizon: `PolynomialDecay` over
/// 300·epochs Keras iterations, two per training step (DIV-C-3).
pub const DECAY_STEPS_PER_EPOCH: usize = 150;

/// Concerto's settings (the fork's `super_parameters` and `multi_embedding_attention_transfer`
/// arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConcertoParams {
    /// Width d of the teacher's feature-identity embedding and attention (`embedding_dims`,
    /// 128).
    pub embedding_dim: usize,
    /// Width of the student's hidden layer and of both heads, the embedding width
    /// (`head_1`, the fork's `heads`: 128; its runs also tried 16 and 64).
    pub head_dim: usize,
    /// Dropout before each head, the only augmentation (`drop_rate`, 0.1).
    pub dropout: f64,
    /// Temperature of `simclr_loss` (0.1).
    pub temperature: f64,
}

impl Default for ConcertoParams {
    fn default() -> Self {
        ConcertoParams {
            embedding_dim: 128,
            head_dim: 128,
            dropout: 0.1,
            temperature: 0.1,
        }
    }
}

fn param<B: Backend, const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    grad: bool,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let t = tensor_from::<B, D>(data, shape, device);
    Param::initialized(ParamId::new(), if grad { t.require_grad() } else { t })
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, limit: f64) -> Vec<f32> {
    let limit = limit as f32;
    (0..n).map(|_| rng.random_range(-limit..=limit)).collect()
}

/// Keras `Dense` with Glorot-uniform kernel and zero bias.
fn glorot_dense<B: Backend>(
    d_in: usize,
    d_out: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Dense<B> {
    let limit = (6.0 / (d_in + d_out) as f64).sqrt();
    Dense {
        weight: param(
            uniform(rng, d_in * d_out, limit),
            [d_in, d_out],
            true,
            device,
        ),
        bias: Some(param(vec![0.0; d_out], [d_out], true, device)),
    }
}

/// Keras `BatchNormalization` over the last axis of `[n, c]`: momentum 0.99, ε 1e-3, the
/// moving variance updated with the biased batch variance.
#[derive(Module, Debug)]
pub struct KerasBatchNorm<B: Backend> {
    /// Scale γ.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift β.
    pub beta: Param<Tensor<B, 1>>,
    /// Moving mean (not trained).
    pub moving_mean: Param<Tensor<B, 1>>,
    /// Moving variance (not trained).
    pub moving_var: Param<Tensor<B, 1>>,
}

impl<B: Backend> KerasBatchNorm<B> {
    /// γ = 1, β = 0, moving mean 0 and variance 1.
    pub fn new(c: usize, device: &B::Device) -> Self {
        KerasBatchNorm {
            gamma: param(vec![1.0; c], [c], true, device),
            beta: param(vec![0.0; c], [c], true, device),
            moving_mean: param(vec![0.0; c], [c], false, device),
            moving_var: param(vec![1.0; c], [c], false, device),
        }
    }

    /// Normalises `[n, c]`; in train mode with the batch statistics, updating the moving ones.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let y = if pass.train {
            let mean = x.clone().mean_dim(0);
            let centred = x.sub(mean.clone());
            let var = centred.clone().square().mean_dim(0);
            let m = KERAS_BN_MOMENTUM;
            let mm = self
                .moving_mean
                .val()
                .mul_scalar(m)
                .add(mean.detach().squeeze_dim::<1>(0).mul_scalar(1.0 - m));
            let mv = self
                .moving_var
                .val()
                .mul_scalar(m)
                .add(var.clone().detach().squeeze_dim::<1>(0).mul_scalar(1.0 - m));
            self.moving_mean = Param::initialized(self.moving_mean.id, mm.detach());
            self.moving_var = Param::initialized(self.moving_var.id, mv.detach());
            centred.div(var.add_scalar(KERAS_BN_EPS).sqrt())
        } else {
            let mean = self.moving_mean.val().unsqueeze_dim(0);
            let std = self
                .moving_var
                .val()
                .add_scalar(KERAS_BN_EPS)
                .sqrt()
                .unsqueeze_dim(0);
            x.sub(mean).div(std)
        };
        y.mul(self.gamma.val().unsqueeze_dim(0))
            .add(self.beta.val().unsqueeze_dim(0))
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        export(format!("{prefix}.gamma"), &self.gamma, out);
        export(format!("{prefix}.beta"), &self.beta, out);
        export(format!("{prefix}.moving_mean"), &self.moving_mean, out);
        export(format!("{prefix}.moving_var"), &self.moving_var, out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        import(format!("{prefix}.gamma"), &mut self.gamma, store)?;
        import(format!("{prefix}.beta"), &mut self.beta, store)?;
        import(
            format!("{prefix}.moving_mean"),
            &mut self.moving_mean,
            store,
        )?;
        import(format!("{prefix}.moving_var"), &mut self.moving_var, store)
    }
}

/// `AttentionWithContext`: kernel W `[d, d]`, bias b `[d]`, context vector u `[d]`.
#[derive(Module, Debug)]
pub struct AttentionWithContext<B: Backend> {
    /// Kernel W, applied as e·W.
    pub w: Param<Tensor<B, 2>>,
    /// Bias b.
    pub b: Param<Tensor<B, 1>>,
    /// Context vector u.
    pub u: Param<Tensor<B, 1>>,
}

/// One modality of the teacher: feature-identity embedding × BN(value) → attention →
/// tanh(sum) → BN.
#[derive(Module, Debug)]
pub struct TeacherBranch<B: Backend> {
    /// Feature-identity embedding E, `[G, d]`.
    pub embedding: Param<Tensor<B, 2>>,
    /// BN₁: one scalar BatchNorm over every entry of the values.
    pub bn_value: KerasBatchNorm<B>,
    /// The attention pooling over the G features.
    pub attention: AttentionWithContext<B>,
    /// BN₃ over the d pooled dimensions.
    pub bn_out: KerasBatchNorm<B>,
}

impl<B: Backend> TeacherBranch<B> {
    fn new(g: usize, d: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let embedding = param(uniform(rng, g * d, 0.05), [g, d], true, device);
        let w = param(
            uniform(rng, d * d, (6.0 / (2 * d) as f64).sqrt()),
            [d, d],
            true,
            device,
        );
        let u = param(uniform(rng, d, (3.0 / d as f64).sqrt()), [d], true, device);
        TeacherBranch {
            embedding,
            bn_value: KerasBatchNorm::new(1, device),
            attention: AttentionWithContext {
                w,
                b: param(vec![0.0; d], [d], true, device),
                u,
            },
            bn_out: KerasBatchNorm::new(d, device),
        }
    }

    /// The branch's feature f `[n, d]` of the values `x` `[n, G]`.
    ///
    /// e_g = E_g·v̂_g, so e·W = v̂_g·(E W)_g: the `[n, G, d]` tensor is only formed once, for
    /// the tanh, and the pooled sum Σ_g a_g e_g is (a ⊙ v̂)·E.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let [n, g] = x.dims();
        let v = x.add_scalar(VALUE_OFFSET);
        let v = self
            .bn_value
            .forward(v.reshape([n * g, 1]), pass)
            .reshape([n, g]);
        let e = self.embedding.val();
        let d = e.dims()[1];
        let ew = e.clone().matmul(self.attention.w.val()); // [G, d]
        let pre = v
            .clone()
            .unsqueeze_dim::<3>(2)
            .mul(ew.unsqueeze_dim::<3>(0))
            .add(self.attention.b.val().reshape([1, 1, d]));
        let scores = pre
            .tanh()
            .mul(self.attention.u.val().reshape([1, 1, d]))
            .sum_dim(2)
            .reshape([n, g]);
        // exp(s)/(Σ exp(s) + ε) without overflow (DIV-C-2)
        let m = scores.clone().max_dim(1).detach(); // [n, 1]
        let ex = scores.sub(m.clone()).exp();
        let eps = m.neg().clamp_max(80.0).exp().mul_scalar(ATTENTION_EPS);
        let a = ex.clone().div(ex.sum_dim(1).add(eps));
        let pooled = a.mul(v).matmul(e).tanh();
        self.bn_out.forward(pooled, pass)
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        export(format!("{prefix}.embedding"), &self.embedding, out);
        self.bn_value.export(&format!("{prefix}.bn_value"), out);
        export(format!("{prefix}.attention.w"), &self.attention.w, out);
        export(format!("{prefix}.attention.b"), &self.attention.b, out);
        export(format!("{prefix}.attention.u"), &self.attention.u, out);
        self.bn_out.export(&format!("{prefix}.bn_out"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        import(format!("{prefix}.embedding"), &mut self.embedding, store)?;
        self.bn_value.import(&format!("{prefix}.bn_value"), store)?;
        import(
            format!("{prefix}.attention.w"),
            &mut self.attention.w,
            store,
        )?;
        import(
            format!("{prefix}.attention.b"),
            &mut self.attention.b,
            store,
        )?;
        import(
            format!("{prefix}.attention.u"),
            &mut self.attention.u,
            store,
        )?;
        self.bn_out.import(&format!("{prefix}.bn_out"), store)
    }
}

/// One modality of the student: BN → Dense(ReLU) → BN.
#[derive(Module, Debug)]
pub struct StudentBranch<B: Backend> {
    /// BN₁ over the G input features.
    pub bn_in: KerasBatchNorm<B>,
    /// Dense G → `head_dim`, ReLU.
    pub dense: Dense<B>,
    /// BN₃ over the hidden units.
    pub bn_out: KerasBatchNorm<B>,
}

impl<B: Backend> StudentBranch<B> {
    fn new(g: usize, h: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        StudentBranch {
            bn_in: KerasBatchNorm::new(g, device),
            dense: glorot_dense(g, h, rng, device),
            bn_out: KerasBatchNorm::new(h, device),
        }
    }

    /// The branch's feature `[n, head_dim]` of the values `x` `[n, G]`.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let v = self.bn_in.forward(x.add_scalar(VALUE_OFFSET), pass);
        let h = relu(self.dense.forward(v));
        self.bn_out.forward(h, pass)
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.bn_in.export(&format!("{prefix}.bn_in"), out);
        self.dense.export(&format!("{prefix}.dense"), out);
        self.bn_out.export(&format!("{prefix}.bn_out"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.bn_in.import(&format!("{prefix}.bn_in"), store)?;
        self.dense.import(&format!("{prefix}.dense"), store)?;
        self.bn_out.import(&format!("{prefix}.bn_out"), store)
    }
}

/// Teacher and student, one branch per modality each, and their heads.
#[derive(Module, Debug)]
pub struct ConcertoNetwork<B: Backend> {
    /// Teacher branches (RNA first).
    pub teacher: Vec<TeacherBranch<B>>,
    /// Teacher head: Dense(d → `head_dim`), ReLU.
    pub teacher_head: Dense<B>,
    /// Student branches (RNA first).
    pub student: Vec<StudentBranch<B>>,
    /// Student head: Dense(`head_dim` → `head_dim`), ReLU.
    pub student_head: Dense<B>,
    /// Dropout before each head.
    pub dropout: f64,
}

fn dropout_pass(pass: Pass, salt: u64) -> Pass {
    Pass {
        dropout_seed: pass.dropout_seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ..pass
    }
}

impl<B: Backend> ConcertoNetwork<B> {
    /// A seeded network with Keras' initialisers for `config.input_dims`.
    pub fn new(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let p = &config.concerto;
        let (d, h) = (p.embedding_dim, p.head_dim);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let teacher = config
            .input_dims
            .iter()
            .map(|&g| TeacherBranch::new(g, d, &mut rng, device))
            .collect();
        let teacher_head = glorot_dense(d, h, &mut rng, device);
        let student = config
            .input_dims
            .iter()
            .map(|&g| StudentBranch::new(g, h, &mut rng, device))
            .collect();
        let student_head = glorot_dense(h, h, &mut rng, device);
        ConcertoNetwork {
            teacher,
            teacher_head,
            student,
            student_head,
            dropout: p.dropout,
        }
    }

    fn head(head: &Dense<B>, f: Tensor<B, 2>, p: f64, pass: Pass) -> Tensor<B, 2> {
        relu(head.forward(dropout(f, p, pass)))
    }

    /// The teacher's per-modality features f_m (`[n, d]` each).
    pub fn teacher_features(&mut self, xs: Vec<Tensor<B, 2>>, pass: Pass) -> Vec<Tensor<B, 2>> {
        self.teacher
            .iter_mut()
            .zip(xs)
            .map(|(b, x)| b.forward(x, pass))
            .collect()
    }

    /// The student's per-modality features (`[n, head_dim]` each).
    pub fn student_features(&mut self, xs: Vec<Tensor<B, 2>>, pass: Pass) -> Vec<Tensor<B, 2>> {
        self.student
            .iter_mut()
            .zip(xs)
            .map(|(b, x)| b.forward(x, pass))
            .collect()
    }

    /// The teacher head on a feature (the sum of the per-modality features, or one of them).
    pub fn teacher_head(&self, f: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        Self::head(&self.teacher_head, f, self.dropout, dropout_pass(pass, 1))
    }

    /// The student head on a feature.
    pub fn student_head(&self, f: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        Self::head(&self.student_head, f, self.dropout, dropout_pass(pass, 2))
    }

    /// The teacher's output z_t `[n, head_dim]` (modalities added before the head).
    pub fn teacher_forward(&mut self, xs: Vec<Tensor<B, 2>>, pass: Pass) -> Result<Tensor<B, 2>> {
        let f = add_all(self.teacher_features(xs, pass))?;
        Ok(self.teacher_head(f, pass))
    }

    /// The student's output z_s `[n, head_dim]`.
    pub fn student_forward(&mut self, xs: Vec<Tensor<B, 2>>, pass: Pass) -> Result<Tensor<B, 2>> {
        let f = add_all(self.student_features(xs, pass))?;
        Ok(self.student_head(f, pass))
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (m, b) in self.teacher.iter().enumerate() {
            b.export(&format!("teacher.{m}"), &mut out);
        }
        self.teacher_head.export("teacher.head", &mut out);
        for (m, b) in self.student.iter().enumerate() {
            b.export(&format!("student.{m}"), &mut out);
        }
        self.student_head.export("student.head", &mut out);
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (m, b) in self.teacher.iter_mut().enumerate() {
            b.import(&format!("teacher.{m}"), &mut store)?;
        }
        self.teacher_head.import("teacher.head", &mut store)?;
        for (m, b) in self.student.iter_mut().enumerate() {
            b.import(&format!("student.{m}"), &mut store)?;
        }
        self.student_head.import("student.head", &mut store)?;
        reject_leftovers(&store)
    }
}

/// The sum of the per-modality features (Keras `Add`); an error for no modality.
fn add_all<B: Backend>(fs: Vec<Tensor<B, 2>>) -> Result<Tensor<B, 2>> {
    fs.into_iter()
        .reduce(|a, b| a.add(b))
        .ok_or_else(|| ModelError::Inconsistent("Concerto without any modality".into()))
}

/// `tf.math.l2_normalize` along rows: x / √max(‖x‖², 1e-12).
pub fn tf_l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let ss = x.clone().square().sum_dim(1).clamp_min(1e-12);
    x.div(ss.sqrt())
}

/// Concerto's `simclr_loss(z1, z2, T)`: rows L2-normalised as TensorFlow does, then
/// mean_i [CE(row i of [z̄1·z̄2ᵀ ‖ z̄1·z̄1ᵀ (no diagonal)]) + CE(row i of [z̄2·z̄1ᵀ ‖ z̄2·z̄2ᵀ
/// (no diagonal)])], targets on the diagonal of the first block: twice lightly's NT-Xent.
pub fn simclr_loss<B: Backend>(
    z1: Tensor<B, 2>,
    z2: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 1> {
    nt_xent(tf_l2_normalize(z1), tf_l2_normalize(z2), temperature).mul_scalar(2.0)
}

/// Concerto's training state (the temperature; nothing else besides the networks).
pub struct ConcertoObjective<B: AutodiffBackend> {
    temperature: f64,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> Objective<B> for ConcertoObjective<B> {
    type Network = ConcertoNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, ConcertoNetwork<B>)> {
        Concerto.validate(config)?;
        let net = ConcertoNetwork::new(config, training.seed, device);
        Ok((
            ConcertoObjective {
                temperature: config.concerto.temperature,
                backend: PhantomData,
            },
            net,
        ))
    }

    /// Every cell, full batches only (`drop_remainder=True`), Keras Adam's ε 1e-7.
    fn plan(_config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        Ok(TrainPlan {
            adam_epsilon: KERAS_ADAM_EPS,
            ..TrainPlan::standard(training, n_cells)
        })
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) -> Option<f64> {
        None
    }

    fn loss(
        &mut self,
        net: &mut ConcertoNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        let xs = inputs.features;
        if xs.len() != net.teacher.len() {
            return Err(ModelError::Inconsistent(format!(
                "Concerto got {} feature matrices for {} modalities",
                xs.len(),
                net.teacher.len()
            )));
        }
        let zt = net.teacher_forward(xs.clone(), step.pass(0))?;
        let zs = net.student_forward(xs, step.pass(1))?;
        Ok(simclr_loss(zt, zs, self.temperature))
    }

    fn export(net: &ConcertoNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

struct ConcertoFamily;

impl ObjectiveFamily for ConcertoFamily {
    type On<B: AutodiffBackend> = ConcertoObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Concerto;

impl Concerto {
    /// The reference's schedule for a run of `epochs` epochs: Keras' `PolynomialDecay` over
    /// 300·epochs iterations, i.e. 150·epochs training steps (DIV-C-3), to 1 % of the rate.
    pub fn schedule_for(epochs: usize) -> LrSchedule {
        LrSchedule::Polynomial {
            decay_steps: (DECAY_STEPS_PER_EPOCH * epochs).max(1),
            end_factor: 0.01,
        }
    }

    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ConcertoNetwork<CpuBackend>> {
        let mut net = ConcertoNetwork::<CpuBackend>::new(config, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl Method for Concerto {
    fn name(&self) -> &'static str {
        "concerto"
    }

    fn summary(&self) -> &'static str {
        "Concerto: attention teacher and dense student on the same cells, dropout the only augmentation (Yang et al. 2022)"
    }

    /// The fork's multimodal runs: Adam at 1e-4 (ε 1e-7), batch 64, 100 epochs, no weight
    /// decay, `PolynomialDecay` to 1 % over 150·epochs steps.
    fn default_training(&self) -> TrainConfig {
        let epochs = 100;
        TrainConfig {
            epochs,
            batch_size: 64,
            lr: 1e-4,
            weight_decay: 0.0,
            optimizer: OptimizerKind::Adam,
            schedule: Self::schedule_for(epochs),
            gradient_clip: None,
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
        let p = &config.concerto;
        if config.input_dims.is_empty() || config.input_dims.len() > 2 {
            return Err(invalid(
                "data.protein_key",
                "Concerto models RNA alone or RNA + protein",
            ));
        }
        if p.embedding_dim == 0 {
            return Err(invalid(
                "model.concerto.embedding_dim",
                "must be at least 1",
            ));
        }
        if p.head_dim == 0 {
            return Err(invalid("model.concerto.head_dim", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(invalid(
                "model.concerto.dropout",
                "expected a probability in [0, 1)",
            ));
        }
        if !(p.temperature > 0.0 && p.temperature.is_finite()) {
            return Err(invalid(
                "model.concerto.temperature",
                "expected a positive number",
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
        fit_objective::<ConcertoFamily>(config, training, n_cells, source, progress)
    }

    /// The L2-normalised teacher output in eval mode; per modality the teacher head on that
    /// modality's feature alone. Concerto has no projector: `output` is not read.
    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = check_inputs(&config.input_dims, &inputs.features)?;
        let mut net = Self::cpu_network(config, tensors)?;
        let n_mod = inputs.features.len();
        let mut out = Embeddings::builder(n_mod, n);
        // the teacher forms a cells × features × d tensor: bound it to ~2^24 values per chunk
        // (eval mode treats every cell alone, so the chunking does not change the result)
        let widest = config.input_dims.iter().copied().max().unwrap_or(1);
        let per_cell = widest.saturating_mul(config.concerto.embedding_dim).max(1);
        let chunk = ((1usize << 24) / per_cell).clamp(1, EMBED_CHUNK);
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let xs = inputs
                .features
                .iter()
                .map(|x| rows_tensor(*x, start..end))
                .collect();
            let fs = net.teacher_features(xs, Pass::EVAL);
            if n_mod > 1 {
                for (m, f) in fs.iter().enumerate() {
                    let z = tf_l2_normalize(net.teacher_head(f.clone(), Pass::EVAL));
                    out.push_modality(m, z.dims()[1], tensor_values(z));
                }
            }
            let z = tf_l2_normalize(net.teacher_head(add_all(fs)?, Pass::EVAL));
            let (width, values) = (z.dims()[1], tensor_values(z));
            if n_mod == 1 {
                out.push_modality(0, width, values.clone());
            }
            out.push_joint(width, values);
            start = end;
        }
        out.finish()
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}
