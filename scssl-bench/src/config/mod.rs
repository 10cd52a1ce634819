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
    /// Model: scssl-models' one declaration of a model's settings, in the reference's names.
    #[serde(default)]
    pub model: scssl_models::ModelConfig,
    /// Augmentation (a preset name or `{steps: [...]}`).
    #[serde(default = "default_augmentation")]
    pub augmentation: AugmentSpec,
    /// Training: scssl-models' training settings; `training.seed` is the run's seed (a grid
    /// sets it from its `seeds`).
    #[serde(default)]
    pub training: scssl_models::TrainConfig,
    /// Tasks.
    #[serde(default)]
    pub tasks: TasksSection,
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
            model: scssl_models::ModelConfig::default(),
            augmentation: default_augmentation(),
            training: scssl_models::TrainConfig {
                seed,
                ..Default::default()
            },
            tasks: TasksSection::default(),
        }
    }

    /// The seed of this run (`training.seed`).
    pub fn seed(&self) -> u64 {
        self.training.seed
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
            clean(self.model.method.name()),
            clean(&self.augmentation.label()),
            self.model.hidden_dim,
            self.seed(),
            (h >> 32) as u32
        )
    }

    /// Checks values that can be checked without data (method, integration, schedule and
    /// optimiser are checked as the config is read): model settings, device, augmentation,
    /// tasks.
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
        self.training.device.check_supported()?;
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
        let mut model = self.model.clone();
        model.input_dims = vec![n_features];
        if self.data.protein_key.is_some() {
            model.input_dims.push(1);
        }
        Ok(model)
    }

    /// The training configuration.
    pub fn train_config(&self) -> Result<scssl_models::TrainConfig> {
        Ok(self.training.clone())
    }
}
