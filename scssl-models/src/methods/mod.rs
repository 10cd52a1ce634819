//! The method interface: every trainable method is one file in this folder and one line in
//! [`REGISTRY`].
//!
//! A method says what it needs per mini-batch ([`BatchNeeds`]: augmented views, the plain
//! features, raw counts, batch codes), trains through [`Method::fit`] (usually by handing an
//! [`Objective`] to the generic trainer, [`crate::train::train`]) and embeds cells from its
//! exported tensors ([`Method::embed`]). The caller (scssl-bench) asks [`Method::needs`] what to
//! build; the trainer knows nothing about any one method.
//!
//! The families: the two-view SSL methods ([`two_view`]: SimCLR, MoCo, SimSiam, NNCLR, BYOL,
//! VICReg, Barlow Twins; one small file each, optionally with domain-specific BatchNorm), PCA
//! ([`pca`]), which does not train at all, scVI ([`scvi`]), a VAE of raw counts with a batch
//! covariate, totalVI ([`totalvi`]), its RNA + protein counterpart, and the masked autoencoder
//! ([`mae`]), one un-augmented view with masking.

use std::fmt;
use std::hash::{Hash, Hasher};

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{ModelConfig, TrainConfig};
use crate::error::{Result, invalid};
use crate::layers::{NamedTensor, Pass};
use crate::model::{EmbeddingOutput, Embeddings};
use crate::train::{TrainEvent, TrainHistory};

pub mod background_prior;
pub mod barlow_twins;
pub mod byol;
pub mod claire;
pub mod claire_anchors;
pub mod clear;
pub mod concerto;
pub mod concerto_network;
pub mod dsbn;
pub mod mae;
pub mod moco;
pub mod nnclr;
pub mod pca;
pub mod scbutterfly;
mod scbutterfly_losses;
pub mod scbutterfly_network;
mod scbutterfly_training;
pub mod scclip;
pub mod scclip_vit;
#[cfg(feature = "scdc")]
pub mod scdc;
pub mod sctel;
mod sctel_layers;
pub mod sctel_network;
pub mod scvi;
pub mod simclr;
pub mod simsiam;
pub mod totalvi;
pub mod totalvi_network;
pub mod two_view;
pub mod vicreg;

/// Every method, in the paper's order. Adding a method: one file here and one line below.
pub static REGISTRY: &[&dyn Method] = &[
    &two_view::TwoView(simclr::SimClr),
    &two_view::TwoView(moco::MoCo),
    &two_view::TwoView(simsiam::SimSiam),
    &two_view::TwoView(nnclr::Nnclr),
    &two_view::TwoView(byol::Byol),
    &two_view::TwoView(vicreg::VicReg),
    &two_view::TwoView(barlow_twins::BarlowTwins),
    &claire::Claire,
    &clear::Clear,
    &pca::Pca,
    &scvi::Scvi,
    &totalvi::Totalvi,
    &mae::Mae,
    &scclip::Scclip,
    &concerto::Concerto,
    &scbutterfly::Scbutterfly,
    &sctel::Sctel,
    #[cfg(feature = "scdc")]
    &scdc::Scdc,
];

/// What a method needs from the caller for each mini-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchNeeds {
    /// Number of augmented views (two for the contrastive methods, none for PCA).
    pub views: usize,
    /// The batch's un-augmented features (one matrix per modality).
    pub features: bool,
    /// Raw counts of the RNA modality (count likelihoods).
    pub counts: bool,
    /// The protein modality as raw counts (`features[1]` untransformed: totalVI).
    pub protein_counts: bool,
    /// Each cell's batch code (batch covariates, domain-specific BatchNorm).
    pub batch_codes: bool,
    /// Every cell in one request (methods fitted in closed form, e.g. PCA).
    pub all_cells: bool,
    /// Gene programmes mapped onto the input genes, in [`ModelConfig::gene_programs`], before
    /// the model is built (the masked autoencoder's gene-programme masking); the caller reads
    /// them from a GMT file ([`crate::features::resolve_gene_programs`]).
    pub gene_programs: bool,
}

