//! The trainer, generic over a method's [`Objective`]: shuffled mini-batches from the caller
//! (what the method asks for: views, features, counts, batch codes), the objective's loss, Adam
//! or AdamW, a per-epoch learning-rate schedule, progress events, and loud failure.

use std::time::Instant;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig,
};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result};
use crate::methods::{
    BatchNeeds, BatchRequest, BatchSource, Objective, StepContext, StepInputs, TrainPlan,
};

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
    /// Mean validation loss over the held-out cells (methods with a validation rule).
    #[serde(default)]
    pub validation_loss: Option<f64>,
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

enum Opt<B: AutodiffBackend, M: AutodiffModule<B>> {
    Adam(OptimizerAdaptor<Adam, M, B>),
    AdamW(OptimizerAdaptor<AdamW, M, B>),
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Opt<B, M> {
    fn new(cfg: &TrainConfig, epsilon: f64) -> Self {
        match cfg.optimizer {
            OptimizerKind::Adam => {
                let decay = (cfg.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
                Opt::Adam(
                    AdamConfig::new()
                        .with_epsilon(epsilon as f32)
                        .with_weight_decay(decay)
                        .init(),
                )
            }
            OptimizerKind::AdamW => Opt::AdamW(
                AdamWConfig::new()
                    .with_epsilon(epsilon as f32)
                    .with_weight_decay(cfg.weight_decay as f32)
                    .init(),
            ),
            OptimizerKind::Sgd => {
                let decay = (cfg.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
                Opt::Sgd(
                    SgdConfig::new()
                        .with_momentum(Some(MomentumConfig {
                            momentum: 0.9,
                            dampening: 0.0,
                            nesterov: false,
                        }))
                        .with_weight_decay(decay)
                        .init(),
                )
            }
        }
    }

    fn step(&mut self, lr: f64, net: M, grads: GradientsParams) -> M {
        match self {
            Opt::Adam(o) => o.step(lr, net, grads),
            Opt::AdamW(o) => o.step(lr, net, grads),
            Opt::Sgd(o) => o.step(lr, net, grads),
        }
    }
}

/// Sums the squared gradients of every float parameter.
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s: f64 = g.powi_scalar(2).sum().into_scalar().elem();
            self.sum += s;
        }
    }
}

/// Multiplies every float parameter's gradient by `factor`.
struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// PyTorch's `clip_grad_norm_`: when the L2 norm of all gradients together exceeds
/// `max_norm`, scale them all by `max_norm / (norm + 1e-6)`.
fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    net: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) {
    let mut squares = GradSquares { grads, sum: 0.0 };
    net.visit(&mut squares);
    let norm = squares.sum.sqrt();
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        net.visit(&mut GradScale { grads, factor });
    }
}

fn views_error(epoch: usize, message: String) -> ModelError {
    ModelError::Views { epoch, message }
}

/// Checks one matrix of the caller's batch and turns it into a tensor.
fn to_tensor<B: AutodiffBackend>(
    x: &Array2<f32>,
    shape: (usize, usize),
    what: &str,
    device: &B::Device,
    epoch: usize,
) -> Result<Tensor<B, 2>> {
    if x.dim() != shape {
        return Err(views_error(
            epoch,
            format!(
                "{what}: expected a {} × {} view, got {} × {}",
                shape.0,
                shape.1,
                x.nrows(),
                x.ncols()
            ),
        ));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return Err(views_error(
            epoch,
            format!("{what}: the view contains a non-finite value ({v})"),
        ));
    }
    let data = match x.as_slice() {
        Some(s) => s.to_vec(),
        None => x.iter().copied().collect(),
    };
    Ok(Tensor::from_data(
        TensorData::new(data, [shape.0, shape.1]),
        device,
    ))
}

fn modality_tensors<B: AutodiffBackend>(
    xs: &[Array2<f32>],
    dims: &[usize],
    batch: usize,
    what: &str,
    device: &B::Device,
    epoch: usize,
) -> Result<Vec<Tensor<B, 2>>> {
    if xs.len() != dims.len() {
        return Err(views_error(
            epoch,
            format!(
                "expected {} modalities per {what}, got {}",
                dims.len(),
                xs.len()
            ),
        ));
    }
    xs.iter()
        .zip(dims)
        .enumerate()
        .map(|(m, (x, &g))| to_tensor(x, (batch, g), &format!("modality {m}"), device, epoch))
        .collect()
}

