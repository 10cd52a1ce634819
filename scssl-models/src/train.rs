//! The trainer: shuffled mini-batches of two views from the caller, the method's loss, Adam or
//! AdamW, a per-epoch learning-rate schedule, momentum targets and memory banks, progress
//! events, and loud failure.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::config::{Integration, Method, ModelConfig, OptimizerKind, TrainConfig, momentum_at};
use crate::error::{ModelError, Result};
use crate::layers::{Pass, tensor_from};
use crate::losses;
use crate::model::{SslModel, SslNetwork, integrate};

/// Two augmented views of a mini-batch: one matrix per modality (RNA first) in each view,
/// rows in the order of [`ViewRequest::cells`].
#[derive(Debug, Clone)]
pub struct TwoViews {
    /// View 1, one `[batch, features]` matrix per modality.
    pub first: Vec<Array2<f32>>,
    /// View 2, same shapes.
    pub second: Vec<Array2<f32>>,
}

/// What the trainer asks the caller's view source for.
#[derive(Debug, Clone, Copy)]
pub struct ViewRequest<'a> {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Step within the epoch (0-based).
    pub step: usize,
    /// Indices of the batch's cells in the training matrix.
    pub cells: &'a [usize],
}

/// One epoch's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean loss over the epoch's steps.
    pub mean_loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Momentum of the target network at the epoch's start (MoCo, BYOL).
    pub momentum: Option<f64>,
    /// Wall time of the epoch, views included.
    pub seconds: f64,
    /// Training throughput (cells per second, views included).
    pub cells_per_second: f64,
}

/// Progress events passed to the caller's callback.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// After every optimisation step.
    Step {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch (0-based).
        step: usize,
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// The step's loss.
        loss: f64,
    },
    /// After every epoch.
    Epoch(EpochRecord),
}

/// The training curve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Loss of every step, in order.
    pub step_losses: Vec<f64>,
    /// Per-epoch summaries.
    pub epochs: Vec<EpochRecord>,
    /// Total wall time in seconds.
    pub seconds: f64,
}

enum Opt<B: AutodiffBackend> {
    Adam(OptimizerAdaptor<Adam, SslNetwork<B>, B>),
    AdamW(OptimizerAdaptor<AdamW, SslNetwork<B>, B>),
}

impl<B: AutodiffBackend> Opt<B> {
    fn new(cfg: &TrainConfig) -> Self {
        match cfg.optimizer {
            OptimizerKind::Adam => {
                let decay = (cfg.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
                Opt::Adam(
                    AdamConfig::new()
                        .with_epsilon(1e-8)
                        .with_weight_decay(decay)
                        .init(),
                )
            }
            OptimizerKind::AdamW => Opt::AdamW(
                AdamWConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(cfg.weight_decay as f32)
                    .init(),
            ),
        }
    }

    fn step(&mut self, lr: f64, net: SslNetwork<B>, grads: GradientsParams) -> SslNetwork<B> {
        match self {
            Opt::Adam(o) => o.step(lr, net, grads),
            Opt::AdamW(o) => o.step(lr, net, grads),
        }
    }
}

/// A FIFO bank of K vectors with lightly's pointer rule: if `ptr + B ≥ K`, fill rows
/// `ptr..K` with the first keys, wrap to 0 and drop the rest; otherwise write `ptr..ptr+B`.
struct MemoryBank<B: AutodiffBackend> {
    rows: Tensor<B, 2>,
    ptr: usize,
}

impl<B: AutodiffBackend> MemoryBank<B> {
    /// K random N(0,1) rows, L2-normalised (as lightly initialises it).
    fn new(k: usize, d: usize, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..k * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        for row in v.chunks_mut(d) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= norm);
        }
        MemoryBank {
            rows: tensor_from::<B, 2>(v, [k, d], device),
            ptr: 0,
        }
    }

    fn enqueue(&mut self, keys: Tensor<B, 2>) {
        let keys = keys.detach();
        let [b, d] = keys.dims();
        let k = self.rows.dims()[0];
        if self.ptr + b >= k {
            let take = k - self.ptr;
            let head = keys.slice([0..take, 0..d]);
            self.rows = self.rows.clone().slice_assign([self.ptr..k, 0..d], head);
            self.ptr = 0;
        } else {
            self.rows = self
                .rows
                .clone()
                .slice_assign([self.ptr..self.ptr + b, 0..d], keys);
            self.ptr += b;
        }
    }

    /// The raw bank row most cosine-similar to each row of `z`.
    fn nearest(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let sims = losses::l2_normalize(z.detach())
            .matmul(losses::l2_normalize(self.rows.clone()).transpose());
        let n = sims.dims()[0];
        let idx: Tensor<B, 1, Int> = sims.argmax(1).reshape([n]);
        self.rows.clone().select(0, idx)
    }
}