/// What the trainer asks the caller for: the data of `cells`, as `needs` says.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest<'a> {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Step within the epoch (0-based).
    pub step: usize,
    /// Indices of the batch's cells in the training matrix.
    pub cells: &'a [usize],
    /// What the method needs.
    pub needs: BatchNeeds,
}

/// One mini-batch from the caller, rows in the order of [`BatchRequest::cells`].
#[derive(Debug, Clone, Default)]
pub struct MiniBatch {
    /// Augmented views: `views[v][m]` is view `v` of modality `m` (RNA first).
    pub views: Vec<Vec<Array2<f32>>>,
    /// The un-augmented features, one matrix per modality (empty unless asked for).
    pub features: Vec<Array2<f32>>,
    /// Raw RNA counts (only when asked for).
    pub counts: Option<Array2<f32>>,
    /// Batch code of each cell (only when asked for).
    pub batch_codes: Option<Vec<u32>>,
}

impl MiniBatch {
    /// A batch of two augmented views (one matrix per modality in each).
    pub fn two_views(first: Vec<Array2<f32>>, second: Vec<Array2<f32>>) -> MiniBatch {
        MiniBatch {
            views: vec![first, second],
            ..MiniBatch::default()
        }
    }
}

/// The caller's source of mini-batches, as the trainer sees it.
pub type BatchSource<'a> =
    dyn FnMut(BatchRequest<'_>) -> std::result::Result<MiniBatch, String> + 'a;

/// What a method was fitted to: its tensors (the checkpoint) and its training curve.
#[derive(Debug, Clone, Default)]
pub struct Fitted {
    /// Every tensor, by name.
    pub tensors: Vec<NamedTensor>,
    /// Loss curve and timings (empty for methods that do not train).
    pub history: TrainHistory,
}

/// Cells to embed with a fitted method.
#[derive(Debug, Clone)]
pub struct EmbedInputs<'a> {
    /// One matrix per modality (RNA first), the features the method was trained on.
    pub features: Vec<ArrayView2<'a, f32>>,
    /// Raw RNA counts, for methods whose encoder reads counts.
    pub counts: Option<ArrayView2<'a, f32>>,
    /// Batch code of each cell, for methods with batch covariates.
    pub batch_codes: Option<&'a [u32]>,
}

impl<'a> EmbedInputs<'a> {
    /// Features only.
    pub fn features(features: &[ArrayView2<'a, f32>]) -> EmbedInputs<'a> {
        EmbedInputs {
            features: features.to_vec(),
            counts: None,
            batch_codes: None,
        }
    }
}

/// A trainable (or closed-form) method: a registry entry. Backend-independent and object-safe,
/// so configurations hold a [`MethodRef`] and every caller dispatches through it.
pub trait Method: Send + Sync + 'static {
    /// Lower-case name used in configs and on the command line.
    fn name(&self) -> &'static str;
    /// One line for help texts.
    fn summary(&self) -> &'static str;
    /// The name result tables show (the registry name unless the method needs a caveat:
    /// "SCDC (interpretation)").
    fn display_name(&self) -> &'static str {
        self.name()
    }
    /// The augmentation preset (a name of `scssl_augment::PipelineConfig::preset`) the method
    /// trains with when the run names none: the method's own views (CLEAR's), or `None` for the
    /// caller's default.
    fn default_augmentation(&self) -> Option<&'static str> {
        None
    }
    /// The head-width factor `f` the reference uses (two-view methods; 1 otherwise).
    fn default_factor(&self) -> usize {
        1
    }
    /// The training settings a run of this method gets for every key it does not set (the
    /// generic methods: the reference's; scVI: scvi-tools' `train()` defaults).
    fn default_training(&self) -> TrainConfig {
        TrainConfig::default()
    }
    /// Whether the method trains by gradient descent (PCA does not: epochs do not apply).
    fn trains(&self) -> bool {
        true
    }
    /// What the method needs per mini-batch.
    fn needs(&self, config: &ModelConfig) -> BatchNeeds;
    /// Method-specific checks of a configuration (the generic ones are in
    /// [`ModelConfig::validate`]); errors name the field.
    fn validate(&self, config: &ModelConfig) -> Result<()>;
    /// Fits the method on `n_cells` cells whose data comes from `source`.
    fn fit(
        &self,
        config: &ModelConfig,
        training: &TrainConfig,
        n_cells: usize,
        source: &mut BatchSource<'_>,
        progress: &mut dyn FnMut(&TrainEvent),
    ) -> Result<Fitted>;
    /// Loads `tensors` into the method's network and embeds `inputs` on the CPU.
    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        output: EmbeddingOutput,
    ) -> Result<Embeddings>;
    /// Checks that `tensors` fit the configuration (used when a checkpoint is loaded).
    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()>;
    /// The method's own prediction of the second modality (protein) from the first (RNA),
    /// for methods with a translator (scButterfly, scTEL), on the CPU in eval mode; `None`
    /// for methods without one (the benchmark then predicts by kNN in the embedding).
    fn predict_modality(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        rna: ArrayView2<'_, f32>,
    ) -> Result<Option<Array2<f32>>> {
        let _ = (config, tensors, rna);
        Ok(None)
    }
}

