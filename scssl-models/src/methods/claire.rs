//! CLAIRE (Yan et al., CSUBioGroup/CLAIRE-release; methods.md §5.1): MoCo on mutual-nearest-
//! neighbour anchors between batches, with within-batch neighbour interpolation as the views.
//!
//! * Anchors: Seurat anchors read from a CSV ([`scssl_data::anchors`], `model.claire.anchors`),
//!   or mutual nearest neighbours (k = 5) between every pair of batches on the L2-normalised
//!   50-component PCA of the input, as scSSL-Bench's neighbour graph (§3.3). Only cells with at
//!   least one anchor are trained on (`train_on_anchored_only`, the reference's `exclude_fn`).
//! * Within-batch kNN: k = 10 on the same L2-normalised PCA (self excluded).
//! * Views of cell i: x₁ = λ·x_i + (1 − λ)·x_n with n a random within-batch neighbour of i;
//!   x₂ the same interpolation of a random anchor partner p of i with a random neighbour of p;
//!   λ ~ U(α, 1) drawn per view, α = 0.5 (the README's value; the code's default is 0.99).
//! * Encoder: Linear(G, G/4) → ReLU → Dropout(0.3) → Linear(G/4, G/8) → ReLU → Dropout(0.3) →
//!   Linear(G/8, 128) → ReLU → L2 normalisation: a non-negative unit vector. PyTorch default
//!   initialisation.
//! * MoCo: a momentum key encoder (m = 0.999, constant, updated before each step), a queue of
//!   2,048 keys initialised to **zeros**, T = 0.07. Symmetric loss ½(ℓ₁₂ + ℓ₂₁) with
//!   ℓ₁₂ = InfoNCE(q₁, k₂), ℓ₂₁ = InfoNCE(q₂, k₁) against the same queue; both key sets are
//!   enqueued (k₁ then k₂). The key encoder runs in train mode (dropout on), as there.
//! * Anchor re-filtering before the epochs of `refilter_epochs` (`[4]`): the anchor pairs'
//!   cosine similarities in the current (eval-mode) embedding, a two-component Gaussian
//!   mixture fitted to them ([`crate::gmm::Gmm2`]), and the pairs whose posterior for the
//!   majority component is ≥ 0.5 are kept; the cells trained on are recomputed.
//! * Adam (lr 1e-4, weight decay 1e-5), batch 256, last short batch dropped, 80 epochs.
//! * Embedding: the query encoder's L2-normalised 128-d output in eval mode.
//!
//! Differences from the reference, by design: the queue pointer wraps for any batch size (the
//! reference asserts K mod B = 0, where both agree); the mixture's k-means start is
//! deterministic ([`crate::gmm`]); when the mixture cannot be fitted (all similarities equal)
//! the anchors are kept unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use burn::module::{AutodiffModule, Module};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use super::claire_anchors::{ClaireData, Prepared, prepare, refilter};
use super::claire_anchors::{anchored_cells, partners};
use super::{
    BatchNeeds, BatchRequest, BatchSource, EmbedInputs, Fitted, Method, Objective, ObjectiveFamily,
    StepContext, StepInputs, TrainPlan,
};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{Dense, NamedTensor, Pass, dropout, reject_leftovers, tensor_from};
use crate::losses::{l2_normalize, nt_xent_bank};
use crate::model::{EMBED_CHUNK, EmbeddingOutput, Embeddings, check_inputs, embed_latent};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// CLAIRE's settings (`model.claire`), the reference's values by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaireParams {
    /// Embedding width (the reference's `lat_dim`, 128).
    pub latent_dim: usize,
    /// Dropout after the two hidden layers (0.3).
    pub dropout: f64,
    /// Queue size K (2,048).
    pub queue_size: usize,
    /// Momentum of the key encoder (0.999, constant).
    pub momentum: f64,
    /// InfoNCE temperature (0.07).
    pub temperature: f64,
    /// Interpolation weight λ ~ U(α, 1) of a cell against its neighbour (0.5, the README's).
    pub alpha: f64,
    /// Within-batch neighbours per cell (10).
    pub knn: usize,
    /// MNN neighbourhood size when the anchors are computed (5).
    pub k_anchor: usize,
    /// Principal components of the neighbour searches (50).
    pub n_pcs: usize,
    /// Epochs (0-based) before which the anchors are re-filtered (`[4]`).
    pub refilter_epochs: Vec<usize>,
    /// Posterior of the majority component an anchor pair needs to be kept (0.5).
    pub refilter_threshold: f64,
    /// Train only on cells with at least one anchor (the reference's `exclude_fn`, true).
    pub train_on_anchored_only: bool,
    /// The symmetric loss with both key sets enqueued (true); false: ℓ₁₂ only.
    pub symmetric: bool,
    /// Seurat anchors (`seuratAnchors.csv` with `name1`/`name2` columns); without it the
    /// anchors are mutual nearest neighbours between batches. Resolved by the caller into
    /// [`ClaireParams::anchor_pairs`].
    pub anchors: Option<String>,
    /// The anchors of [`ClaireParams::anchors`] as cell indices (not saved: only training
    /// uses them).
    #[serde(skip)]
    pub anchor_pairs: Option<Vec<(u32, u32)>>,
    /// The data `fit` prepares for the objective (not saved; `None` in every configuration a
    /// user writes).
    #[serde(skip)]
    pub prepared: Option<Prepared>,
}

