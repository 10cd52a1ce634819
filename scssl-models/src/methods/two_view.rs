//! The two-view SSL family (methods.md §2): one branch (encoder, projector, optional
//! predictor) per modality, the heads of §2.2, modality integration (§2.5), momentum targets,
//! memory banks, and eval-mode embedding (§2.6). Each method of the family is a small
//! [`TwoViewMethod`] (its heads and its loss) in a file of its own.

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{Module, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::dsbn::{self, DomainBatchNorm, Domains};
use super::{
    BatchNeeds, BatchSource, EmbedInputs, Fitted, Method, Objective, ObjectiveFamily, StepContext,
    StepInputs,
};
use crate::config::{DsbnSecondNorm, Integration, ModelConfig, TrainConfig, momentum_at};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{
    BlockSpec, ENCODER_INNER, Mlp, NamedTensor, Pass, dropout, encoder_specs, reject_leftovers,
    tensor_from, tensor_values,
};
use crate::losses;
use crate::model::{EmbeddingOutput, Embeddings, check_inputs};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// Projector blocks and optional predictor blocks of a method.
pub type HeadSpecs = (Vec<BlockSpec>, Option<Vec<BlockSpec>>);

/// One method of the two-view family: its heads, its flags and its loss.
pub trait TwoViewMethod: Copy + Default + Send + Sync + 'static {
    /// Lower-case name.
    const NAME: &'static str;
    /// One line for help texts.
    const SUMMARY: &'static str;
    /// The head-width factor `f` of the reference (methods.md §2.2).
    const DEFAULT_FACTOR: usize;
    /// Trains against a momentum (EMA) copy of the network.
    const MOMENTUM_TARGET: bool = false;
    /// Keeps a memory bank of projections.
    const MEMORY_BANK: bool = false;
    /// `EmbeddingOutput::Projection` returns the predictor output (BYOL's `forward`
    /// returns p in the reference).
    const EMBED_PREDICTION: bool = false;

    /// Projector and predictor blocks for backbone width `h` and factor `f` (lightly
    /// 1.5.10's heads as scSSL-Bench builds them).
    fn heads(h: usize, f: usize) -> HeadSpecs;

    /// The loss of one step on two views (one tensor per modality in each).
    fn loss<B: AutodiffBackend>(
        config: &ModelConfig,
        parts: &mut StepParts<'_, B>,
        x0: Vec<Tensor<B, 2>>,
        x1: Vec<Tensor<B, 2>>,
        pass: [Pass; 4],
    ) -> Result<Tensor<B, 1>>;
}

/// One modality's networks.
#[derive(Module, Debug)]
pub struct Branch<B: Backend> {
    /// The shared-architecture encoder (backbone).
    pub encoder: Mlp<B>,
    /// Projection head.
    pub projector: Mlp<B>,
    /// Prediction head (SimSiam, NNCLR, BYOL).
    pub predictor: Option<Mlp<B>>,
    /// Domain-specific first BatchNorm (DSBN); the encoder then has no first BatchNorm.
    pub domain_norms: Option<DomainBatchNorm<B>>,
}

/// Outputs of one branch for one view.
#[derive(Debug, Clone)]
pub struct BranchOutput<B: Backend> {
    /// Backbone output (the embedding), `[n, h]`.
    pub backbone: Tensor<B, 2>,
    /// Projector output.
    pub projection: Tensor<B, 2>,
    /// Predictor output, when asked for and the method has a predictor.
    pub prediction: Option<Tensor<B, 2>>,
}

/// The trainable network of a two-view method.
#[derive(Module, Debug)]
pub struct SslNetwork<B: Backend> {
    /// One branch per modality (RNA first).
    pub branches: Vec<Branch<B>>,
    /// Learnable log logit-scale of the CLIP loss (only with `clip` integration).
    pub clip_log_scale: Option<Param<Tensor<B, 1>>>,
    /// Dropout probability after each encoder.
    pub dropout: f64,
    /// DSBN's second BatchNorm runs on each domain's rows separately (else on the batch).
    pub dsbn_per_subset: bool,
}

