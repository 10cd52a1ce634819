//! Two-view pipelines: an ordered list of steps, each applied to each view with its own
//! probability, configured by validated serde structs, with the reference's presets.

use ndarray::{Array2, ArrayView1, Axis};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{
    Augmentation, Context, CrossOver, CrossOverMany, GaussianNoise, GeneProgramMask, InnerSwap,
    Mask, MixOp, NeighbourMix, NeighbourSource,
};
use crate::error::{Error, Result};
use crate::rng::{Purpose, ViewKey, stream};

/// One augmentation's configuration (serde: `{"mask": {"rate": 0.2}}`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AugmentConfig {
    /// [`Mask`].
    Mask(Mask),
    /// [`GaussianNoise`].
    Gauss(GaussianNoise),
    /// [`InnerSwap`].
    InnerSwap(InnerSwap),
    /// [`CrossOver`].
    CrossOver(CrossOver),
    /// [`CrossOverMany`].
    CrossOverMany(CrossOverMany),
    /// [`NeighbourMix`].
    NeighbourMix(NeighbourMix),
    /// [`GeneProgramMask`].
    GeneProgramMask(GeneProgramMask),
}

/// Whether a step flips one coin per view or one for both views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coin {
    /// Each view decides on its own (the reference's behaviour for every step but MNN).
    #[default]
    PerView,
    /// One decision for both views (the reference's MNN step, DIV-21).
    Shared,
}

/// A step: an augmentation and the probability that it is applied to a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// The augmentation.
    pub augment: AugmentConfig,
    /// Probability of applying it to a view, in [0, 1].
    pub prob: f64,
    /// Per-view or shared coin.
    #[serde(default)]
    pub coin: Coin,
}

/// An ordered list of steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Steps in the order they are applied.
    pub steps: Vec<StepConfig>,
}

fn unit(field: String, v: f64) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::field(field, v, "[0, 1]"))
    }
}

impl AugmentConfig {
    fn validate(&self, at: &str) -> Result<()> {
        match self {
            AugmentConfig::Mask(m) => unit(format!("{at}.mask.rate"), m.rate),
            AugmentConfig::Gauss(g) => {
                unit(format!("{at}.gauss.rate"), g.rate)?;
                if !(g.sigma.is_finite() && g.sigma >= 0.0) {
                    return Err(Error::field(format!("{at}.gauss.sigma"), g.sigma, "[0, ∞)"));
                }
                Ok(())
            }
            AugmentConfig::InnerSwap(s) => unit(format!("{at}.inner_swap.rate"), s.rate),
            AugmentConfig::CrossOver(c) => unit(format!("{at}.cross_over.rate"), c.rate),
            AugmentConfig::CrossOverMany(c) => unit(format!("{at}.cross_over_many.rate"), c.rate),
            AugmentConfig::NeighbourMix(m) => {
                unit(format!("{at}.neighbour_mix.alpha"), m.alpha)?;
                if m.ops.is_empty() {
                    return Err(Error::field(
                        format!("{at}.neighbour_mix.ops"),
                        "[]",
                        "a non-empty list of interpolate/exchange",
                    ));
                }
                Ok(())
            }
            AugmentConfig::GeneProgramMask(p) => {
                unit(format!("{at}.gene_program_mask.rate"), p.rate)?;
                if p.programs.is_empty() || p.programs.iter().any(|g| g.is_empty()) {
                    return Err(Error::field(
                        format!("{at}.gene_program_mask.programs"),
                        "an empty list",
                        "non-empty gene lists",
                    ));
                }
                Ok(())
            }
        }
    }

    fn build(&self) -> Box<dyn Augmentation> {
        match self.clone() {
            AugmentConfig::Mask(a) => Box::new(a),
            AugmentConfig::Gauss(a) => Box::new(a),
            AugmentConfig::InnerSwap(a) => Box::new(a),
            AugmentConfig::CrossOver(a) => Box::new(a),
            AugmentConfig::CrossOverMany(a) => Box::new(a),
            AugmentConfig::NeighbourMix(a) => Box::new(a),
            AugmentConfig::GeneProgramMask(a) => Box::new(a),
        }
    }
}