impl Default for ClaireParams {
    fn default() -> Self {
        ClaireParams {
            latent_dim: 128,
            dropout: 0.3,
            queue_size: 2048,
            momentum: 0.999,
            temperature: 0.07,
            alpha: 0.5,
            knn: 10,
            k_anchor: 5,
            n_pcs: 50,
            refilter_epochs: vec![4],
            refilter_threshold: 0.5,
            train_on_anchored_only: true,
            symmetric: true,
            anchors: None,
            anchor_pairs: None,
            prepared: None,
        }
    }
}

/// CLAIRE's encoder: three Linear → ReLU layers (dropout after the first two), then L2
/// normalisation.
#[derive(Module, Debug)]
pub struct ClaireEncoder<B: Backend> {
    /// G → G/4 → G/8 → latent.
    pub layers: Vec<Dense<B>>,
    /// Dropout after the hidden layers.
    pub dropout: f64,
}

impl<B: Backend> ClaireEncoder<B> {
    /// A seeded encoder for `g` genes (PyTorch-default initialisation).
    pub fn new(g: usize, params: &ClaireParams, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let widths = [g, g / 4, g / 8, params.latent_dim];
        let layers = widths
            .windows(2)
            .map(|w| Dense::new(w[0], w[1], true, &mut rng, device))
            .collect();
        ClaireEncoder {
            layers,
            dropout: params.dropout,
        }
    }

    /// The unit-norm, non-negative embedding of `x`.
    pub fn forward(&self, mut x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = relu(layer.forward(x));
            if i < last {
                let layer_pass = Pass {
                    dropout_seed: pass.dropout_seed
                        ^ 0xD6E8_FEB8_6659_FD93u64.wrapping_mul(i as u64 + 1),
                    ..pass
                };
                x = dropout(x, self.dropout, layer_pass);
            }
        }
        l2_normalize(x)
    }

    /// θ_self ← m·θ_self + (1 − m)·θ_online.
    pub fn momentum_update(&mut self, online: &Self, m: f64) {
        for (t, o) in self.layers.iter_mut().zip(&online.layers) {
            t.ema(o, m);
        }
    }

    /// Every tensor with its checkpoint name (`encoder.{i}.weight|bias`).
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            l.export(&format!("encoder.{i}"), &mut out);
        }
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.import(&format!("encoder.{i}"), &mut store)?;
        }
        reject_leftovers(&store)
    }
}

/// The key queue: K rows, initialised to zeros, written at a wrapping pointer.
#[derive(Debug, Clone)]
pub struct KeyQueue<B: Backend> {
    /// `[K, d]`.
    pub rows: Tensor<B, 2>,
    ptr: usize,
}

impl<B: Backend> KeyQueue<B> {
    /// K zero rows of width `d`.
    pub fn zeros(k: usize, d: usize, device: &B::Device) -> Self {
        KeyQueue {
            rows: Tensor::zeros([k, d], device),
            ptr: 0,
        }
    }

