//! Experiment configs: YAML in the reference's vocabulary (data / model / augmentation /
//! training / tasks / seeds), `key=value` overrides, sweeps (a list where one value is
//! expected expands into a grid), and validation that names unknown keys with a suggestion.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::train::AugmentSpec;
use scssl_models::features::ProteinTransform;

mod defaults;
mod keys;

pub use defaults::DEFAULT_BASELINES;
use defaults::{add_baselines, fill_method_training_defaults};
pub(crate) use keys::set_key;
pub use keys::{MAX_GRID_POINTS, apply_overrides, parse_yaml};
use keys::{check_keys, expand};

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
    fn default() -> Self {
        ModelSection {
            method: "simclr".into(),
            hidden_dim: 64,
            factor: None,
            dropout: 0.0,
            temperature: 0.5,
            memory_bank_size: 2048,
            momentum: 0.996,
            integrate: "concat".into(),
            predict_projection: false,
            reg_lambda: 5.0,
            reg_alpha: None,
            reg_beta: 1.0,
            barlow_lambda: 5e-3,
            scvi: scssl_models::ScviParams::default(),
            totalvi: scssl_models::TotalviParams::default(),
            mae: scssl_models::MaeParams::default(),
            gene_programs: None,
            dsbn: false,
            dsbn_bn2: scssl_models::DsbnSecondNorm::default(),
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
    fn default() -> Self {
        TrainingSection {
            epochs: 100,
            batch_size: 256,
            lr: 1e-4,
            weight_decay: 1e-6,
            schedule: "step".into(),
            optimizer: "adam".into(),
            device: "cpu".into(),
            gradient_clip: None,
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

/// A parsed grid: its name and every run.
#[derive(Debug, Clone)]
pub struct Grid {
    /// Grid name (config `name`, or the file stem).
    pub name: String,
    /// Runs in a stable order.
    pub runs: Vec<RunConfig>,
}

/// Reads a config file, applies overrides, checks keys, expands the grid and checks each run.
/// Relative data paths are resolved against the config file's directory.
pub fn load_grid(path: &Path, overrides: &[String]) -> Result<Grid> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    grid_from_text(&text, path, overrides)
}

/// [`load_grid`] of a config's text; `path` names it in errors, gives the grid its default name
/// and the directory that relative data paths are resolved against.
pub fn grid_from_text(text: &str, path: &Path, overrides: &[String]) -> Result<Grid> {
    let mut root = parse_yaml(text, path)?;
    check_keys(&mut root, "").with_context(|| format!("in {}", path.display()))?;
    apply_overrides(&mut root, overrides)?;
    let name = root
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "grid".into())
        });
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    grid_from_value(root, &name, &base)
}

/// One run from a config tree without sweeps (`scssl train`'s flags and `--set` keys): the
/// same key check, method training defaults and validation as every grid run.
pub fn single_run(mut root: Value, seed: u64) -> Result<RunConfig> {
    check_keys(&mut root, "")?;
    let mut points = expand(&root, "")?;
    if points.len() != 1 {
        bail!(
            "these settings make {} runs (a list is a sweep); `scssl train` trains one model, `scssl grid` runs sweeps",
            points.len()
        );
    }
    let mut point = points.remove(0);
    let Some(obj) = point.as_object_mut() else {
        bail!("a config is a mapping");
    };
    obj.insert("seed".into(), Value::from(seed));
    fill_method_training_defaults(obj)?;
    let run: RunConfig = serde_json::from_value(point)?;
    run.validate()?;
    Ok(run)
}