/// Checks the caller's mini-batch against what the method asked for and makes tensors of it.
fn step_inputs<B: AutodiffBackend>(
    batch: crate::methods::MiniBatch,
    cells: &[usize],
    needs: &BatchNeeds,
    dims: &[usize],
    device: &B::Device,
    epoch: usize,
) -> Result<StepInputs<B>> {
    let n = cells.len();
    if batch.views.len() != needs.views {
        return Err(views_error(
            epoch,
            format!(
                "the method needs {} augmented views, got {}",
                needs.views,
                batch.views.len()
            ),
        ));
    }
    let views = batch
        .views
        .iter()
        .map(|v| modality_tensors(v, dims, n, "view", device, epoch))
        .collect::<Result<Vec<_>>>()?;
    let features = if needs.features {
        modality_tensors(&batch.features, dims, n, "feature batch", device, epoch)?
    } else {
        Vec::new()
    };
    let counts = match (needs.counts, &batch.counts) {
        (false, _) => None,
        (true, Some(c)) => Some(to_tensor(c, (n, dims[0]), "counts", device, epoch)?),
        (true, None) => {
            return Err(views_error(
                epoch,
                "the method needs raw counts, none were given".into(),
            ));
        }
    };
    let batch_codes = match (needs.batch_codes, batch.batch_codes) {
        (false, _) => None,
        (true, Some(c)) if c.len() == n => Some(c),
        (true, Some(c)) => {
            return Err(views_error(
                epoch,
                format!("{} batch codes for {n} cells", c.len()),
            ));
        }
        (true, None) => {
            return Err(views_error(
                epoch,
                "the method needs batch codes, none were given".into(),
            ));
        }
    };
    Ok(StepInputs {
        cells: cells.to_vec(),
        views,
        features,
        counts,
        batch_codes,
    })
}

/// The state of the validation callbacks: early stopping and the LR plateau.
#[derive(Debug)]
struct Monitor {
    best_stop: f64,
    wait_stop: usize,
    best_lr: f64,
    bad_lr: usize,
    lr_factor: f64,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            best_stop: f64::INFINITY,
            wait_stop: 0,
            best_lr: f64::INFINITY,
            bad_lr: 0,
            lr_factor: 1.0,
        }
    }
}

impl Monitor {
    /// Records an epoch's validation loss; returns whether to stop.
    fn after_epoch(&mut self, rule: &crate::methods::Validation, loss: f64) -> bool {
        if let Some(p) = rule.lr_plateau {
            if loss < self.best_lr {
                self.best_lr = loss;
                self.bad_lr = 0;
            } else {
                self.bad_lr += 1;
            }
            if self.bad_lr > p.patience {
                self.lr_factor *= p.factor;
                self.bad_lr = 0;
            }
        }
        match rule.early_stopping_patience {
            Some(patience) => {
                if loss < self.best_stop {
                    self.best_stop = loss;
                    self.wait_stop = 0;
                    false
                } else {
                    self.wait_stop += 1;
                    self.wait_stop >= patience
                }
            }
            None => false,
        }
    }
}

/// The mean validation loss over `held_out`, in mini-batches of the training size.
#[allow(clippy::too_many_arguments)]
fn validate<B: AutodiffBackend, O: Objective<B>>(
    objective: &mut O,
    net: &mut O::Network,
    held_out: &[usize],
    model: &ModelConfig,
    train: &TrainConfig,
    epoch: usize,
    device: &B::Device,
    source: &mut BatchSource<'_>,
) -> Result<f64> {
    if held_out.is_empty() {
        // a method with a validation rule holds cells out (its `validate` checks train_size)
        return Err(ModelError::Inconsistent(
            "held-out cells for the validation rule".into(),
        ));
    }
    let needs = model.method.needs(model);
    let mut total = 0.0;
    for (k, cells) in held_out.chunks(train.batch_size).enumerate() {
        let batch = source(BatchRequest {
            epoch,
            step: k,
            cells,
            needs,
        })
        .map_err(|message| views_error(epoch, message))?;
        let inputs = step_inputs::<B>(batch, cells, &needs, &model.input_dims, device, epoch)?;
        // its own noise stream: validation never shares seeds with a training step
        let context = StepContext {
            epoch,
            step: k,
            global_step: u64::MAX - ((epoch as u64) << 20) - k as u64,
            seed: train.seed,
        };
        total += objective.validation_loss(net, inputs, &context)?;
    }
    let mean = total / held_out.len() as f64;
    if !mean.is_finite() {
        return Err(ModelError::NonFiniteLoss {
            epoch,
            step: usize::MAX,
            value: mean,
        });
    }
    Ok(mean)
}

