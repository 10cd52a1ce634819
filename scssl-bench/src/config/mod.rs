//! Experiment configs: YAML in the reference's vocabulary (data / model / augmentation /
//! training / tasks / seeds), `key=value` overrides, sweeps (a list where one value is
//! expected expands into a grid), and validation that names unknown keys with a suggestion.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::train::AugmentSpec;
use scssl_models::features::ProteinTransform;

mod defaults;
mod grid;
mod keys;

pub use defaults::DEFAULT_BASELINES;
pub use grid::{Grid, grid_from_text, grid_from_value, load_grid, single_run};
pub(crate) use keys::set_key;
pub use keys::{MAX_GRID_POINTS, apply_overrides, parse_yaml};

/// Simulated dataset parameters (`data.path: simulated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedData {
    /// Cells.
    pub cells: usize,
    /// Genes.
    pub genes: usize,
    /// Batches.
    pub batches: usize,
    /// Cell types.
    pub cell_types: usize,
    /// Proteins (0 = RNA only).
    pub proteins: usize,
    /// Simulator seed.
    pub seed: u64,
}

impl Default for SimulatedData {
    fn default() -> Self {
        SimulatedData {
            cells: 5000,
            genes: 2000,
            batches: 3,
            cell_types: 8,
            proteins: 0,
            seed: 0,
        }
    }
}

/// `data:` of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Display name (default: the file stem, or `simulated`).
    pub name: Option<String>,
    /// A file (.h5ad/.zarr, raw counts) or `simulated`.
    pub path: String,
    /// obs column of the batch.
    pub batch_key: String,
    /// obs column of the cell type.
    pub label_key: String,
    /// HVGs kept.
    pub n_hvg: usize,
    /// Batches held out as the query (annotation and modality prediction).
    pub holdout_batches: Vec<String>,
    /// obsm key of the protein block (multimodal).
    pub protein_key: Option<String>,
    /// Protein transform.
    pub protein_transform: ProteinTransform,
    /// Layer with raw counts (default X).
    pub counts_layer: Option<String>,
    /// Simulator settings when `path: simulated`.
    pub simulated: SimulatedData,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            name: None,
            path: "simulated".into(),
            batch_key: "batch".into(),
            label_key: "cell_type".into(),
            n_hvg: 2000,
            holdout_batches: Vec::new(),
            protein_key: None,
            protein_transform: ProteinTransform::Clr,
            counts_layer: None,
            simulated: SimulatedData::default(),
        }
    }
}

impl DataConfig {
    /// Whether the data is simulated.
    pub fn is_simulated(&self) -> bool {
        self.path == "simulated"
    }

    /// Name used in tables and run ids.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if self.is_simulated() {
            return "simulated".into();
        }
        Path::new(&self.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.clone())
    }
}

/// `model:` of one run (the reference's keys; `reg_alpha`/`reg_beta` are honoured, DIV-15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Method name.
    pub method: String,
    /// Embedding width.
    pub hidden_dim: usize,
    /// Head factor (`null`: the method's own).
    pub factor: Option<usize>,
    /// Dropout.
    pub dropout: f64,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Memory bank size.
    pub memory_bank_size: usize,
    /// Base momentum of EMA targets.
    pub momentum: f64,
    /// Multimodal integration.
    pub integrate: String,
    /// Embed with the projector output.
    pub predict_projection: bool,
    /// VICReg invariance weight λ.
    pub reg_lambda: f64,
    /// VICReg variance weight μ (`null`: = reg_lambda, as the reference code).
    pub reg_alpha: Option<f64>,
    /// VICReg covariance weight ν.
    pub reg_beta: f64,
    /// Barlow Twins off-diagonal weight.
    pub barlow_lambda: f64,
    /// scVI's settings (the latent width is `hidden_dim`).
    pub scvi: scssl_models::ScviParams,
    /// totalVI's settings.
    pub totalvi: scssl_models::TotalviParams,
    /// The masked autoencoder's settings.
    pub mae: scssl_models::MaeParams,
    /// GMT file of gene programmes for the masked autoencoder's `masking: gene_program`
    /// (relative paths are resolved against the config file's directory).
    pub gene_programs: Option<String>,
    /// Domain-specific BatchNorm in the backbone of the two-view methods (RNA only).
    pub dsbn: bool,
    /// DSBN's second BatchNorm: `shared-per-subset` (the reference branch) or `shared-mixed`.
    pub dsbn_bn2: scssl_models::DsbnSecondNorm,
}