/// Per-run training state besides the online network.
struct Extras<B: AutodiffBackend> {
    target: Option<SslNetwork<B>>,
    bank: Option<MemoryBank<B>>,
}

fn to_tensors<B: AutodiffBackend>(
    xs: &[Array2<f32>],
    dims: &[usize],
    batch: usize,
    device: &B::Device,
    epoch: usize,
) -> Result<Vec<Tensor<B, 2>>> {
    if xs.len() != dims.len() {
        return Err(ModelError::Views {
            epoch,
            message: format!(
                "expected {} modalities per view, got {}",
                dims.len(),
                xs.len()
            ),
        });
    }
    xs.iter()
        .zip(dims)
        .enumerate()
        .map(|(m, (x, &g))| {
            if x.dim() != (batch, g) {
                return Err(ModelError::Views {
                    epoch,
                    message: format!(
                        "modality {m}: expected a {batch} × {g} view, got {} × {}",
                        x.nrows(),
                        x.ncols()
                    ),
                });
            }
            if let Some(v) = x.iter().find(|v| !v.is_finite()) {
                return Err(ModelError::Views {
                    epoch,
                    message: format!("modality {m}: the view contains a non-finite value ({v})"),
                });
            }
            let data = match x.as_slice() {
                Some(s) => s.to_vec(),
                None => x.iter().copied().collect(),
            };
            Ok(Tensor::from_data(TensorData::new(data, [batch, g]), device))
        })
        .collect()
}

/// Seed of one forward pass's dropout masks.
fn pass_seed(seed: u64, global_step: u64, view: u64, network: u64) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [global_step, view, network] {
        h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    h
}