/// Mini-batches per epoch over `n` cells: the full batches, and a last short one when it has
/// at least `min_last` cells.
fn steps_per_epoch(n: usize, batch_size: usize, min_last: Option<usize>) -> usize {
    let rest = n % batch_size;
    n / batch_size + usize::from(min_last.is_some_and(|m| rest > 0 && rest >= m))
}

/// Trains objective `O` on `n_cells` cells. `source` is called once per step with the batch's
/// cell indices and what the method needs; `progress` receives [`TrainEvent`]s. Returns the
/// trained network (without autodiff) and the curve.
///
/// Every random choice (initialisation, shuffling, memory banks, dropout) derives from
/// `train.seed`. A non-finite loss, a failing source or a shape mismatch stops training with
/// an error; nothing half-trained is returned.
pub fn train<B, O>(
    model: &ModelConfig,
    train: &TrainConfig,
    n_cells: usize,
    device: &B::Device,
    source: &mut BatchSource<'_>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<(<O::Network as AutodiffModule<B>>::InnerModule, TrainHistory)>
where
    B: AutodiffBackend,
    O: Objective<B>,
{
    model.validate()?;
    train.validate(n_cells)?;
    let needs = model.method.needs(model);
    let plan: TrainPlan = O::plan(model, train, n_cells)?;
    let n_train = plan.train_cells.len();
    if n_train < train.batch_size {
        return Err(crate::error::invalid(
            "training.batch_size",
            format!(
                "{} is larger than the {n_train} cells trained on",
                train.batch_size
            ),
        ));
    }
    let (mut objective, mut net) = O::init(model, train, device)?;
    let mut opt = Opt::<B, O::Network>::new(train, plan.adam_epsilon);
    let mut steps = steps_per_epoch(n_train, train.batch_size, plan.min_last_batch);
    let mut history = TrainHistory::default();
    let started = Instant::now();
    let mut order = plan.train_cells.clone();
    let mut global_step: u64 = 0;
    // the per-step schedules' horizon (recomputed when an objective replaces its cells)
    let mut total_steps: u64 = 0;
    let mut monitor = Monitor::default();
    tracing::info!(
        method = %model.method,
        cells = n_train,
        held_out = plan.held_out.len(),
        epochs = plan.epochs,
        batch = train.batch_size,
        "training"
    );
    for epoch in 0..plan.epochs {
        let epoch_start = Instant::now();
        let mut replaced = false;
        if let Some(cells) = objective.before_epoch(&mut net, epoch)? {
            if cells.len() < train.batch_size {
                return Err(crate::error::invalid(
                    "training.batch_size",
                    format!(
                        "{} is larger than the {} cells trained on from epoch {epoch}",
                        train.batch_size,
                        cells.len()
                    ),
                ));
            }
            tracing::info!(epoch, cells = cells.len(), "training cells replaced");
            steps = steps_per_epoch(cells.len(), train.batch_size, plan.min_last_batch);
            order = cells;
            replaced = true;
        }
        let n_train = order.len();
        if epoch == 0 || replaced {
            total_steps = global_step + (steps * (plan.epochs - epoch)) as u64;
        }
        let lr = train
            .schedule
            .lr_at(train.lr, epoch, plan.epochs, global_step, total_steps)
            * monitor.lr_factor;
        let momentum = objective.start_epoch(epoch, plan.epochs);
        let mut shuffle = ChaCha8Rng::seed_from_u64(train.seed.wrapping_add(1 + epoch as u64));
        order.shuffle(&mut shuffle);
        let mut loss_sum = 0.0;
        let mut cells_seen = 0;
        for step in 0..steps {
            let end = ((step + 1) * train.batch_size).min(n_train);
            let cells = &order[step * train.batch_size..end];
            cells_seen += cells.len();
            let batch = source(BatchRequest {
                epoch,
                step,
                cells,
                needs,
            })
            .map_err(|message| views_error(epoch, message))?;
            let inputs = step_inputs::<B>(batch, cells, &needs, &model.input_dims, device, epoch)?;
            let context = StepContext {
                epoch,
                step,
                global_step,
                seed: train.seed,
            };
            let loss = objective.loss(&mut net, inputs, &context)?;
            let value: f64 = loss.clone().into_scalar().elem();
            if !value.is_finite() {
                return Err(ModelError::NonFiniteLoss { epoch, step, value });
            }
            let mut grads = GradientsParams::from_grads(loss.backward(), &net);
            if let Some(max_norm) = train.gradient_clip {
                clip_global_norm(&net, &mut grads, max_norm);
            }
            let step_lr = if train.schedule.per_step() {
                train
                    .schedule
                    .lr_at(train.lr, epoch, plan.epochs, global_step, total_steps)
                    * monitor.lr_factor
            } else {
                lr
            };
            net = opt.step(step_lr, net, grads);
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
        let validation_loss = match &plan.validation {
            Some(_) => Some(validate::<B, O>(
                &mut objective,
                &mut net,
                &plan.held_out,
                model,
                train,
                epoch,
                device,
                source,
            )?),
            None => None,
        };
        let record = EpochRecord {
            epoch,
            mean_loss: loss_sum / steps as f64,
            lr,
            momentum,
            seconds,
            cells_per_second: cells_seen as f64 / seconds.max(1e-9),
            validation_loss,
        };
        tracing::debug!(epoch, loss = record.mean_loss, seconds, "epoch done");
        progress(&TrainEvent::Epoch(record.clone()));
        history.epochs.push(record);
        if let (Some(rule), Some(v)) = (&plan.validation, validation_loss)
            && monitor.after_epoch(rule, v)
        {
            tracing::info!(epoch, validation = v, "early stopping: no improvement");
            break;
        }
    }
    history.seconds = started.elapsed().as_secs_f64();
    Ok((net.valid(), history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Dense;
    use crate::runtime::CpuTrainBackend;
    use burn::module::Module;

    type B = CpuTrainBackend;

    fn grads_norm(net: &Dense<B>, grads: &GradientsParams) -> f64 {
        let mut sq = GradSquares { grads, sum: 0.0 };
        net.visit(&mut sq);
        sq.sum.sqrt()
    }

    #[test]
    fn early_stopping_and_plateau_follow_lightning_and_pytorch() {
        use crate::methods::{LrPlateau, Validation};
        let rule = Validation {
            early_stopping_patience: Some(3),
            lr_plateau: Some(LrPlateau {
                patience: 1,
                factor: 0.5,
            }),
        };
        let mut m = Monitor::default();
        // improvement, then stalls: the plateau halves the rate after 2 bad epochs (> 1), the
        // stop comes on the 3rd epoch without improvement
        assert!(!m.after_epoch(&rule, 10.0));
        assert!(!m.after_epoch(&rule, 9.0));
        assert!(!m.after_epoch(&rule, 9.0)); // equal is no improvement
        assert_eq!(m.lr_factor, 1.0);
        assert!(!m.after_epoch(&rule, 9.5));
        assert_eq!(m.lr_factor, 0.5);
        assert!(m.after_epoch(&rule, 9.2));
        // without early stopping it never stops
        let rule = Validation {
            early_stopping_patience: None,
            lr_plateau: None,
        };
        let mut m = Monitor::default();
        assert!((0..100).all(|_| !m.after_epoch(&rule, 1.0)));
    }

    #[test]
    fn global_norm_clipping_scales_all_gradients_together() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let net = Dense::<B>::new(4, 3, true, &mut rng, &device);
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(
                (0..8).map(|v| v as f32 * 10.0).collect::<Vec<f32>>(),
                [2, 4],
            ),
            &device,
        );
        let loss = net.forward(x).powi_scalar(2).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let norm = grads_norm(&net, &grads);
        assert!(norm > 1.0, "{norm}");
        let w_before = grads
            .get::<<B as AutodiffBackend>::InnerBackend, 2>(net.weight.id)
            .unwrap();
        let mut clipped = grads;
        clip_global_norm(&net, &mut clipped, 1.0);
        let after = grads_norm(&net, &clipped);
        assert!((after - 1.0).abs() < 1e-4, "{after}");
        // every tensor is scaled by the same factor (direction kept)
        let w_after = clipped
            .get::<<B as AutodiffBackend>::InnerBackend, 2>(net.weight.id)
            .unwrap();
        let ratio: Vec<f32> = w_after
            .div(w_before)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap();
        assert!(ratio.iter().all(|r| (r - ratio[0]).abs() < 1e-5));
        // below the limit nothing changes
        clip_global_norm(&net, &mut clipped, 10.0);
        assert!((grads_norm(&net, &clipped) - after).abs() < 1e-9);
    }
}