impl<B: Backend> SslNetwork<B> {
    /// Builds the network with seeded PyTorch-default initialisation, `heads` after each
    /// encoder. The configuration must have been validated.
    pub fn new(config: &ModelConfig, heads: &HeadSpecs, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (proj, pred) = heads;
        let branches = config
            .input_dims
            .iter()
            .map(|&g| {
                let mut specs = encoder_specs(g, config.hidden_dim);
                if config.dsbn {
                    // the first BatchNorm is the domain-specific one (no random draws, so
                    // initialisation is unchanged)
                    specs[0].batch_norm = None;
                }
                Branch {
                    encoder: Mlp::new(&specs, &mut rng, device),
                    projector: Mlp::new(proj, &mut rng, device),
                    predictor: pred.as_ref().map(|p| Mlp::new(p, &mut rng, device)),
                    domain_norms: config.dsbn.then(|| {
                        DomainBatchNorm::new(config.n_batches.max(1), ENCODER_INNER, device)
                    }),
                }
            })
            .collect();
        let clip_log_scale =
            (config.integration == Integration::Clip && config.input_dims.len() > 1).then(|| {
                let v = (1.0 / config.clip_temperature).ln() as f32;
                Param::initialized(
                    ParamId::new(),
                    tensor_from::<B, 1>(vec![v], [1], device).require_grad(),
                )
            });
        SslNetwork {
            branches,
            clip_log_scale,
            dropout: config.dropout,
            dsbn_per_subset: config.dsbn_bn2 == DsbnSecondNorm::SharedPerSubset,
        }
    }

    /// Runs branch `m` on `x`; the predictor only when asked. A DSBN branch needs the rows'
    /// `domains`.
    pub fn branch_forward(
        &mut self,
        m: usize,
        x: Tensor<B, 2>,
        pass: Pass,
        with_prediction: bool,
        domains: Option<&Domains<B>>,
    ) -> Result<BranchOutput<B>> {
        let p = self.dropout;
        let second = if self.dsbn_per_subset {
            DsbnSecondNorm::SharedPerSubset
        } else {
            DsbnSecondNorm::SharedMixed
        };
        let branch = &mut self.branches[m];
        let encoded = match &mut branch.domain_norms {
            None => branch.encoder.forward(x, pass),
            Some(norms) => {
                let domains = present(domains, "the cells' batches (DSBN)")?;
                dsbn::forward(&mut branch.encoder, norms, second, x, domains, pass)?
            }
        };
        let backbone = dropout(encoded, p, pass);
        let projection = branch.projector.forward(backbone.clone(), pass);
        let prediction = match (&mut branch.predictor, with_prediction) {
            (Some(pred), true) => Some(pred.forward(projection.clone(), pass)),
            _ => None,
        };
        Ok(BranchOutput {
            backbone,
            projection,
            prediction,
        })
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (i, b) in self.branches.iter().enumerate() {
            b.encoder.export(&format!("branch{i}.encoder"), &mut out);
            b.projector
                .export(&format!("branch{i}.projector"), &mut out);
            if let Some(p) = &b.predictor {
                p.export(&format!("branch{i}.predictor"), &mut out);
            }
            if let Some(d) = &b.domain_norms {
                d.export(&format!("branch{i}.dsbn"), &mut out);
            }
        }
        if let Some(s) = &self.clip_log_scale {
            out.push(NamedTensor {
                name: "clip_log_scale".into(),
                shape: vec![1],
                data: tensor_values(s.val()),
            });
        }
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (i, b) in self.branches.iter_mut().enumerate() {
            b.encoder
                .import(&format!("branch{i}.encoder"), &mut store)?;
            b.projector
                .import(&format!("branch{i}.projector"), &mut store)?;
            if let Some(p) = &mut b.predictor {
                p.import(&format!("branch{i}.predictor"), &mut store)?;
            }
            if let Some(d) = &mut b.domain_norms {
                d.import(&format!("branch{i}.dsbn"), &mut store)?;
            }
        }
        if let Some(s) = &mut self.clip_log_scale {
            let t = store
                .remove("clip_log_scale")
                .ok_or_else(|| ModelError::Checkpoint {
                    path: Default::default(),
                    message: "tensor clip_log_scale is missing".into(),
                })?;
            let old = s.val();
            let new = tensor_from::<B, 1>(t.data, [1], &old.device());
            *s = Param::initialized(
                s.id,
                if old.is_require_grad() {
                    new.require_grad()
                } else {
                    new
                },
            );
        }
        reject_leftovers(&store)
    }

    /// θ_self ← m·θ_self + (1 − m)·θ_online for every parameter (BatchNorm buffers excluded).
    pub fn momentum_update(&mut self, online: &Self, m: f64) {
        for (t, o) in self.branches.iter_mut().zip(&online.branches) {
            t.encoder.ema(&o.encoder, m);
            t.projector.ema(&o.projector, m);
            if let (Some(tp), Some(op)) = (&mut t.predictor, &o.predictor) {
                tp.ema(op, m);
            }
            if let (Some(td), Some(od)) = (&mut t.domain_norms, &o.domain_norms) {
                td.ema(od, m);
            }
        }
    }