/// Computes the loss of one step (methods.md §2.4 and §2.5, with the fixes documented in the
/// crate README: BYOL's target is updated, MoCo's schedule spans the actual run, banks have
/// the integrated width, CLIP is one symmetric loss per view, averaged).
fn step_loss<B: AutodiffBackend>(
    cfg: &ModelConfig,
    net: &mut SslNetwork<B>,
    extras: &mut Extras<B>,
    x0: Vec<Tensor<B, 2>>,
    x1: Vec<Tensor<B, 2>>,
    pass: [Pass; 4],
) -> Result<Tensor<B, 1>> {
    let m = cfg.n_modalities();
    let method = cfg.method;
    let wants_pred = method.has_predictor();
    let how = cfg.integration;

    if how == Integration::Clip && m > 1 {
        let scale = present(net.clip_log_scale.as_ref(), "the CLIP logit scale")?.val();
        // a validated multimodal config has exactly two branches, so zs has two entries
        let mut view_loss = |v: usize, xs: Vec<Tensor<B, 2>>| {
            let zs: Vec<Tensor<B, 2>> = xs
                .into_iter()
                .enumerate()
                .map(|(k, x)| net.branch_forward(k, x, pass[v], false).projection)
                .collect();
            losses::clip(zs[0].clone(), zs[1].clone(), scale.clone())
        };
        let l0 = view_loss(0, x0);
        let l1 = view_loss(1, x1);
        return Ok(l0.add(l1).mul_scalar(0.5));
    }

    let online = |net: &mut SslNetwork<B>, xs: Vec<Tensor<B, 2>>, p: Pass| {
        let outs: Vec<_> = xs
            .into_iter()
            .enumerate()
            .map(|(k, x)| net.branch_forward(k, x, p, wants_pred))
            .collect();
        let z = integrate(outs.iter().map(|o| o.projection.clone()).collect(), how);
        let pred = if wants_pred {
            let ps = outs
                .into_iter()
                .map(|o| present(o.prediction, "the predictor output"))
                .collect::<Result<Vec<_>>>()?;
            Some(integrate(ps, how))
        } else {
            None
        };
        Ok::<_, ModelError>((z, pred))
    };
    let target = |t: &mut SslNetwork<B>, xs: Vec<Tensor<B, 2>>, p: Pass| {
        let zs: Vec<_> = xs
            .into_iter()
            .enumerate()
            .map(|(k, x)| t.branch_forward(k, x, p, false).projection.detach())
            .collect();
        integrate(zs, how)
    };
    let pred = |p: Option<Tensor<B, 2>>| present(p, "the predictor output");

    Ok(match method {
        Method::SimClr => {
            let (z0, _) = online(net, x0, pass[0])?;
            let (z1, _) = online(net, x1, pass[1])?;
            losses::nt_xent(z0, z1, cfg.temperature)
        }
        Method::VicReg => {
            let (z0, _) = online(net, x0, pass[0])?;
            let (z1, _) = online(net, x1, pass[1])?;
            let w = cfg.vicreg;
            losses::vicreg(z0, z1, w.invariance, w.variance, w.covariance)
        }
        Method::BarlowTwins => {
            let (z0, _) = online(net, x0, pass[0])?;
            let (z1, _) = online(net, x1, pass[1])?;
            losses::barlow_twins(z0, z1, cfg.barlow_lambda)
        }
        Method::SimSiam => {
            let (z0, p0) = online(net, x0, pass[0])?;
            let (z1, p1) = online(net, x1, pass[1])?;
            losses::negative_cosine(z0.detach(), pred(p1)?)
                .add(losses::negative_cosine(z1.detach(), pred(p0)?))
                .mul_scalar(0.5)
        }
        Method::Byol => {
            let (_, p0) = online(net, x0.clone(), pass[0])?;
            let (_, p1) = online(net, x1.clone(), pass[1])?;
            let t = present(extras.target.as_mut(), "BYOL's target network")?;
            let z0 = target(t, x0, pass[2]);
            let z1 = target(t, x1, pass[3]);
            losses::symmetric_negative_cosine(pred(p0)?, z0, pred(p1)?, z1)
        }
        Method::MoCo => {
            let (q, _) = online(net, x0, pass[0])?;
            let t = present(extras.target.as_mut(), "MoCo's target network")?;
            let k = target(t, x1, pass[3]);
            let bank = present(extras.bank.as_mut(), "MoCo's memory bank")?;
            let loss = losses::nt_xent_bank(q, k.clone(), bank.rows.clone(), cfg.temperature);
            bank.enqueue(losses::l2_normalize(k));
            loss
        }
        Method::Nnclr => {
            let (z0, p0) = online(net, x0, pass[0])?;
            let (z1, p1) = online(net, x1, pass[1])?;
            let bank = present(extras.bank.as_mut(), "NNCLR's memory bank")?;
            let nn0 = bank.nearest(z0.detach());
            let nn1 = bank.nearest(z1.clone().detach());
            bank.enqueue(z1.detach());
            losses::nt_xent(nn0, pred(p1)?, cfg.temperature)
                .add(losses::nt_xent(nn1, pred(p0)?, cfg.temperature))
                .mul_scalar(0.5)
        }
    })
}

/// `Some` part the configuration promises, or an [`ModelError::Inconsistent`] error.
fn present<T>(x: Option<T>, what: &str) -> Result<T> {
    x.ok_or_else(|| ModelError::Inconsistent(what.to_string()))
}

/// Width of the integrated projection (memory-bank width).
fn integrated_width(cfg: &ModelConfig) -> usize {
    let (proj, _) = crate::model::head_specs(cfg.method, cfg.hidden_dim, cfg.factor());
    let d = proj.last().map(|s| s.d_out).unwrap_or(0);
    match cfg.integration {
        Integration::Concat | Integration::Clip => d * cfg.n_modalities(),
        _ => d,
    }
}

