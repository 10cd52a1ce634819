//! Concerto's networks and loss (methods.md §5.3): the attention teacher (gene embedding ×
//! BN(value), `AttentionWithContext`, tanh, BN) and the dense student per modality, with Keras'
//! layer semantics, the shared heads and `simclr_loss`; the method and its training are in
//! [`super::concerto`].

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::concerto::{ATTENTION_EPS, KERAS_BN_EPS, KERAS_BN_MOMENTUM, VALUE_OFFSET};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::layers::{
    Dense, NamedTensor, Pass, dropout, export, import, reject_leftovers, tensor_from,
};
use crate::losses::nt_xent;

/// A parameter holding `data` (trained when `grad`).
fn param<B: Backend, const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    grad: bool,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let t = tensor_from::<B, D>(data, shape, device);
    Param::initialized(ParamId::new(), if grad { t.require_grad() } else { t })
}

/// `n` draws from U(−limit, limit).
fn uniform(rng: &mut ChaCha8Rng, n: usize, limit: f64) -> Vec<f32> {
    let limit = limit as f32;
    (0..n).map(|_| rng.random_range(-limit..=limit)).collect()
}

/// Keras `Dense` with Glorot-uniform kernel and zero bias.
pub(super) fn glorot_dense<B: Backend>(
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

pub(super) fn dropout_pass(pass: Pass, salt: u64) -> Pass {
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
pub(super) fn add_all<B: Backend>(fs: Vec<Tensor<B, 2>>) -> Result<Tensor<B, 2>> {
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