/// A handle on a registered method: copyable, compared and hashed by name, (de)serialised as
/// its name.
#[derive(Clone, Copy)]
pub struct MethodRef(&'static dyn Method);

impl MethodRef {
    /// Every registered method.
    pub fn all() -> impl Iterator<Item = MethodRef> {
        REGISTRY.iter().map(|m| MethodRef(*m))
    }

    /// Every registered name, comma-separated (for error messages and help).
    pub fn names() -> String {
        MethodRef::all()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Looks a method up by name (case-insensitive; punctuation ignored, so `barlow_twins`,
    /// `Barlow-Twins` and `barlowtwins` are the same).
    pub fn parse(name: &str) -> Result<MethodRef> {
        let key: String = name
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        MethodRef::all().find(|m| m.name() == key).ok_or_else(|| {
            invalid(
                "model.method",
                format!(
                    "unknown method {name:?}; expected one of {}",
                    MethodRef::names()
                ),
            )
        })
    }

    /// The registered method (must exist; used for the crate's own defaults).
    pub(crate) fn builtin(name: &str) -> MethodRef {
        match MethodRef::parse(name) {
            Ok(m) => m,
            // the registry is a static list that contains every built-in name
            Err(_) => MethodRef(REGISTRY[0]),
        }
    }

    /// The method behind the handle.
    pub fn get(self) -> &'static dyn Method {
        self.0
    }
}

impl std::ops::Deref for MethodRef {
    type Target = dyn Method;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for MethodRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}
impl Eq for MethodRef {}
/// A method equals its registry name: `config.method == "scvi"`.
impl PartialEq<str> for MethodRef {
    fn eq(&self, name: &str) -> bool {
        self.name() == name
    }
}
impl PartialEq<&str> for MethodRef {
    fn eq(&self, name: &&str) -> bool {
        self.name() == *name
    }
}
impl Hash for MethodRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}
impl fmt::Debug for MethodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MethodRef({})", self.0.name())
    }
}
impl fmt::Display for MethodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}
impl Serialize for MethodRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}
impl<'de> Deserialize<'de> for MethodRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        MethodRef::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Where the trainer is in the run, for one step.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Step within the epoch (0-based).
    pub step: usize,
    /// Steps since the start of training.
    pub global_step: u64,
    /// The run's seed.
    pub seed: u64,
}

impl StepContext {
    /// Train-mode pass number `view` of this step, with its own dropout seed (keyed by seed,
    /// step and view, so results do not depend on anything else).
    pub fn pass(&self, view: u64) -> Pass {
        let mut h = self.seed ^ 0x9E37_79B9_7F4A_7C15;
        for v in [self.global_step, view, 0] {
            h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h ^= h >> 31;
        }
        Pass {
            train: true,
            dropout_seed: h,
        }
    }
}

/// One mini-batch as tensors, for [`Objective::loss`].
#[derive(Debug, Clone)]
pub struct StepInputs<B: AutodiffBackend> {
    /// The batch's cells (indices into the caller's data), in row order.
    pub cells: Vec<usize>,
    /// `views[v][m]`: view `v` of modality `m`.
    pub views: Vec<Vec<Tensor<B, 2>>>,
    /// Un-augmented features per modality (when asked for).
    pub features: Vec<Tensor<B, 2>>,
    /// Raw RNA counts (when asked for).
    pub counts: Option<Tensor<B, 2>>,
    /// Batch codes (when asked for).
    pub batch_codes: Option<Vec<u32>>,
}

