//! scButterfly-B's training (methods.md §5.8): the three phases of its custom `fit` (RNA and
//! ADT pre-training, then integrative training with the discriminator step), the KL warm-up,
//! the reference's early stopping and the reload of each phase's best modules. The method,
//! its settings and the registry entry are in [`super::scbutterfly`], the networks in
//! [`super::scbutterfly_network`].

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use super::scbutterfly_network::{
    Dims, Discriminators, Generator, LossWeights, ScbutterflyNetwork, Side, SideNoise,
    discriminator_loss, generator_loss, generator_terms, mix, pretrain_terms, soft_label,
};
use super::{BatchNeeds, BatchRequest, BatchSource};
use crate::config::{ModelConfig, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{Pass, tensor_from};
use crate::train::{EpochRecord, TrainEvent, TrainHistory};

/// The linear KL warm-up: `base · e / warmup` for e < warmup, then `base`.
pub fn warmed(base: f64, epoch: usize, warmup: usize) -> f64 {
    if epoch < warmup {
        base * epoch as f64 / warmup as f64
    } else {
        base
    }
}

/// Mini-batches per epoch over `n` cells: full batches and the rest, unless the rest is a
/// single cell (the reference's `drop_last` only when `n mod batch == 1`).
pub fn steps_per_epoch(n: usize, batch: usize) -> usize {
    n / batch + usize::from(n % batch > 1)
}

/// The reference's `EarlyStopping` (patience, δ = 0): an equal loss counts as an improvement.
#[derive(Debug, Clone, Default)]
pub struct EarlyStop {
    best: Option<f64>,
    counter: usize,
}

impl EarlyStop {
    /// Records a validation loss; returns (improved, stop).
    pub fn update(&mut self, loss: f64, patience: usize) -> (bool, bool) {
        match self.best {
            Some(b) if loss > b => {
                self.counter += 1;
                (false, self.counter >= patience)
            }
            _ => {
                self.best = Some(loss);
                self.counter = 0;
                (true, false)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Rna,
    Adt,
    Integrative,
}

fn normal<B: AutodiffBackend>(n: usize, d: usize, seed: u64, device: &B::Device) -> Tensor<B, 2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    tensor_from::<B, 2>(v, [n, d], device)
}

fn side_noise<B: AutodiffBackend>(
    n: usize,
    d: usize,
    seed: u64,
    device: &B::Device,
) -> SideNoise<B> {
    SideNoise {
        rna: Some(normal::<B>(n, d, mix(seed, 1), device)),
        adt: Some(normal::<B>(n, d, mix(seed, 2), device)),
    }
}

fn labels(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| soft_label(rng.random::<f64>()) as f32)
        .collect()
}

fn train_pass(seed: u64) -> Pass {
    Pass {
        train: true,
        dropout_seed: seed,
    }
}

fn scalar<B: AutodiffBackend>(t: &Tensor<B, 1>) -> f64 {
    t.clone().into_scalar().elem()
}

/// Fetches the paired batch of `cells` and checks it.
fn fetch<B: AutodiffBackend>(
    source: &mut BatchSource<'_>,
    dims: &Dims,
    epoch: usize,
    step: usize,
    cells: &[usize],
    device: &B::Device,
) -> Result<(Tensor<B, 2>, Tensor<B, 2>)> {
    let needs = BatchNeeds {
        features: true,
        ..BatchNeeds::default()
    };
    let views = |message: String| ModelError::Views { epoch, message };
    let batch = source(BatchRequest {
        epoch,
        step,
        cells,
        needs,
    })
    .map_err(views)?;
    if batch.features.len() != 2 {
        return Err(views(format!(
            "scButterfly needs RNA and protein features, got {} matrices",
            batch.features.len()
        )));
    }
    let mut out = Vec::with_capacity(2);
    for (x, (what, width)) in batch
        .features
        .iter()
        .zip([("RNA", dims.genes), ("protein", dims.proteins)])
    {
        if x.dim() != (cells.len(), width) {
            return Err(views(format!(
                "{what}: expected {} × {width}, got {} × {}",
                cells.len(),
                x.nrows(),
                x.ncols()
            )));
        }
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return Err(views(format!("{what}: a non-finite value ({v})")));
        }
        out.push(tensor_from::<B, 2>(
            x.iter().copied().collect(),
            [cells.len(), width],
            device,
        ));
    }
    let xa = out.pop();
    let xr = out.pop();
    match (xr, xa) {
        (Some(r), Some(a)) => Ok((r, a)),
        _ => Err(ModelError::Inconsistent(
            "scButterfly's two matrices".into(),
        )),
    }
}

fn non_finite(epoch: usize, step: usize, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ModelError::NonFiniteLoss { epoch, step, value })
    }
}

