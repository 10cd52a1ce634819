//! Training settings: optimiser, learning-rate schedule, the run's seed and device.

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with weight decay added to the gradient (L2), as the reference.
    #[default]
    Adam,
    /// AdamW (decoupled weight decay).
    AdamW,
}

/// Learning-rate schedule, evaluated once per epoch. Written as its name
/// (`step`, `step:2:0.9`, `constant`, `cosine`, `cosine:1e-6`; [`LrSchedule::parse`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// The same rate every epoch (what the reference's README promises).
    Constant,
    /// Multiply by `gamma` every `step_size` epochs (the reference's code: 10, 0.1; DIV-8).
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Cosine decay from the base rate to `min_lr` over the run.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
    },
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule::Step {
            step_size: 10,
            gamma: 0.1,
        }
    }
}

impl LrSchedule {
    /// Learning rate for `epoch` of `epochs` given the base rate.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            LrSchedule::Cosine { min_lr } => {
                let t = if epochs <= 1 {
                    0.0
                } else {
                    epoch as f64 / (epochs - 1) as f64
                };
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// Parses `constant`, `step` (reference values) or `cosine`.
    pub fn parse(name: &str) -> Result<LrSchedule> {
        let lower = name.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let kind = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let bad = || {
            invalid(
                "training.schedule",
                format!(
                    "unknown schedule {name:?}; expected constant, step, step:STEP_SIZE:GAMMA, cosine or cosine:MIN_LR"
                ),
            )
        };
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
        match (kind, args.as_slice()) {
            ("constant", []) => Ok(LrSchedule::Constant),
            ("step", []) => Ok(LrSchedule::default()),
            ("step", [size, gamma]) => Ok(LrSchedule::Step {
                step_size: size.parse().map_err(|_| bad())?,
                gamma: num(gamma)?,
            }),
            ("cosine", []) => Ok(LrSchedule::Cosine { min_lr: 0.0 }),
            ("cosine", [min_lr]) => Ok(LrSchedule::Cosine {
                min_lr: num(min_lr)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// The name [`LrSchedule::parse`] reads back: `constant`, `step` (10, 0.1), `step:2:0.9`,
/// `cosine` (to 0), `cosine:1e-6`.
impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            LrSchedule::Constant => f.write_str("constant"),
            s if s == LrSchedule::default() => f.write_str("step"),
            LrSchedule::Step { step_size, gamma } => write!(f, "step:{step_size}:{gamma}"),
            LrSchedule::Cosine { min_lr: 0.0 } => f.write_str("cosine"),
            LrSchedule::Cosine { min_lr } => write!(f, "cosine:{min_lr}"),
        }
    }
}

impl Serialize for LrSchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LrSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        /// Models saved before the schedule was written by name stored `{kind, …}`.
        #[derive(Deserialize)]
        #[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
        enum Tagged {
            Constant,
            Step { step_size: usize, gamma: f64 },
            Cosine { min_lr: f64 },
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Name(String),
            Tagged(Tagged),
        }
        match Written::deserialize(d)? {
            Written::Name(name) => LrSchedule::parse(&name).map_err(serde::de::Error::custom),
            Written::Tagged(Tagged::Constant) => Ok(LrSchedule::Constant),
            Written::Tagged(Tagged::Step { step_size, gamma }) => {
                Ok(LrSchedule::Step { step_size, gamma })
            }
            Written::Tagged(Tagged::Cosine { min_lr }) => Ok(LrSchedule::Cosine { min_lr }),
        }
    }
}

/// Training settings: the `training:` section of a config file and of a saved model's
/// `model.json` (the one declaration the YAML schema and `scssl train`'s flags are read off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Cells per step (the last incomplete batch is dropped, as the reference does).
    pub batch_size: usize,
    /// Base learning rate (1e-4).
    pub lr: f64,
    /// Weight decay (1e-6).
    pub weight_decay: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Seed of initialisation, shuffling, memory banks and dropout.
    pub seed: u64,
    /// Clip the gradients' global L2 norm to this value before each step (PyTorch's
    /// `clip_grad_norm_`, Lightning's `gradient_clip_val`); `None`: no clipping.
    pub gradient_clip: Option<f64>,
    /// Where training runs: `cpu`, `cuda` or `cuda:N`.
    pub device: crate::ComputeDevice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 256,
            lr: 1e-4,
            weight_decay: 1e-6,
            optimizer: OptimizerKind::Adam,
            schedule: LrSchedule::default(),
            seed: 0,
            gradient_clip: None,
            device: crate::ComputeDevice::Cpu,
        }
    }
}

impl TrainConfig {
    /// Checks every field against the number of training cells.
    pub fn validate(&self, n_cells: usize) -> Result<()> {
        if self.epochs == 0 {
            return Err(invalid("training.epochs", "must be at least 1"));
        }
        if self.batch_size < 2 {
            return Err(invalid(
                "training.batch_size",
                "must be at least 2 (BatchNorm needs two cells)",
            ));
        }
        if n_cells < self.batch_size {
            return Err(invalid(
                "training.batch_size",
                format!(
                    "{} is larger than the {n_cells} training cells; no full batch can be formed",
                    self.batch_size
                ),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(invalid("training.lr", "expected a positive number"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(invalid(
                "training.weight_decay",
                "expected a non-negative number",
            ));
        }
        if let Some(c) = self.gradient_clip
            && !(c > 0.0 && c.is_finite())
        {
            return Err(invalid(
                "training.gradient_clip",
                "expected a positive number (or none)",
            ));
        }
        match self.schedule {
            LrSchedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(invalid("training.schedule.step_size", "must be at least 1"));
                }
                if !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(invalid(
                        "training.schedule.gamma",
                        "expected a positive number",
                    ));
                }
            }
            LrSchedule::Cosine { min_lr } => {
                if !(min_lr >= 0.0 && min_lr <= self.lr) {
                    return Err(invalid(
                        "training.schedule.min_lr",
                        "expected a value in [0, training.lr]",
                    ));
                }
            }
            LrSchedule::Constant => {}
        }
        Ok(())
    }
}

/// Cosine momentum schedule m(e) = 1 − (1 − base)·(cos(π·e/(E−1)) + 1)/2, over the run's
/// actual epochs (the reference fixes E = 200 for MoCo, DIV-10).
pub fn momentum_at(base: f64, epoch: usize, epochs: usize) -> f64 {
    if epochs <= 1 {
        return base;
    }
    if epoch >= epochs {
        return 1.0;
    }
    let t = epoch as f64 / (epochs - 1) as f64;
    1.0 - (1.0 - base) * ((std::f64::consts::PI * t).cos() + 1.0) / 2.0
}