fn step(augment: AugmentConfig, prob: f64) -> StepConfig {
    StepConfig {
        augment,
        prob,
        coin: Coin::PerView,
    }
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &[
    "none",
    "clear",
    "clear_as_run",
    "clear_original",
    "masking_only",
    "mask_only",
    "gauss_only",
    "innerswap_only",
    "crossover_only",
    "mnn_only",
    "bbknn_only",
];

impl PipelineConfig {
    /// A preset (methods.md §3.5), with the reference's order and probabilities:
    /// - `clear`: CLEAR's pipeline as meant — Mask 20 % → Gauss (80 %, σ 0.2) → InnerSwap 10 % →
    ///   CrossOver 25 %, each with probability 0.5 per view;
    /// - `clear_as_run`: the same as the reference code ran it (its "mask 20 %" zeroes 80 %);
    /// - `clear_original`: the original CLEAR's own views (methods.md §5.2, the CLEAR method's
    ///   default) — Mask 20 % → Gauss (80 %, σ **0.5**, the value CLEAR hard-codes) → InnerSwap
    ///   10 % → CrossOver 25 % → CrossOverMany 25 %, each with probability 0.5 per view
    ///   (CrossOver replaces genes and leaves the data unchanged; CLEAR's swap mutated its pool
    ///   in place, a bug);
    /// - `masking_only` / `mask_only`: Mask 50 %, probability 0.5 (the combination experiments'
    ///   `base_combi` value, where both semantics agree);
    /// - `gauss_only`, `innerswap_only`, `crossover_only`, `mnn_only`, `bbknn_only`: one
    ///   augmentation with `base_combi`'s parameters and probability 0.5;
    /// - `none`: no augmentation (both views equal the cell);
    /// - `a+b[+…]` of `mask`, `gauss`, `innerswap`, `crossover`, `mnn`, `bbknn` (the pairwise
    ///   combination experiments): those single-augmentation steps together, each with its
    ///   `base_combi` parameters and probability 0.5, in the reference's fixed order — Mask →
    ///   Gauss → InnerSwap → CrossOver, or with a graph step MNN → BBKNN → Gauss → InnerSwap →
    ///   CrossOver → Mask. (The reference drops CrossOver next to MNN and MNN next to BBKNN, which
    ///   silently turns some pairs into singles; here every named step runs.) A name given twice
    ///   counts once, so `mask+mask` is `mask_only`, as the reference's `name` key did.
    pub fn preset(name: &str) -> Result<PipelineConfig> {
        use AugmentConfig as A;
        if name.contains('+') {
            return Self::combination(name);
        }
        let steps = match name {
            "none" => vec![],
            "clear" | "clear_as_run" => vec![
                step(
                    A::Mask(Mask {
                        rate: if name == "clear" { 0.2 } else { 0.8 },
                    }),
                    0.5,
                ),
                step(
                    A::Gauss(GaussianNoise {
                        rate: 0.8,
                        sigma: 0.2,
                    }),
                    0.5,
                ),
                step(A::InnerSwap(InnerSwap { rate: 0.1 }), 0.5),
                step(A::CrossOver(CrossOver { rate: 0.25 }), 0.5),
            ],
            "clear_original" => vec![
                step(A::Mask(Mask { rate: 0.2 }), 0.5),
                step(
                    A::Gauss(GaussianNoise {
                        rate: 0.8,
                        sigma: 0.5,
                    }),
                    0.5,
                ),
                step(A::InnerSwap(InnerSwap { rate: 0.1 }), 0.5),
                step(A::CrossOver(CrossOver { rate: 0.25 }), 0.5),
                step(A::CrossOverMany(CrossOverMany { rate: 0.25 }), 0.5),
            ],
            "masking_only" | "mask_only" => vec![step(A::Mask(Mask { rate: 0.5 }), 0.5)],
            "gauss_only" => vec![step(
                A::Gauss(GaussianNoise {
                    rate: 0.3,
                    sigma: 0.2,
                }),
                0.5,
            )],
            "innerswap_only" => vec![step(A::InnerSwap(InnerSwap { rate: 0.3 }), 0.5)],
            "crossover_only" => vec![step(A::CrossOver(CrossOver { rate: 0.25 }), 0.5)],
            "mnn_only" => vec![StepConfig {
                augment: A::NeighbourMix(NeighbourMix {
                    alpha: 0.5,
                    ops: vec![MixOp::Interpolate],
                    source: NeighbourSource::Mnn,
                }),
                prob: 0.5,
                coin: Coin::Shared,
            }],
            "bbknn_only" => vec![step(
                A::NeighbourMix(NeighbourMix {
                    alpha: 0.3,
                    ops: vec![MixOp::Exchange],
                    source: NeighbourSource::Bbknn,
                }),
                0.5,
            )],
            other => {
                return Err(Error::UnknownPreset {
                    name: other.into(),
                    available: PRESETS.join(", "),
                });
            }
        };
        Ok(PipelineConfig { steps })
    }

    fn combination(name: &str) -> Result<PipelineConfig> {
        const SINGLES: [&str; 6] = ["mask", "gauss", "innerswap", "crossover", "mnn", "bbknn"];
        let parts: Vec<&str> = name
            .split('+')
            .map(|p| p.trim().trim_end_matches("_only"))
            .collect();
        if let Some(bad) = parts.iter().find(|p| !SINGLES.contains(p)) {
            return Err(Error::UnknownPreset {
                name: format!("{name} (no augmentation {bad:?})"),
                available: format!(
                    "{}, or combinations joined by '+' of {}",
                    PRESETS.join(", "),
                    SINGLES.join(", ")
                ),
            });
        }
        let graph = parts.iter().any(|p| matches!(*p, "mnn" | "bbknn"));
        let order: &[&str] = if graph {
            &["mnn", "bbknn", "gauss", "innerswap", "crossover", "mask"]
        } else {
            &["mask", "gauss", "innerswap", "crossover"]
        };
        let mut steps = Vec::new();
        for single in order.iter().filter(|o| parts.contains(o)) {
            steps.extend(Self::preset(&format!("{single}_only"))?.steps);
        }
        Ok(PipelineConfig { steps })
    }

    /// Checks every field; errors name the step and field and give the allowed range.
    pub fn validate(&self) -> Result<()> {
        for (i, s) in self.steps.iter().enumerate() {
            unit(format!("steps[{i}].prob"), s.prob)?;
            s.augment.validate(&format!("steps[{i}]"))?;
        }
        Ok(())
    }
}

/// A validated pipeline that turns cells into pairs of views.
#[derive(Debug)]
pub struct Pipeline {
    steps: Vec<(Box<dyn Augmentation>, f64, Coin)>,
    seed: u64,
}

impl Pipeline {
    /// Validates `config` and builds the pipeline; every random draw derives from `seed`.
    pub fn new(config: &PipelineConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            steps: config
                .steps
                .iter()
                .map(|s| (s.augment.build(), s.prob, s.coin))
                .collect(),
            seed,
        })
    }

    /// A preset pipeline (see [`PipelineConfig::preset`]).
    pub fn preset(name: &str, seed: u64) -> Result<Self> {
        Self::new(&PipelineConfig::preset(name)?, seed)
    }

    /// Checks that the context has what every step needs (neighbour lists, gene indices).
    pub fn check(&self, ctx: &Context<'_>) -> Result<()> {
        self.steps.iter().try_for_each(|(a, _, _)| a.check(ctx))
    }

    /// Which steps a view applies: `true` where the step's coin came up.
    pub fn applied_steps(&self, key: ViewKey) -> Vec<bool> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, (_, p, coin))| {
                stream(key, i, Purpose::Coin, *coin == Coin::Shared).random::<f64>() < *p
            })
            .collect()
    }

    /// Writes view `view` of cell `cell` in `epoch` into `out`, starting from `x` (the cell's
    /// values; usually `ctx.data.row(cell)`). `x` is not modified.
    pub fn view_into(
        &self,
        x: ArrayView1<'_, f32>,
        out: &mut [f32],
        cell: usize,
        view: u8,
        epoch: u64,
        ctx: &Context<'_>,
    ) {
        match x.as_slice() {
            Some(src) if src.len() == out.len() => out.copy_from_slice(src),
            _ => out.iter_mut().zip(x.iter()).for_each(|(o, v)| *o = *v),
        }
        self.apply_steps(out, cell, view, epoch, ctx);
    }

    /// Rewrites `out` (cell `cell`'s values) into view `view`: each step whose coin comes up.
    fn apply_steps(&self, out: &mut [f32], cell: usize, view: u8, epoch: u64, ctx: &Context<'_>) {
        let key = ViewKey {
            seed: self.seed,
            epoch,
            cell: cell as u64,
            view,
        };
        for (i, (aug, p, coin)) in self.steps.iter().enumerate() {
            // the same coin as `applied_steps`, without allocating
            if stream(key, i, Purpose::Coin, *coin == Coin::Shared).random::<f64>() < *p {
                let mut rng = stream(key, i, Purpose::Apply, false);
                aug.apply(out, cell, view, ctx, &mut rng);
            }
        }
    }

    /// The two views of the given cells (rows of `ctx.data`), as two new matrices
    /// (`cells.len()` × genes). Cells are processed in parallel; each view depends only on
    /// (seed, epoch, cell, view), not on the other cells of the batch or the thread count.
    pub fn views(
        &self,
        cells: &[usize],
        epoch: u64,
        ctx: &Context<'_>,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let g = ctx.data.ncols();
        let mut v0 = Array2::<f32>::zeros((cells.len(), g));
        let mut v1 = Array2::<f32>::zeros((cells.len(), g));
        self.views_into(cells, epoch, ctx, v0.view_mut(), v1.view_mut())?;
        Ok((v0, v1))
    }

    /// Like [`Pipeline::views`], but writes into caller-owned buffers (`cells.len()` × genes),
    /// so a training loop can reuse them across steps without new allocations.
    pub fn views_into(
        &self,
        cells: &[usize],
        epoch: u64,
        ctx: &Context<'_>,
        mut out0: ndarray::ArrayViewMut2<'_, f32>,
        mut out1: ndarray::ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let (n, g) = ctx.data.dim();
        if let Some(&bad) = cells.iter().find(|&&c| c >= n) {
            return Err(Error::Input(format!(
                "cell {bad} is out of range for {n} cells"
            )));
        }
        for (name, o) in [("out0", &out0), ("out1", &out1)] {
            if o.dim() != (cells.len(), g) {
                return Err(Error::Input(format!(
                    "{name} is {:?}, expected ({}, {g})",
                    o.dim(),
                    cells.len()
                )));
            }
        }
        self.check(ctx)?;
        out0.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(out1.axis_iter_mut(Axis(0)))
            .zip(cells.par_iter())
            .for_each(|((mut a, mut b), &c)| {
                // the cell's row is read (densified, for CSR) straight into each view
                for (view, r) in [(0u8, &mut a), (1u8, &mut b)] {
                    match r.as_slice_mut() {
                        Some(s) => {
                            ctx.data.copy_row(c, s);
                            self.apply_steps(s, c, view, epoch, ctx);
                        }
                        None => {
                            let mut tmp = vec![0.0; g];
                            ctx.data.copy_row(c, &mut tmp);
                            self.apply_steps(&mut tmp, c, view, epoch, ctx);
                            r.assign(&ArrayView1::from(&tmp[..]));
                        }
                    }
                }
            });
        Ok(())
    }

    /// Views of a batch of cells whose values are given in `batch` (rows) rather than read from
    /// `ctx.data` — e.g. a mini-batch a training loop already holds. `cells[i]` is row i's
    /// global index. Equal to [`Pipeline::views`] when the rows are the cells' rows.
    pub fn views_of_batch(
        &self,
        batch: ndarray::ArrayView2<'_, f32>,
        cells: &[usize],
        epoch: u64,
        ctx: &Context<'_>,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        if batch.nrows() != cells.len() {
            return Err(Error::Input(format!(
                "batch has {} rows but {} cell ids were given",
                batch.nrows(),
                cells.len()
            )));
        }
        if batch.ncols() != ctx.data.ncols() {
            return Err(Error::Input(format!(
                "batch has {} genes, the training matrix {}",
                batch.ncols(),
                ctx.data.ncols()
            )));
        }
        self.check(ctx)?;
        let g = batch.ncols();
        let mut v0 = Array2::<f32>::zeros((cells.len(), g));
        let mut v1 = Array2::<f32>::zeros((cells.len(), g));
        v0.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(v1.axis_iter_mut(Axis(0)))
            .enumerate()
            .for_each(|(r, (mut a, mut b))| {
                let c = cells[r];
                if let Some(s) = a.as_slice_mut() {
                    self.view_into(batch.row(r), s, c, 0, epoch, ctx);
                }
                if let Some(s) = b.as_slice_mut() {
                    self.view_into(batch.row(r), s, c, 1, epoch, ctx);
                }
            });
        Ok((v0, v1))
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }
    /// Whether the pipeline has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(c: &PipelineConfig) -> Vec<String> {
        c.steps
            .iter()
            .map(|s| {
                serde_json::to_value(&s.augment)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    #[test]
    fn combinations_join_single_presets_in_the_reference_order() {
        let c = PipelineConfig::preset("gauss+mask").unwrap();
        assert_eq!(kinds(&c), ["mask", "gauss"]);
        assert_eq!(c, PipelineConfig::preset("mask_only+gauss_only").unwrap());
        let mask = PipelineConfig::preset("mask_only").unwrap();
        let gauss = PipelineConfig::preset("gauss_only").unwrap();
        assert_eq!(c.steps, [mask.steps.clone(), gauss.steps].concat());
        // a graph step goes first and moves Mask to the end
        let c = PipelineConfig::preset("mask+crossover+mnn").unwrap();
        assert_eq!(kinds(&c), ["neighbour_mix", "cross_over", "mask"]);
        assert_eq!(c.steps[0].coin, Coin::Shared, "MNN keeps its shared coin");
        let c = PipelineConfig::preset("bbknn+mnn").unwrap();
        assert_eq!(c.steps.len(), 2, "both graph steps run");
        // the same name twice is that augmentation alone
        assert_eq!(PipelineConfig::preset("mask+mask").unwrap(), mask);
        for s in &PipelineConfig::preset("mnn+gauss+innerswap").unwrap().steps {
            assert_eq!(s.prob, 0.5);
        }
        PipelineConfig::preset("mask+gauss+innerswap+crossover+mnn+bbknn")
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn a_bad_combination_names_the_bad_part() {
        let e = PipelineConfig::preset("mask+gaus").unwrap_err().to_string();
        assert!(e.contains("gaus") && e.contains("'+'"), "{e}");
    }
}