    /// A frozen copy (no parameter requires a gradient), for momentum targets.
    pub fn frozen_copy(&self) -> Self {
        let mut copy = self.clone();
        copy.branches = copy
            .branches
            .into_iter()
            .map(|b| Branch {
                encoder: b.encoder.freeze(),
                projector: b.projector.freeze(),
                predictor: b.predictor.map(Mlp::freeze),
                domain_norms: b.domain_norms.map(|d| d.no_grad()),
            })
            .collect();
        copy.clip_log_scale = None;
        copy
    }
}

/// Combines per-modality outputs (`add`, `mean`; `concat` and `clip` concatenate). Callers pass
/// one tensor per branch, and a network has at least one branch.
pub fn integrate<B: Backend>(parts: Vec<Tensor<B, 2>>, how: Integration) -> Tensor<B, 2> {
    let k = parts.len() as f64;
    match how {
        _ if parts.len() == 1 => Tensor::cat(parts, 1),
        Integration::Concat | Integration::Clip => Tensor::cat(parts, 1),
        Integration::Add => Tensor::stack::<3>(parts, 0).sum_dim(0).squeeze_dim(0),
        Integration::Mean => Tensor::stack::<3>(parts, 0)
            .sum_dim(0)
            .squeeze_dim::<2>(0)
            .div_scalar(k),
    }
}

/// A FIFO bank of K vectors with lightly's pointer rule: if `ptr + B ≥ K`, fill rows
/// `ptr..K` with the first keys, wrap to 0 and drop the rest; otherwise write `ptr..ptr+B`.
#[derive(Debug, Clone)]
pub struct MemoryBank<B: Backend> {
    /// The bank, `[K, d]`.
    pub rows: Tensor<B, 2>,
    ptr: usize,
}

impl<B: Backend> MemoryBank<B> {
    /// K random N(0,1) rows, L2-normalised (as lightly initialises it).
    pub fn new(k: usize, d: usize, seed: u64, device: &B::Device) -> Self {
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

    /// Writes `keys` (detached) at the pointer.
    pub fn enqueue(&mut self, keys: Tensor<B, 2>) {
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
    pub fn nearest(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let sims = losses::l2_normalize(z.detach())
            .matmul(losses::l2_normalize(self.rows.clone()).transpose());
        let n = sims.dims()[0];
        let idx: Tensor<B, 1, Int> = sims.argmax(1).reshape([n]);
        self.rows.clone().select(0, idx)
    }
}

/// What a [`TwoViewMethod::loss`] works with: the online network, the momentum target and the
/// memory bank (each present when the method has one).
pub struct StepParts<'a, B: AutodiffBackend> {
    /// The online network.
    pub net: &'a mut SslNetwork<B>,
    target: Option<&'a mut SslNetwork<B>>,
    bank: Option<&'a mut MemoryBank<B>>,
    integration: Integration,
    with_prediction: bool,
    domains: Option<Domains<B>>,
}

impl<B: AutodiffBackend> StepParts<'_, B> {
    /// The online network on one view: the integrated projection and, for methods with a
    /// predictor, the integrated prediction.
    pub fn online(
        &mut self,
        xs: Vec<Tensor<B, 2>>,
        pass: Pass,
    ) -> Result<(Tensor<B, 2>, Option<Tensor<B, 2>>)> {
        let with = self.with_prediction;
        let domains = self.domains.as_ref();
        let outs: Vec<_> = xs
            .into_iter()
            .enumerate()
            .map(|(k, x)| self.net.branch_forward(k, x, pass, with, domains))
            .collect::<Result<_>>()?;
        let z = integrate(
            outs.iter().map(|o| o.projection.clone()).collect(),
            self.integration,
        );
        let pred = if with {
            let ps = outs
                .into_iter()
                .map(|o| present(o.prediction, "the predictor output"))
                .collect::<Result<Vec<_>>>()?;
            Some(integrate(ps, self.integration))
        } else {
            None
        };
        Ok((z, pred))
    }