/// Trains a model on `n_cells` cells. `views` is called once per step with the batch's cell
/// indices and returns two augmented views; `progress` receives [`TrainEvent`]s.
///
/// Every random choice (initialisation, shuffling, memory banks, dropout) derives from
/// `train.seed`. A non-finite loss, a failing view source or a shape mismatch stops training
/// with an error; nothing half-trained is returned.
pub fn train<B, V, E, P>(
    model: &ModelConfig,
    train: &TrainConfig,
    n_cells: usize,
    device: &B::Device,
    mut views: V,
    mut progress: P,
) -> Result<(SslModel<B::InnerBackend>, TrainHistory)>
where
    B: AutodiffBackend,
    V: FnMut(ViewRequest<'_>) -> std::result::Result<TwoViews, E>,
    E: std::fmt::Display,
    P: FnMut(&TrainEvent),
{
    model.validate()?;
    train.validate(n_cells)?;
    let mut net = SslNetwork::<B>::new(model, train.seed, device);
    let mut extras = Extras {
        target: model
            .method
            .has_momentum_encoder()
            .then(|| net.frozen_copy()),
        bank: (matches!(model.method, Method::MoCo | Method::Nnclr)
            && !(model.integration == Integration::Clip && model.n_modalities() > 1))
            .then(|| {
                MemoryBank::new(
                    model.memory_bank_size,
                    integrated_width(model),
                    train.seed ^ 0xBA4C,
                    device,
                )
            }),
    };
    let mut opt = Opt::<B>::new(train);
    let steps = n_cells / train.batch_size;
    let mut history = TrainHistory::default();
    let started = Instant::now();
    let mut order: Vec<usize> = (0..n_cells).collect();
    let mut global_step: u64 = 0;
    tracing::info!(
        method = %model.method,
        cells = n_cells,
        epochs = train.epochs,
        batch = train.batch_size,
        "training"
    );
    for epoch in 0..train.epochs {
        let epoch_start = Instant::now();
        let lr = train.schedule.lr(train.lr, epoch, train.epochs);
        let momentum = model
            .method
            .has_momentum_encoder()
            .then(|| momentum_at(model.momentum, epoch, train.epochs));
        let mut shuffle = ChaCha8Rng::seed_from_u64(train.seed.wrapping_add(1 + epoch as u64));
        order.shuffle(&mut shuffle);
        let mut loss_sum = 0.0;
        for step in 0..steps {
            let cells = &order[step * train.batch_size..(step + 1) * train.batch_size];
            let pair =
                views(ViewRequest { epoch, step, cells }).map_err(|e| ModelError::Views {
                    epoch,
                    message: e.to_string(),
                })?;
            let x0 = to_tensors::<B>(&pair.first, &model.input_dims, cells.len(), device, epoch)?;
            let x1 = to_tensors::<B>(&pair.second, &model.input_dims, cells.len(), device, epoch)?;
            if let (Some(t), Some(m)) = (&mut extras.target, momentum) {
                t.momentum_update(&net, m);
            }
            let pass = [0u64, 1, 2, 3].map(|v| Pass {
                train: true,
                dropout_seed: pass_seed(train.seed, global_step, v, 0),
            });
            let loss = step_loss(model, &mut net, &mut extras, x0, x1, pass)?;
            let value: f64 = loss.clone().into_scalar().elem();
            if !value.is_finite() {
                return Err(ModelError::NonFiniteLoss { epoch, step, value });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = opt.step(lr, net, grads);
            loss_sum += value;
            history.step_losses.push(value);
            global_step += 1;
            progress(&TrainEvent::Step {
                epoch,
                step,
                steps_per_epoch: steps,
                loss: value,
            });
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch,
            mean_loss: loss_sum / steps as f64,
            lr,
            momentum,
            seconds,
            cells_per_second: (steps * train.batch_size) as f64 / seconds.max(1e-9),
        };
        tracing::debug!(epoch, loss = record.mean_loss, seconds, "epoch done");
        progress(&TrainEvent::Epoch(record.clone()));
        history.epochs.push(record);
    }
    history.seconds = started.elapsed().as_secs_f64();
    Ok((
        SslModel {
            config: model.clone(),
            network: net.valid(),
        },
        history,
    ))
}