    /// K rows drawn from N(0, 1) and L2-normalised (MoCo's and CLEAR's initialisation), from
    /// `seed`.
    pub fn random_unit(k: usize, d: usize, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..k * d)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect();
        for row in v.chunks_mut(d) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= norm);
        }
        KeyQueue {
            rows: tensor_from::<B, 2>(v, [k, d], device),
            ptr: 0,
        }
    }

    /// A queue holding `rows` with the pointer at `ptr` (for tests against the reference).
    pub fn from_rows(rows: Tensor<B, 2>, ptr: usize) -> Self {
        KeyQueue { rows, ptr }
    }

    /// The write pointer.
    pub fn pointer(&self) -> usize {
        self.ptr
    }

    /// Writes `keys` (detached) at the pointer, wrapping around the end.
    pub fn enqueue(&mut self, keys: Tensor<B, 2>) {
        let keys = keys.detach();
        let [b, d] = keys.dims();
        let k = self.rows.dims()[0];
        let mut offset = 0;
        while offset < b {
            let take = (k - self.ptr).min(b - offset);
            let chunk = keys.clone().slice([offset..offset + take, 0..d]);
            self.rows = self
                .rows
                .clone()
                .slice_assign([self.ptr..self.ptr + take, 0..d], chunk);
            self.ptr = (self.ptr + take) % k;
            offset += take;
        }
    }
}

/// CLAIRE's loss for one pair of views: ½(InfoNCE(q₁, k₂) + InfoNCE(q₂, k₁)) against the
/// queue (or InfoNCE(q₁, k₂) alone when not `symmetric`), and the keys to enqueue in order.
/// `passes`: the query encoder's two passes, then the key encoder's.
#[allow(clippy::too_many_arguments)]
pub fn moco_loss<B: Backend>(
    query: &ClaireEncoder<B>,
    key: &ClaireEncoder<B>,
    queue: &KeyQueue<B>,
    x1: Tensor<B, 2>,
    x2: Tensor<B, 2>,
    temperature: f64,
    symmetric: bool,
    passes: [Pass; 4],
) -> (Tensor<B, 1>, Vec<Tensor<B, 2>>) {
    let q1 = query.forward(x1.clone(), passes[0]);
    let k2 = key.forward(x2.clone(), passes[2]).detach();
    let l12 = nt_xent_bank(q1, k2.clone(), queue.rows.clone(), temperature);
    if !symmetric {
        return (l12, vec![k2]);
    }
    let q2 = query.forward(x2, passes[1]);
    let k1 = key.forward(x1, passes[3]).detach();
    let l21 = nt_xent_bank(q2, k1.clone(), queue.rows.clone(), temperature);
    (l12.add(l21).mul_scalar(0.5), vec![k1, k2])
}

/// CLAIRE's training state: the key encoder, the queue, the current anchors.
pub struct ClaireObjective<B: AutodiffBackend> {
    params: ClaireParams,
    data: Arc<ClaireData>,
    key: ClaireEncoder<B>,
    queue: KeyQueue<B>,
    pairs: Vec<(u32, u32)>,
    partners: Vec<Vec<u32>>,
}

impl<B: AutodiffBackend> ClaireObjective<B> {
    /// Rows of the two views of `cells` (row-major), drawn from `seed`.
    fn views(&self, cells: &[usize], seed: u64) -> (Vec<f32>, Vec<f32>) {
        let x = &self.data.x;
        let g = x.ncols();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut first = Vec::with_capacity(cells.len() * g);
        let mut second = Vec::with_capacity(cells.len() * g);
        let alpha = self.params.alpha;
        let interpolate = |rng: &mut ChaCha8Rng, i: usize, out: &mut Vec<f32>| {
            let nbrs = &self.data.knn[i];
            let n = if nbrs.is_empty() {
                i
            } else {
                nbrs[rng.random_range(0..nbrs.len())] as usize
            };
            let lambda = if alpha < 1.0 {
                rng.random_range(alpha..1.0) as f32
            } else {
                1.0
            };
            let (a, b) = (x.row(i), x.row(n));
            out.extend(
                a.iter()
                    .zip(b)
                    .map(|(u, v)| lambda * u + (1.0 - lambda) * v),
            );
        };
        for &i in cells {
            interpolate(&mut rng, i, &mut first);
            let p = &self.partners[i];
            let pi = if p.is_empty() {
                i
            } else {
                p[rng.random_range(0..p.len())] as usize
            };
            interpolate(&mut rng, pi, &mut second);
        }
        (first, second)
    }
}