impl Default for ModelSection {
    /// scssl-models' defaults ([`scssl_models::ModelConfig::default`]), in the reference's
    /// names: the two cannot drift apart.
    fn default() -> Self {
        let d = scssl_models::ModelConfig::default();
        ModelSection {
            method: d.method.name().to_string(),
            hidden_dim: d.hidden_dim,
            factor: d.factor,
            dropout: d.dropout,
            temperature: d.temperature,
            memory_bank_size: d.memory_bank_size,
            momentum: d.momentum,
            integrate: serde_json::to_value(d.integration)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "concat".into()),
            predict_projection: false,
            reg_lambda: d.vicreg.invariance,
            // the reference code ties μ to λ (DIV-15) unless it is given
            reg_alpha: (d.vicreg.variance != d.vicreg.invariance).then_some(d.vicreg.variance),
            reg_beta: d.vicreg.covariance,
            barlow_lambda: d.barlow_lambda,
            scvi: d.scvi,
            totalvi: d.totalvi,
            mae: d.mae,
            gene_programs: None,
            dsbn: d.dsbn,
            dsbn_bn2: d.dsbn_bn2,
        }
    }
}

/// `training:` of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// `step`, `constant` or `cosine`.
    pub schedule: String,
    /// `adam` or `adamw`.
    pub optimizer: String,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// Clip the gradients' global norm to this value (`null`: no clipping).
    pub gradient_clip: Option<f64>,
}

impl Default for TrainingSection {
    /// scssl-models' defaults ([`scssl_models::TrainConfig::default`]) on the CPU.
    fn default() -> Self {
        TrainingSection::from_train_config(&scssl_models::TrainConfig::default(), "cpu")
    }
}

impl TrainingSection {
    /// The `training:` keys of a models-crate training configuration (a method's defaults).
    pub fn from_train_config(t: &scssl_models::TrainConfig, device: &str) -> TrainingSection {
        TrainingSection {
            epochs: t.epochs,
            batch_size: t.batch_size,
            lr: t.lr,
            weight_decay: t.weight_decay,
            schedule: t.schedule.to_string(),
            optimizer: match t.optimizer {
                scssl_models::OptimizerKind::Adam => "adam",
                scssl_models::OptimizerKind::AdamW => "adamw",
            }
            .into(),
            device: device.into(),
            gradient_clip: t.gradient_clip,
        }
    }
}

/// `tasks:` of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksSection {
    /// scIB metrics on the embedding of all cells (model trained on all cells).
    pub batch_correction: bool,
    /// kNN annotation of held-out batches (model trained on the reference).
    pub annotation: bool,
    /// Protein prediction for held-out batches (multimodal data).
    pub modality_prediction: bool,
    /// Include kBET in the batch-correction metrics (the slowest metric).
    pub kbet: bool,
    /// Lay the batch-correction embedding out by UMAP for the report (`umap.json` in the run).
    pub umap: bool,
}

impl Default for TasksSection {
    fn default() -> Self {
        TasksSection {
            batch_correction: true,
            annotation: false,
            modality_prediction: false,
            kbet: true,
            umap: true,
        }
    }
}

/// One fully resolved experiment (one point of the grid, one seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the grid it belongs to.
    #[serde(default)]
    pub name: String,
    /// Data.
    #[serde(default)]
    pub data: DataConfig,
    /// Model.
    #[serde(default)]
    pub model: ModelSection,
    /// Augmentation (a preset name or `{steps: [...]}`).
    #[serde(default = "default_augmentation")]
    pub augmentation: AugmentSpec,
    /// Training.
    #[serde(default)]
    pub training: TrainingSection,
    /// Tasks.
    #[serde(default)]
    pub tasks: TasksSection,
    /// The seed of this run.
    pub seed: u64,
}

fn default_augmentation() -> AugmentSpec {
    AugmentSpec::Preset("clear".into())
}

impl RunConfig {
    /// A run with every section at its default (simulated data, SimCLR, `clear` views).
    pub fn with_seed(seed: u64) -> RunConfig {
        RunConfig {
            name: String::new(),
            data: DataConfig::default(),
            model: ModelSection::default(),
            augmentation: default_augmentation(),
            training: TrainingSection::default(),
            tasks: TasksSection::default(),
            seed,
        }
    }

