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
    /// SGD with momentum 0.9 (PyTorch's `SGD(momentum=0.9)`: no dampening, no Nesterov),
    /// weight decay added to the gradient (CLEAR).
    Sgd,
}

/// Learning-rate schedule. Written as its name (`step`, `step:2:0.9`, `constant`, `cosine`,
/// `cosine:1e-6`, `warmup_cosine:2000`, `polynomial:900:0.01`; [`LrSchedule::parse`]). The
/// first three are evaluated once per epoch, the last two at every optimiser step.
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
    /// Per step: linear warm-up from 0 over `warmup_steps`, then cosine decay to 0 at the last
    /// step (Hugging Face's `get_cosine_schedule_with_warmup`, as scCLIP steps it).
    WarmupCosine {
        /// Steps of linear warm-up.
        warmup_steps: usize,
    },
    /// Per step: linear decay from the base rate to `end_factor`·base over `decay_steps`
    /// steps, then constant (Keras' `PolynomialDecay` with power 1, as Concerto uses it).
    Polynomial {
        /// Steps over which the rate decays.
        decay_steps: usize,
        /// Final rate as a share of the base rate.
        end_factor: f64,
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
    /// Whether the rate changes at every optimiser step rather than once per epoch.
    pub fn per_step(&self) -> bool {
        matches!(
            self,
            LrSchedule::WarmupCosine { .. } | LrSchedule::Polynomial { .. }
        )
    }

    /// Learning rate at optimiser step `step` (0-based) of `total_steps`, given the base rate
    /// (per-step schedules; the per-epoch ones read `epoch` of `epochs`).
    pub fn lr_at(
        &self,
        base: f64,
        epoch: usize,
        epochs: usize,
        step: u64,
        total_steps: u64,
    ) -> f64 {
        match *self {
            LrSchedule::WarmupCosine { warmup_steps } => {
                let w = warmup_steps as f64;
                let s = step as f64;
                if s < w {
                    return base * s / w.max(1.0);
                }
                let span = (total_steps as f64 - w).max(1.0);
                let progress = ((s - w) / span).min(1.0);
                base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()).max(0.0)
            }
            LrSchedule::Polynomial {
                decay_steps,
                end_factor,
            } => {
                let t = (step as f64).min(decay_steps as f64) / (decay_steps.max(1) as f64);
                let end = base * end_factor;
                (base - end) * (1.0 - t) + end
            }
            _ => self.lr(base, epoch, epochs),
        }
    }

    /// Learning rate for `epoch` of `epochs` given the base rate (the per-step schedules give
    /// their rate at the epoch's first step assuming one step per epoch; the trainer calls
    /// [`LrSchedule::lr_at`] for them).
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            LrSchedule::WarmupCosine { .. } | LrSchedule::Polynomial { .. } => {
                self.lr_at(base, epoch, epochs, epoch as u64, epochs as u64)
            }
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
                    "unknown schedule {name:?}; expected constant, step, step:STEP_SIZE:GAMMA, cosine, cosine:MIN_LR, warmup_cosine:WARMUP_STEPS or polynomial:DECAY_STEPS:END_FACTOR"
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
            ("warmup_cosine", [w]) => Ok(LrSchedule::WarmupCosine {
                warmup_steps: w.parse().map_err(|_| bad())?,
            }),
            ("polynomial", [steps, end]) => Ok(LrSchedule::Polynomial {
                decay_steps: steps.parse().map_err(|_| bad())?,
                end_factor: num(end)?,
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
            LrSchedule::WarmupCosine { warmup_steps } => write!(f, "warmup_cosine:{warmup_steps}"),
            LrSchedule::Polynomial {
                decay_steps,
                end_factor,
            } => write!(f, "polynomial:{decay_steps}:{end_factor}"),
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
            LrSchedule::Polynomial {
                decay_steps,
                end_factor,
            } => {
                if decay_steps == 0 {
                    return Err(invalid(
                        "training.schedule.decay_steps",
                        "must be at least 1",
                    ));
                }
                if !(0.0..=1.0).contains(&end_factor) {
                    return Err(invalid(
                        "training.schedule.end_factor",
                        "expected a share of the base rate in [0, 1]",
                    ));
                }
            }
            LrSchedule::WarmupCosine { .. } | LrSchedule::Constant => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_step_schedules_follow_hugging_face_and_keras() {
        let w = LrSchedule::WarmupCosine { warmup_steps: 10 };
        // get_cosine_schedule_with_warmup(num_warmup_steps=10, num_training_steps=110)
        assert_eq!(w.lr_at(1.0, 0, 1, 0, 110), 0.0);
        assert!((w.lr_at(1.0, 0, 1, 5, 110) - 0.5).abs() < 1e-12);
        assert!((w.lr_at(1.0, 0, 1, 10, 110) - 1.0).abs() < 1e-12);
        assert!((w.lr_at(1.0, 0, 1, 60, 110) - 0.5).abs() < 1e-12);
        assert!(w.lr_at(1.0, 0, 1, 110, 110).abs() < 1e-12);
        // PolynomialDecay(1.0, decay_steps=100, end_learning_rate=0.01, power=1)
        let p = LrSchedule::Polynomial {
            decay_steps: 100,
            end_factor: 0.01,
        };
        assert!((p.lr_at(1.0, 0, 1, 0, 500) - 1.0).abs() < 1e-12);
        assert!((p.lr_at(1.0, 0, 1, 50, 500) - 0.505).abs() < 1e-12);
        assert!((p.lr_at(1.0, 0, 1, 400, 500) - 0.01).abs() < 1e-12);
        assert!(p.per_step() && w.per_step() && !LrSchedule::Constant.per_step());
        for s in [w, p] {
            assert_eq!(LrSchedule::parse(&s.to_string()).unwrap(), s);
        }
        assert!(
            TrainConfig {
                schedule: LrSchedule::Polynomial {
                    decay_steps: 0,
                    end_factor: 0.1
                },
                ..TrainConfig::default()
            }
            .validate(100)
            .is_err()
        );
    }
}