impl<B: AutodiffBackend> Objective<B> for ClaireObjective<B> {
    type Network = ClaireEncoder<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, ClaireEncoder<B>)> {
        let p = &config.claire;
        let data = p
            .prepared
            .as_ref()
            .ok_or_else(|| ModelError::Inconsistent("CLAIRE's prepared anchors".into()))?
            .0
            .clone();
        let net = ClaireEncoder::new(config.input_dims[0], p, training.seed, device);
        let key = net.clone().no_grad();
        let queue = KeyQueue::zeros(p.queue_size, p.latent_dim, device);
        let pairs = data.pairs.clone();
        let partners = partners(data.x.nrows(), &pairs);
        Ok((
            ClaireObjective {
                params: p.clone(),
                data,
                key,
                queue,
                pairs,
                partners,
            },
            net,
        ))
    }

    /// The anchored cells (or every cell), full batches only (`drop_last=True`).
    fn plan(config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        let p = &config.claire;
        let data = p
            .prepared
            .as_ref()
            .ok_or_else(|| ModelError::Inconsistent("CLAIRE's prepared anchors".into()))?;
        let train_cells = if p.train_on_anchored_only {
            anchored_cells(&data.0.pairs)
        } else {
            (0..n_cells).collect()
        };
        Ok(TrainPlan {
            train_cells,
            ..TrainPlan::standard(training, n_cells)
        })
    }

    fn before_epoch(
        &mut self,
        net: &mut ClaireEncoder<B>,
        epoch: usize,
    ) -> Result<Option<Vec<usize>>> {
        if !self.params.refilter_epochs.contains(&epoch) {
            return Ok(None);
        }
        let inner = net.clone().valid();
        let x = &self.data.x;
        let (n, g) = x.dim();
        let device = inner.layers[0].weight.val().device();
        let mut emb: Vec<f32> = Vec::with_capacity(n * self.params.latent_dim);
        let mut start = 0;
        while start < n {
            let end = (start + EMBED_CHUNK).min(n);
            let rows: Vec<f32> = x
                .slice(ndarray::s![start..end, ..])
                .iter()
                .copied()
                .collect();
            let t = tensor_from::<B::InnerBackend, 2>(rows, [end - start, g], &device);
            emb.extend(crate::layers::tensor_values(inner.forward(t, Pass::EVAL)));
            start = end;
        }
        let d = self.params.latent_dim;
        let sims: Vec<f64> = self
            .pairs
            .iter()
            .map(|&(a, b)| {
                let (ra, rb) = (a as usize * d, b as usize * d);
                emb[ra..ra + d]
                    .iter()
                    .zip(&emb[rb..rb + d])
                    .map(|(u, v)| f64::from(u * v))
                    .sum()
            })
            .collect();
        let Some(keep) = refilter(&sims, self.params.refilter_threshold) else {
            tracing::warn!(
                epoch,
                pairs = self.pairs.len(),
                "CLAIRE: the anchor similarities do not fit a two-component mixture; anchors kept"
            );
            return Ok(None);
        };
        let before = self.pairs.len();
        self.pairs = self
            .pairs
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(p, _)| *p)
            .collect();
        self.partners = partners(n, &self.pairs);
        tracing::info!(
            epoch,
            kept = self.pairs.len(),
            of = before,
            "CLAIRE: anchors re-filtered"
        );
        Ok(self
            .params
            .train_on_anchored_only
            .then(|| anchored_cells(&self.pairs)))
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) -> Option<f64> {
        Some(self.params.momentum)
    }

    fn loss(
        &mut self,
        net: &mut ClaireEncoder<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        self.key.momentum_update(net, self.params.momentum);
        let g = self.data.x.ncols();
        let b = inputs.cells.len();
        let (v1, v2) = self.views(&inputs.cells, step.pass(7).dropout_seed);
        let device = self.queue.rows.device();
        let x1 = tensor_from::<B, 2>(v1, [b, g], &device);
        let x2 = tensor_from::<B, 2>(v2, [b, g], &device);
        let (loss, keys) = moco_loss(
            net,
            &self.key,
            &self.queue,
            x1,
            x2,
            self.params.temperature,
            self.params.symmetric,
            [step.pass(0), step.pass(1), step.pass(2), step.pass(3)],
        );
        for k in keys {
            self.queue.enqueue(k);
        }
        Ok(loss)
    }

    fn export(net: &ClaireEncoder<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

struct ClaireFamily;

impl ObjectiveFamily for ClaireFamily {
    type On<B: AutodiffBackend> = ClaireObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claire;

impl Claire {
    /// The query encoder on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ClaireEncoder<CpuBackend>> {
        let g = config.input_dims.first().copied().unwrap_or(0);
        let mut net = ClaireEncoder::<CpuBackend>::new(g, &config.claire, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl Method for Claire {
    fn name(&self) -> &'static str {
        "claire"
    }

    fn summary(&self) -> &'static str {
        "CLAIRE: MoCo on MNN anchors between batches with neighbour-interpolated views (Yan et al. 2023)"
    }

    /// CLAIRE-release's defaults: Adam at lr 1e-4 with weight decay 1e-5, batch 256,
    /// 80 epochs, a constant rate (the step decay is PBMC's only).
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 80,
            batch_size: 256,
            lr: 1e-4,
            weight_decay: 1e-5,
            optimizer: OptimizerKind::Adam,
            schedule: LrSchedule::Constant,
            ..TrainConfig::default()
        }
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            features: true,
            batch_codes: true,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.claire;
        if config.input_dims.len() > 1 {
            return Err(invalid(
                "data.protein_key",
                "CLAIRE integrates RNA only; drop the protein block",
            ));
        }
        if p.latent_dim == 0 || p.queue_size == 0 || p.knn == 0 || p.k_anchor == 0 {
            return Err(invalid(
                "model.claire",
                "latent_dim, queue_size, knn and k_anchor must be at least 1",
            ));
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(invalid(
                "model.claire.dropout",
                "expected a probability in [0, 1)",
            ));
        }
        if !(0.0..=1.0).contains(&p.momentum) {
            return Err(invalid(
                "model.claire.momentum",
                "expected a value in [0, 1]",
            ));
        }
        if !(p.temperature > 0.0 && p.temperature.is_finite()) {
            return Err(invalid(
                "model.claire.temperature",
                "expected a positive number",
            ));
        }
        if !(0.0..=1.0).contains(&p.alpha) {
            return Err(invalid("model.claire.alpha", "expected a value in [0, 1]"));
        }
        if !(p.refilter_threshold > 0.0 && p.refilter_threshold <= 1.0) {
            return Err(invalid(
                "model.claire.refilter_threshold",
                "expected a posterior in (0, 1]",
            ));
        }
        Ok(())
    }

    /// Asks for every cell's features and batch once, builds the neighbour graph and the
    /// anchors ([`prepare`]), then trains with the generic trainer.
    fn fit(
        &self,
        config: &ModelConfig,
        training: &TrainConfig,
        n_cells: usize,
        source: &mut BatchSource<'_>,
        progress: &mut dyn FnMut(&TrainEvent),
    ) -> Result<Fitted> {
        if config.input_dims.first().is_some_and(|&g| g < 8) {
            return Err(invalid(
                "model.claire",
                "CLAIRE's encoder narrows the genes to G/4 and G/8: it needs at least 8 genes",
            ));
        }
        let all: Vec<usize> = (0..n_cells).collect();
        let batch = source(BatchRequest {
            epoch: 0,
            step: 0,
            cells: &all,
            needs: self.needs(config),
        })
        .map_err(|message| ModelError::Views { epoch: 0, message })?;
        let x = batch
            .features
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Views {
                epoch: 0,
                message: "CLAIRE asked for every cell's features, none were given".into(),
            })?;
        check_inputs(&config.input_dims, &[x.view()])?;
        if x.nrows() != n_cells {
            return Err(ModelError::Shape(format!(
                "{} cells given, {n_cells} expected",
                x.nrows()
            )));
        }
        let codes = batch.batch_codes.ok_or_else(|| {
            invalid(
                "data.batch_key",
                "CLAIRE needs each cell's batch to find anchors between batches",
            )
        })?;
        let data = prepare(&config.claire, x, &codes, training.seed)?;
        tracing::info!(
            anchors = data.pairs.len(),
            cells = anchored_cells(&data.pairs).len(),
            "CLAIRE anchors"
        );
        let mut config = config.clone();
        config.claire.prepared = Some(Prepared(Arc::new(data)));
        fit_objective::<ClaireFamily>(&config, training, n_cells, source, progress)
    }

    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = check_inputs(&config.input_dims, &inputs.features)?;
        let net = Self::cpu_network(config, tensors)?;
        let x: ArrayView2<'_, f32> = inputs.features[0];
        embed_latent(n, |rows| {
            Ok(net.forward(crate::model::rows_tensor(x, rows), Pass::EVAL))
        })
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}