    /// A stable, readable id: `data-method-augmentation-h64-s0-<hash>`; the hash covers the
    /// whole resolved config, so two configs share an id only if they are identical.
    pub fn id(&self) -> String {
        let canon = serde_json::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in canon.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // readable parts, each cut to 60 characters (a written-out pipeline can be long; the
        // hash keeps ids unique, and a directory name must stay under 255 bytes)
        let clean = |s: &str| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .take(60)
                .collect::<String>()
        };
        format!(
            "{}-{}-{}-h{}-s{}-{:08x}",
            clean(&self.data.display_name()),
            clean(&self.model.method),
            clean(&self.augmentation.label()),
            self.model.hidden_dim,
            self.seed,
            (h >> 32) as u32
        )
    }

    /// Checks values that can be checked without data: method, integration, schedule,
    /// optimiser, device, augmentation, tasks.
    pub fn validate(&self) -> Result<()> {
        let model = self.model_config(1)?;
        model.validate().map_err(anyhow::Error::from)?;
        if model.method.needs(&model).gene_programs {
            match &self.model.gene_programs {
                None => bail!(
                    "model.gene_programs: masking gene_program needs a GMT file of gene programmes"
                ),
                Some(p) if !Path::new(p).is_file() => {
                    bail!("model.gene_programs: {p} is not a file")
                }
                Some(_) => {}
            }
        }
        scssl_models::LrSchedule::parse(&self.training.schedule)?;
        scssl_models::ComputeDevice::parse(&self.training.device)?.check_supported()?;
        if !matches!(self.training.optimizer.as_str(), "adam" | "adamw") {
            bail!(
                "training.optimizer: unknown optimiser {:?}; expected adam or adamw",
                self.training.optimizer
            );
        }
        self.augmentation.config().context("augmentation")?;
        if !(self.tasks.batch_correction || self.tasks.annotation || self.tasks.modality_prediction)
        {
            bail!(
                "tasks: at least one of batch_correction, annotation, modality_prediction must be true"
            );
        }
        if (self.tasks.annotation || self.tasks.modality_prediction)
            && self.data.holdout_batches.is_empty()
        {
            bail!(
                "tasks.annotation/modality_prediction need data.holdout_batches (the query batches)"
            );
        }
        if self.tasks.modality_prediction && self.data.protein_key.is_none() {
            bail!("tasks.modality_prediction needs data.protein_key (CITE-seq protein in obsm)");
        }
        Ok(())
    }

    /// The model configuration for `n_features` genes; with a protein block its width is a
    /// placeholder (1) until the trainer fills in the input widths from the data.
    pub fn model_config(&self, n_features: usize) -> Result<scssl_models::ModelConfig> {
        use scssl_models::{Integration, MethodRef, ModelConfig, VicRegWeights};
        let m = &self.model;
        let mut input_dims = vec![n_features];
        if self.data.protein_key.is_some() {
            input_dims.push(1);
        }
        Ok(ModelConfig {
            method: MethodRef::parse(&m.method)?,
            input_dims,
            hidden_dim: m.hidden_dim,
            factor: m.factor,
            dropout: m.dropout,
            temperature: m.temperature,
            memory_bank_size: m.memory_bank_size,
            vicreg: VicRegWeights {
                invariance: m.reg_lambda,
                variance: m.reg_alpha.unwrap_or(m.reg_lambda),
                covariance: m.reg_beta,
            },
            barlow_lambda: m.barlow_lambda,
            momentum: m.momentum,
            integration: Integration::parse(&m.integrate)?,
            scvi: m.scvi,
            totalvi: m.totalvi,
            mae: m.mae.clone(),
            dsbn: m.dsbn,
            dsbn_bn2: m.dsbn_bn2,
            ..ModelConfig::default()
        })
    }

    /// The training configuration.
    pub fn train_config(&self) -> Result<scssl_models::TrainConfig> {
        let t = &self.training;
        Ok(scssl_models::TrainConfig {
            epochs: t.epochs,
            batch_size: t.batch_size,
            lr: t.lr,
            weight_decay: t.weight_decay,
            optimizer: if t.optimizer == "adamw" {
                scssl_models::OptimizerKind::AdamW
            } else {
                scssl_models::OptimizerKind::Adam
            },
            schedule: scssl_models::LrSchedule::parse(&t.schedule)?,
            seed: self.seed,
            gradient_clip: t.gradient_clip,
        })
    }
}