    /// The momentum target's integrated projection of one view (detached).
    pub fn target(&mut self, xs: Vec<Tensor<B, 2>>, pass: Pass) -> Result<Tensor<B, 2>> {
        let how = self.integration;
        let t = present(self.target.as_deref_mut(), "the momentum target network")?;
        let domains = self.domains.as_ref();
        let zs: Vec<_> = xs
            .into_iter()
            .enumerate()
            .map(|(k, x)| {
                t.branch_forward(k, x, pass, false, domains)
                    .map(|o| o.projection.detach())
            })
            .collect::<Result<_>>()?;
        Ok(integrate(zs, how))
    }

    /// The memory bank.
    pub fn bank(&mut self) -> Result<&mut MemoryBank<B>> {
        present(self.bank.as_deref_mut(), "the memory bank")
    }
}

/// `Some` part the configuration promises, or an [`ModelError::Inconsistent`] error.
pub fn present<T>(x: Option<T>, what: &str) -> Result<T> {
    x.ok_or_else(|| ModelError::Inconsistent(what.to_string()))
}

/// The training state of a two-view method besides the online network.
pub struct TwoViewObjective<B: AutodiffBackend, T: TwoViewMethod> {
    config: ModelConfig,
    target: Option<SslNetwork<B>>,
    bank: Option<MemoryBank<B>>,
    momentum: Option<f64>,
    /// Whether the heads include a predictor (fixed by the method, read every step).
    with_prediction: bool,
    method: PhantomData<T>,
}

fn is_clip(config: &ModelConfig) -> bool {
    config.integration == Integration::Clip && config.n_modalities() > 1
}

/// Width of the integrated projection (memory-bank width).
fn integrated_width<T: TwoViewMethod>(config: &ModelConfig) -> usize {
    let (proj, _) = T::heads(config.hidden_dim, config.factor());
    let d = proj.last().map(|s| s.d_out).unwrap_or(0);
    match config.integration {
        Integration::Concat | Integration::Clip => d * config.n_modalities(),
        _ => d,
    }
}