/// Expands an already-parsed config tree (see [`load_grid`]).
pub fn grid_from_value(mut root: Value, name: &str, base: &Path) -> Result<Grid> {
    if !root.is_object() {
        bail!("config {name}: a config is a mapping");
    }
    check_keys(&mut root, "")?;
    let seeds: Vec<u64> = match root.as_object_mut().and_then(|m| m.remove("seeds")) {
        None => vec![0],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_u64().context("seeds: expected non-negative integers"))
            .collect::<Result<_>>()?,
        Some(Value::Number(n)) => vec![
            n.as_u64()
                .context("seeds: expected a non-negative integer")?,
        ],
        Some(_) => bail!("seeds: expected a list of integers"),
    };
    if seeds.is_empty() {
        bail!("seeds: the list is empty");
    }
    let baselines: Vec<String> = match root.as_object_mut().and_then(|m| m.remove("baselines")) {
        None => DEFAULT_BASELINES.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .context("baselines: expected method names, e.g. [pca]")
            })
            .collect::<Result<_>>()?,
        Some(Value::String(s)) => vec![s],
        Some(_) => bail!("baselines: expected a list of method names, e.g. [pca] or []"),
    };
    let mut runs = Vec::new();
    let points = expand(&root, "")?;
    if points.len().saturating_mul(seeds.len()) > MAX_GRID_POINTS {
        bail!(
            "config {name}: {} grid points × {} seeds is more than {MAX_GRID_POINTS} runs",
            points.len(),
            seeds.len()
        );
    }
    for point in points {
        for &seed in &seeds {
            let mut p = point.clone();
            // `expand` maps a mapping to mappings, and the root is a mapping (checked above)
            let Some(obj) = p.as_object_mut() else {
                bail!("config {name}: a grid point is not a mapping");
            };
            obj.insert("seed".into(), Value::from(seed));
            obj.insert("name".into(), Value::from(name));
            fill_method_training_defaults(obj)?;
            let mut run: RunConfig =
                serde_json::from_value(p).map_err(|e| anyhow::anyhow!("config {name}: {e}"))?;
            if !run.data.is_simulated() {
                let p = PathBuf::from(&run.data.path);
                if p.is_relative() && !p.exists() && base.join(&p).exists() {
                    run.data.path = base.join(p).display().to_string();
                }
            }
            if let Some(gmt) = &run.model.gene_programs {
                let p = PathBuf::from(gmt);
                if p.is_relative() && !p.exists() && base.join(&p).exists() {
                    run.model.gene_programs = Some(base.join(p).display().to_string());
                }
            }
            run.validate()
                .with_context(|| format!("config {name}, run {}", run.id()))?;
            runs.push(run);
        }
    }
    add_baselines(&mut runs, &baselines)?;
    Ok(Grid {
        name: name.to_string(),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid without the default baselines, unless the YAML names its own (the expansion
    /// tests count the grid's own runs).
    fn grid(yaml: &str, overrides: &[&str]) -> Result<Grid> {
        let yaml = if yaml.contains("baselines") {
            yaml.to_string()
        } else {
            format!("baselines: []\n{yaml}")
        };
        grid_with_baselines(&yaml, overrides)
    }

    fn grid_with_baselines(yaml: &str, overrides: &[&str]) -> Result<Grid> {
        let mut v = parse_yaml(yaml, Path::new("t.yaml"))?;
        check_keys(&mut v, "")?;
        apply_overrides(
            &mut v,
            &overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        grid_from_value(v, "t", Path::new("."))
    }

    #[test]
    fn lists_expand_into_a_grid_and_seeds_multiply() {
        let g = grid(
            "model: {method: [simclr, vicreg], hidden_dim: 32}\naugmentation: [clear, mask_only]\nseeds: [1, 2]\n",
            &[],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 8);
        let ids: std::collections::HashSet<_> = g.runs.iter().map(RunConfig::id).collect();
        assert_eq!(ids.len(), 8, "ids are unique");
        assert!(g.runs.iter().all(|r| r.model.hidden_dim == 32));
    }

    #[test]
    fn batch_correction_grids_get_one_pca_baseline_per_dataset_and_width() {
        let g = grid_with_baselines(
            "model: {method: [simclr, vicreg], hidden_dim: [32, 64]}\nseeds: [1, 2]\n",
            &[],
        )
        .unwrap();
        let pca: Vec<_> = g.runs.iter().filter(|r| r.model.method == "pca").collect();
        assert_eq!(g.runs.len(), 8 + 2, "{:?}", pca);
        let mut widths: Vec<_> = pca.iter().map(|r| r.model.hidden_dim).collect();
        widths.sort();
        assert_eq!(widths, [32, 64]);
        assert!(
            pca.iter()
                .all(|r| r.seed == 1 && r.augmentation.label() == "none")
        );
        // a grid that has its own PCA run, or says `baselines: []`, gets none added
        let own = grid_with_baselines("model: {method: [simclr, pca]}\n", &[]).unwrap();
        assert_eq!(own.runs.len(), 2);
        let none = grid_with_baselines("baselines: []\nmodel: {method: simclr}\n", &[]).unwrap();
        assert_eq!(none.runs.len(), 1);
        // annotation-only grids have no scIB table, so no baseline either
        let q = grid_with_baselines(
            "data: {holdout_batches: [b0]}\ntasks: {batch_correction: false, annotation: true}\n",
            &[],
        )
        .unwrap();
        assert_eq!(q.runs.len(), 1);
        let e = grid_with_baselines("baselines: [pcaa]\n", &[]).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown method \"pcaa\""),
            "{e:#}"
        );
    }

    #[test]
    fn overrides_set_and_sweep() {
        let g = grid(
            "model: {method: simclr}\n",
            &["model.hidden_dim=128", "model.method=simclr,byol"],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 2);
        assert!(g.runs.iter().all(|r| r.model.hidden_dim == 128));
        assert_eq!(g.runs[1].model.method, "byol");
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let e = grid("model: {hiden_dim: 3}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.hiden_dim") && e.contains("model.hidden_dim"),
            "{e}"
        );
        let e = grid("trainig: {epochs: 3}\n", &[]).unwrap_err().to_string();
        assert!(e.contains("training"), "{e}");
        let e = grid("model: {method: simclr}\n", &["model.hiddendim=3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.hidden_dim"), "{e}");
        // the whole chain ({:#}): the unknown name and the suggestion
        let e = format!("{:#}", grid("model: {method: simclrr}\n", &[]).unwrap_err());
        assert!(e.contains("simclrr") && e.contains("simclr"), "{e}");
    }

    #[test]
    fn a_grid_of_more_than_the_limit_is_refused_before_it_is_built() {
        // 50^4 = 6.25 million points: refused at the key where the product passes the limit
        let fifty: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
        let list = format!("[{}]", fifty.join(", "));
        let yaml = format!(
            "model: {{hidden_dim: {list}, dropout: {list}}}\ntraining: {{epochs: {list}, lr: {list}}}\n"
        );
        let e = format!("{:#}", grid(&yaml, &[]).unwrap_err());
        assert!(e.contains("limit is 100000"), "{e}");
        // 50 points × 40 seeds is a grid; 2,500 points × 41 seeds (102,500 runs) is not
        let seeds = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        let ok = format!("model: {{hidden_dim: {list}}}\nseeds: [{}]\n", seeds(40));
        assert_eq!(grid(&ok, &[]).unwrap().runs.len(), 2000);
        let too_many = format!(
            "model: {{hidden_dim: {list}}}\ntraining: {{epochs: {list}}}\nseeds: [{}]\n",
            seeds(41)
        );
        let e = format!("{:#}", grid(&too_many, &[]).unwrap_err());
        assert!(e.contains("41 seeds"), "{e}");
    }

    #[test]
    fn holdout_lists_are_values_and_lists_of_lists_sweep() {
        let g = grid(
            "data: {holdout_batches: [[batch_1], [batch_2]]}\ntasks: {annotation: true}\n",
            &[],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 2);
        assert_eq!(g.runs[1].data.holdout_batches, vec!["batch_2".to_string()]);
        let g = grid(
            "data: {holdout_batches: [batch_1, batch_2]}\ntasks: {annotation: true}\n",
            &[],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 1);
    }
}