/// The three phases on backend `B`; returns the trained network and the curve.
pub(super) fn train_phases<B: AutodiffBackend>(
    config: &ModelConfig,
    training: &TrainConfig,
    n_cells: usize,
    device: &B::Device,
    source: &mut BatchSource<'_>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<(ScbutterflyNetwork<B::InnerBackend>, TrainHistory)> {
    let p = &config.scbutterfly;
    let dims = p.dims(config);
    let seed = training.seed;
    let bs = training.batch_size;
    let lr = training.lr;
    let net = ScbutterflyNetwork::<B>::new(&dims, seed, device);
    let (mut gen_net, mut disc) = (net.generator, net.discriminators);
    let decay =
        (training.weight_decay > 0.0).then(|| WeightDecayConfig::new(training.weight_decay as f32));
    let mut adam = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(decay)
        .init::<B, Generator<B>>();
    let mut sgd = SgdConfig::new().init::<B, Discriminators<B>>();

    // the validation split: a seeded permutation, the first share held out
    let mut order: Vec<usize> = (0..n_cells).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, 0x5B11_7000)));
    let n_val = (p.validation_share * n_cells as f64) as usize;
    let held_out = order[..n_val].to_vec();
    let mut train_cells = order[n_val..].to_vec();
    train_cells.sort_unstable();
    let n_train = train_cells.len();
    if n_train < 2 {
        return Err(invalid(
            "model.scbutterfly.validation_share",
            format!("{n_train} training cells are left; BatchNorm needs two"),
        ));
    }
    let steps = steps_per_epoch(n_train, bs);
    let kl_r = p.rna_kl(dims.genes);
    let integrative = p.integrative_epochs.unwrap_or(training.epochs);
    let mut history = TrainHistory::default();
    let started = std::time::Instant::now();
    let mut epoch_no = 0usize;
    let mut global_step = 0u64;
    tracing::info!(
        cells = n_train,
        held_out = n_val,
        batch = bs,
        "training scButterfly"
    );
    for (phase, cap) in [
        (Phase::Rna, p.rna_pretrain_epochs),
        (Phase::Adt, p.adt_pretrain_epochs),
        (Phase::Integrative, integrative),
    ] {
        let mut stopper = EarlyStop::default();
        let mut best: Option<(Generator<B>, Discriminators<B>)> = None;
        let phase_key = mix(seed, phase as u64 + 101);
        for e in 0..cap {
            let epoch_start = std::time::Instant::now();
            let mut order = train_cells.clone();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(phase_key, e as u64)));
            let mut loss_sum = 0.0;
            for step in 0..steps {
                let cells = &order[step * bs..((step + 1) * bs).min(n_train)];
                let n = cells.len();
                let (xr, xa) = fetch::<B>(source, &dims, epoch_no, step, cells, device)?;
                let key = mix(phase_key, global_step);
                let value = match phase {
                    Phase::Rna | Phase::Adt => {
                        let (side, x, w) = if phase == Phase::Rna {
                            (Side::Rna, xr, warmed(kl_r, e, p.kl_warmup_epochs))
                        } else {
                            (
                                Side::Adt,
                                xa,
                                warmed(p.adt_kl_weight, e, p.kl_warmup_epochs),
                            )
                        };
                        let eps = normal::<B>(n, dims.embed_dim, mix(key, 1), device);
                        let (rec, kl) = pretrain_terms(
                            &mut gen_net,
                            side,
                            x,
                            Some(eps),
                            train_pass(mix(key, 2)),
                        );
                        let loss = rec.add(kl.mul_scalar(w));
                        let value = scalar(&loss);
                        non_finite(epoch_no, step, value)?;
                        let grads = GradientsParams::from_grads(loss.backward(), &gen_net);
                        gen_net = adam.step(lr, gen_net, grads);
                        value
                    }
                    Phase::Integrative => {
                        // (a) the discriminators
                        let ld = discriminator_loss(
                            &mut gen_net,
                            &mut disc,
                            xr.clone(),
                            xa.clone(),
                            side_noise::<B>(n, dims.embed_dim, mix(key, 3), device),
                            &labels(n, mix(key, 4)),
                            train_pass(mix(key, 5)),
                        );
                        non_finite(epoch_no, step, scalar(&ld))?;
                        let grads = GradientsParams::from_grads(ld.backward(), &disc);
                        disc = sgd.step(p.discriminator_lr, disc, grads);
                        // (b) the generator, with a fresh discriminator pass
                        let ld = discriminator_loss(
                            &mut gen_net,
                            &mut disc,
                            xr.clone(),
                            xa.clone(),
                            side_noise::<B>(n, dims.embed_dim, mix(key, 6), device),
                            &labels(n, mix(key, 7)),
                            train_pass(mix(key, 8)),
                        );
                        let ld_value = scalar(&ld);
                        let w = LossWeights {
                            rna: p.rna_loss_weight,
                            adt: p.adt_loss_weight,
                            discriminator: p.discriminator_weight,
                            kl: warmed(kl_r + p.adt_kl_weight, e, p.kl_warmup_epochs),
                            gate: p.discriminator_gate,
                        };
                        let t = generator_terms(
                            &mut gen_net,
                            xr,
                            xa,
                            side_noise::<B>(n, dims.embed_dim, mix(key, 9), device),
                            &w,
                            train_pass(mix(key, 10)),
                        );
                        let loss = generator_loss(t, ld, ld_value, &w);
                        let value = scalar(&loss);
                        non_finite(epoch_no, step, value)?;
                        let grads = GradientsParams::from_grads(loss.backward(), &gen_net);
                        gen_net = adam.step(lr, gen_net, grads);
                        value
                    }
                };
                loss_sum += value;
                history.step_losses.push(value);
                global_step += 1;
                progress(&TrainEvent::Step {
                    epoch: epoch_no,
                    step,
                    steps_per_epoch: steps,
                    loss: value,
                });
            }
            let seconds = epoch_start.elapsed().as_secs_f64();
            let validation_loss = if held_out.is_empty() {
                None
            } else {
                let mut sum = 0.0;
                let mut batches = 0usize;
                for (k, cells) in held_out.chunks(bs).enumerate() {
                    let (xr, xa) = fetch::<B>(source, &dims, epoch_no, k, cells, device)?;
                    let loss = match phase {
                        Phase::Rna => {
                            pretrain_terms(&mut gen_net, Side::Rna, xr, None, Pass::EVAL).0
                        }
                        Phase::Adt => {
                            pretrain_terms(&mut gen_net, Side::Adt, xa, None, Pass::EVAL).0
                        }
                        Phase::Integrative => {
                            let w = LossWeights {
                                rna: p.rna_loss_weight,
                                adt: p.adt_loss_weight,
                                discriminator: p.discriminator_weight,
                                kl: 0.0,
                                gate: p.discriminator_gate,
                            };
                            let noise = side_noise::<B>(
                                cells.len(),
                                dims.embed_dim,
                                mix(mix(phase_key, !(e as u64)), k as u64),
                                device,
                            );
                            generator_terms(&mut gen_net, xr, xa, noise, &w, Pass::EVAL)
                                .reconstruction
                        }
                    };
                    sum += scalar(&loss.detach());
                    batches += 1;
                }
                let v = sum / batches as f64;
                non_finite(epoch_no, usize::MAX, v)?;
                Some(v)
            };
            let record = EpochRecord {
                epoch: epoch_no,
                mean_loss: loss_sum / steps.max(1) as f64,
                lr,
                momentum: None,
                seconds,
                cells_per_second: n_train as f64 / seconds.max(1e-9),
                validation_loss,
            };
            progress(&TrainEvent::Epoch(record.clone()));
            history.epochs.push(record);
            epoch_no += 1;
            if let Some(v) = validation_loss {
                let (improved, stop) = stopper.update(v, p.patience);
                if improved {
                    best = Some((gen_net.clone(), disc.clone()));
                }
                if stop {
                    tracing::info!(?phase, epoch = e, "early stopping: no improvement");
                    if let Some((g, d)) = best.take() {
                        restore(phase, &mut gen_net, &mut disc, g, d);
                    }
                    break;
                }
            }
        }
    }
    history.seconds = started.elapsed().as_secs_f64();
    let net = ScbutterflyNetwork {
        generator: gen_net,
        discriminators: disc,
    };
    Ok((net.valid(), history))
}

/// Reloads the best state of the modules a phase trains (the reference reloads those only).
fn restore<B: AutodiffBackend>(
    phase: Phase,
    g: &mut Generator<B>,
    d: &mut Discriminators<B>,
    best_g: Generator<B>,
    best_d: Discriminators<B>,
) {
    match phase {
        Phase::Rna => {
            g.rna_encoder = best_g.rna_encoder;
            g.rna_decoder = best_g.rna_decoder;
            g.rna_translator = best_g.rna_translator;
        }
        Phase::Adt => {
            g.adt_encoder = best_g.adt_encoder;
            g.adt_decoder = best_g.adt_decoder;
            g.adt_translator = best_g.adt_translator;
        }
        Phase::Integrative => {
            g.rna_encoder = best_g.rna_encoder;
            g.adt_encoder = best_g.adt_encoder;
            g.rna_decoder = best_g.rna_decoder;
            g.adt_decoder = best_g.adt_decoder;
            g.translator = best_g.translator;
            *d = best_d;
        }
    }
}