impl<B: AutodiffBackend, T: TwoViewMethod> Objective<B> for TwoViewObjective<B, T> {
    type Network = SslNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, SslNetwork<B>)> {
        let heads = T::heads(config.hidden_dim, config.factor());
        let with_prediction = heads.1.is_some();
        let net = SslNetwork::<B>::new(config, &heads, training.seed, device);
        let target = T::MOMENTUM_TARGET.then(|| net.frozen_copy());
        let bank = (T::MEMORY_BANK && !is_clip(config)).then(|| {
            MemoryBank::new(
                config.memory_bank_size,
                integrated_width::<T>(config),
                training.seed ^ 0xBA4C,
                device,
            )
        });
        let state = TwoViewObjective {
            config: config.clone(),
            target,
            bank,
            momentum: None,
            with_prediction,
            method: PhantomData,
        };
        Ok((state, net))
    }

    fn start_epoch(&mut self, epoch: usize, epochs: usize) -> Option<f64> {
        self.momentum =
            T::MOMENTUM_TARGET.then(|| momentum_at(self.config.momentum, epoch, epochs));
        self.momentum
    }

    /// The CLIP loss when the modalities are aligned by CLIP (one symmetric loss per view,
    /// averaged), otherwise the method's own loss; the momentum target moves first.
    fn loss(
        &mut self,
        net: &mut SslNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        let mut views = inputs.views.into_iter();
        let (Some(x0), Some(x1)) = (views.next(), views.next()) else {
            return Err(ModelError::Inconsistent("the two views of the step".into()));
        };
        if let (Some(t), Some(m)) = (&mut self.target, self.momentum) {
            t.momentum_update(net, m);
        }
        let pass = [0u64, 1, 2, 3].map(|v| step.pass(v));
        if is_clip(&self.config) {
            let scale = present(net.clip_log_scale.as_ref(), "the CLIP logit scale")?.val();
            // a validated multimodal config has exactly two branches, so zs has two entries
            let mut view_loss = |v: usize, xs: Vec<Tensor<B, 2>>| -> Result<Tensor<B, 1>> {
                let zs: Vec<Tensor<B, 2>> = xs
                    .into_iter()
                    .enumerate()
                    .map(|(k, x)| {
                        net.branch_forward(k, x, pass[v], false, None)
                            .map(|o| o.projection)
                    })
                    .collect::<Result<_>>()?;
                Ok(losses::clip(zs[0].clone(), zs[1].clone(), scale.clone()))
            };
            let l0 = view_loss(0, x0)?;
            let l1 = view_loss(1, x1)?;
            return Ok(l0.add(l1).mul_scalar(0.5));
        }
        let with_prediction = self.with_prediction;
        let domains = match (self.config.dsbn, &inputs.batch_codes) {
            (false, _) => None,
            (true, Some(codes)) => Some(Domains::new(codes, &x0[0].device())),
            (true, None) => {
                return Err(ModelError::Inconsistent("the cells' batches (DSBN)".into()));
            }
        };
        let mut parts = StepParts {
            net,
            target: self.target.as_mut(),
            bank: self.bank.as_mut(),
            integration: self.config.integration,
            with_prediction,
            domains,
        };
        T::loss(&self.config, &mut parts, x0, x1, pass)
    }

    fn export(net: &SslNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

/// The registry entry of a two-view method.
#[derive(Debug, Clone, Copy, Default)]
pub struct TwoView<T>(pub T);

struct TwoViewFamily<T>(PhantomData<T>);

impl<T: TwoViewMethod> ObjectiveFamily for TwoViewFamily<T> {
    type On<B: AutodiffBackend> = TwoViewObjective<B, T>;
}

impl<T: TwoViewMethod> TwoView<T> {
    /// The method's network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<SslNetwork<CpuBackend>> {
        let heads = T::heads(config.hidden_dim, config.factor());
        let mut net = SslNetwork::<CpuBackend>::new(config, &heads, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl<T: TwoViewMethod> Method for TwoView<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn summary(&self) -> &'static str {
        T::SUMMARY
    }

    fn default_factor(&self) -> usize {
        T::DEFAULT_FACTOR
    }

    fn needs(&self, config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            views: 2,
            batch_codes: config.dsbn,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let f = config.factor();
        let (proj, pred) = T::heads(config.hidden_dim, f);
        if proj
            .iter()
            .chain(pred.iter().flatten())
            .any(|s| s.d_out == 0)
        {
            return Err(invalid(
                "model.factor",
                format!(
                    "{} with hidden_dim {} and factor {f} gives a head of width 0",
                    T::NAME,
                    config.hidden_dim
                ),
            ));
        }
        if config.dsbn && config.n_modalities() > 1 {
            return Err(invalid(
                "model.dsbn",
                "domain-specific BatchNorm is for RNA-only models (as in the reference's dsbn branch); drop the protein block or set dsbn: false",
            ));
        }
        if T::MEMORY_BANK && config.memory_bank_size == 0 {
            return Err(invalid("model.memory_bank_size", "must be at least 1"));
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
        fit_objective::<TwoViewFamily<T>>(config, training, n_cells, source, progress)
    }

    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = check_inputs(&config.input_dims, &inputs.features)?;
        let mut net = Self::cpu_network(config, tensors)?;
        let device = Default::default();
        let wants_pred = output == EmbeddingOutput::Projection && T::EMBED_PREDICTION;
        let how = if config.integration == Integration::Clip {
            Integration::Concat
        } else {
            config.integration
        };
        let codes = match (config.dsbn, inputs.batch_codes) {
            (false, _) => None,
            (true, Some(c)) if c.len() == n => Some(c),
            (true, Some(c)) => {
                return Err(ModelError::Shape(format!(
                    "{} batch codes for {n} cells",
                    c.len()
                )));
            }
            (true, None) => {
                return Err(ModelError::Shape(
                    "a DSBN model embeds each cell with its own batch; no batch codes were given"
                        .into(),
                ));
            }
        };
        let mut parts = Embeddings::builder(inputs.features.len(), n);
        let chunk = 4096;
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let mut outs = Vec::with_capacity(inputs.features.len());
            let domains = codes.map(|c| Domains::new(&c[start..end], &device));
            for (m, x) in inputs.features.iter().enumerate() {
                let rows = x.slice(ndarray::s![start..end, ..]);
                let data: Vec<f32> = rows.iter().copied().collect();
                let t = tensor_from::<CpuBackend, 2>(data, [end - start, x.ncols()], &device);
                let o = net.branch_forward(m, t, Pass::EVAL, wants_pred, domains.as_ref())?;
                outs.push(match output {
                    EmbeddingOutput::Backbone => o.backbone,
                    EmbeddingOutput::Projection => o.prediction.unwrap_or(o.projection),
                });
            }
            for (m, e) in outs.iter().enumerate() {
                parts.push_modality(m, e.dims()[1], tensor_values(e.clone()));
            }
            let j = integrate(outs, how);
            parts.push_joint(j.dims()[1], tensor_values(j));
            start = end;
        }
        parts.finish()
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}