/// A method's training objective on one backend: its networks' construction, its state
/// besides the trained network (momentum targets, memory banks, KL weights), its loss.
pub trait Objective<B: AutodiffBackend>: Sized {
    /// The trained network.
    type Network: AutodiffModule<B>;
    /// Builds the state and the freshly initialised network.
    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, Self::Network)>;
    /// How the trainer runs this objective: epochs, the cells trained on, the last
    /// mini-batch rule, Adam's ε. Default: [`TrainPlan::standard`].
    fn plan(config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        let _ = config;
        Ok(TrainPlan::standard(training, n_cells))
    }
    /// Called before every epoch with the network (CLAIRE re-filters its anchors with the
    /// current encoder); `Some(cells)` replaces the cells trained on from this epoch on.
    fn before_epoch(
        &mut self,
        net: &mut Self::Network,
        epoch: usize,
    ) -> Result<Option<Vec<usize>>> {
        let _ = (net, epoch);
        Ok(None)
    }
    /// Called at the start of every epoch; returns the momentum to record, if any.
    fn start_epoch(&mut self, epoch: usize, epochs: usize) -> Option<f64>;
    /// The loss of one step (the trainer back-propagates it and steps the optimiser).
    fn loss(
        &mut self,
        net: &mut Self::Network,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>>;
    /// Every tensor of the trained network with its checkpoint name.
    fn export(net: &<Self::Network as AutodiffModule<B>>::InnerModule) -> Vec<NamedTensor>;
    /// The summed per-cell validation loss (scvi-tools' ELBO) of a held-out mini-batch, the
    /// network in eval mode; only called when the plan has a [`Validation`] rule.
    fn validation_loss(
        &mut self,
        net: &mut Self::Network,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<f64> {
        let _ = (net, inputs, step);
        Err(crate::error::ModelError::Inconsistent(
            "a validation loss for this method".into(),
        ))
    }
}

/// What the trainer does with the held-out cells after every epoch (scvi-tools' Lightning
/// callbacks): the validation loss is the mean over held-out cells of
/// [`Objective::validation_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// Stop when the validation loss has not improved for this many epochs (Lightning's
    /// `EarlyStopping`, min_delta 0); `None`: never stop early.
    pub early_stopping_patience: Option<usize>,
    /// Multiply the learning rate by `factor` when the validation loss has not improved for
    /// more than `patience` epochs (PyTorch's `ReduceLROnPlateau`, threshold 0, cooldown 0).
    pub lr_plateau: Option<LrPlateau>,
}

/// `ReduceLROnPlateau`'s settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrPlateau {
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// Factor applied to the learning rate.
    pub factor: f64,
}

/// How the generic trainer runs an objective.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPlan {
    /// Passes over the training cells.
    pub epochs: usize,
    /// The cells trained on (indices into the caller's data), in their initial order; each
    /// epoch shuffles them with a generator keyed by (seed, epoch).
    pub train_cells: Vec<usize>,
    /// Cells held out from training (scVI's validation set), for the record.
    pub held_out: Vec<usize>,
    /// A last, incomplete mini-batch is kept when it has at least this many cells; `None`
    /// drops it (the reference's `drop_last=True`).
    pub min_last_batch: Option<usize>,
    /// ε of Adam/AdamW.
    pub adam_epsilon: f64,
    /// Validation on the held-out cells after every epoch (early stopping, LR on plateau).
    pub validation: Option<Validation>,
}

impl TrainPlan {
    /// Every cell, `training.epochs` epochs, full batches only, ε 1e-8 (PyTorch's Adam).
    pub fn standard(training: &TrainConfig, n_cells: usize) -> TrainPlan {
        TrainPlan {
            epochs: training.epochs,
            train_cells: (0..n_cells).collect(),
            held_out: Vec::new(),
            min_last_batch: None,
            adam_epsilon: 1e-8,
            validation: None,
        }
    }
}

/// A method's [`Objective`] for any backend, so one `fit` serves the CPU and CUDA.
pub trait ObjectiveFamily {
    /// The objective on backend `B`.
    type On<B: AutodiffBackend>: Objective<B>;
}
