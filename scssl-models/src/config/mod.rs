//! Model and training configuration (serde, validated with parameter-named errors): the
//! model's settings here, the training run's in [`TrainConfig`] (with [`LrSchedule`] and
//! [`OptimizerKind`]).

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::methods::MethodRef;

/// How the per-modality outputs of a multimodal model are combined (methods.md §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Integration {
    /// Sum of the modality outputs.
    Add,
    /// Mean of the modality outputs.
    Mean,
    /// Concatenation (twice the width).
    #[default]
    Concat,
    /// No SSL loss: a CLIP loss aligns the modalities; the embedding is the concatenation.
    Clip,
}

impl Integration {
    /// Parses `add`, `mean`, `concat` or `clip`.
    pub fn parse(name: &str) -> Result<Integration> {
        match name.to_ascii_lowercase().as_str() {
            "add" => Ok(Integration::Add),
            "mean" => Ok(Integration::Mean),
            "concat" => Ok(Integration::Concat),
            "clip" => Ok(Integration::Clip),
            _ => Err(invalid(
                "model.integrate",
                format!("unknown integration {name:?}; expected add, mean, concat or clip"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Integration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Integration::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// VICReg loss weights λ (invariance), μ (variance), ν (covariance), as in effect
/// ([`ModelConfig::vicreg`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VicRegWeights {
    /// Invariance weight λ (reference: `reg_lambda` = 5).
    pub invariance: f64,
    /// Variance weight μ (the reference code ties it to `reg_lambda`, DIV-15; 5).
    pub variance: f64,
    /// Covariance weight ν (1).
    pub covariance: f64,
}

impl Default for VicRegWeights {
    fn default() -> Self {
        VicRegWeights {
            invariance: 5.0,
            variance: 5.0,
            covariance: 1.0,
        }
    }
}

/// scVI's count likelihood (scvi-tools `gene_likelihood`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GeneLikelihood {
    /// Negative binomial (the benchmark's choice).
    Nb,
    /// Zero-inflated negative binomial (scvi-tools' default).
    #[default]
    Zinb,
    /// Poisson.
    Poisson,
}

/// scVI's dispersion θ (scvi-tools `dispersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Dispersion {
    /// One θ per gene.
    #[default]
    #[serde(rename = "gene")]
    Gene,
    /// One θ per gene and batch.
    #[serde(rename = "gene-batch", alias = "gene_batch")]
    GeneBatch,
}

/// scVI's settings (scvi-tools 1.1 `SCVI(...)` arguments and its `train()` rules).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScviParams {
    /// Latent (embedding) width; `None`: [`ModelConfig::hidden_dim`] (scvi-tools 10; the
    /// benchmark 30).
    pub n_latent: Option<usize>,
    /// Hidden layers of the encoder and of the decoder (scvi-tools 1; the benchmark 8).
    pub n_layers: usize,
    /// Width of the hidden layers (128).
    pub n_hidden: usize,
    /// Count likelihood (scvi-tools ZINB; the benchmark NB).
    pub gene_likelihood: GeneLikelihood,
    /// Dispersion per gene or per gene and batch.
    pub dispersion: Dispersion,
    /// Dropout in the encoder's layers (0.1).
    pub dropout_rate: f64,
    /// Epochs over which the KL weight rises linearly from 0 to 1 (400).
    pub kl_warmup_epochs: usize,
    /// Share of cells trained on; the rest are held out as scvi-tools' validation set (0.9).
    pub train_size: f64,
    /// Cap the epochs with scvi-tools' default rule min(400, round(20000 / cells · 400)).
    pub epoch_rule: bool,
}

impl Default for ScviParams {
    fn default() -> Self {
        ScviParams {
            n_latent: None,
            n_layers: 1,
            n_hidden: 128,
            gene_likelihood: GeneLikelihood::Zinb,
            dispersion: Dispersion::Gene,
            dropout_rate: 0.1,
            kl_warmup_epochs: 400,
            train_size: 0.9,
            epoch_rule: true,
        }
    }
}

impl ScviParams {
    /// The latent width in effect for a model of backbone width `hidden_dim`.
    pub fn latent(&self, hidden_dim: usize) -> usize {
        self.n_latent.unwrap_or(hidden_dim)
    }
}

/// totalVI's settings (scvi-tools 1.1 `TOTALVI(...)` and `train()` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotalviParams {
    /// Latent (embedding) width (20).
    pub n_latent: usize,
    /// Width of every hidden layer (256).
    pub n_hidden: usize,
    /// Hidden layers of the encoder (2).
    pub n_layers_encoder: usize,
    /// Hidden layers of each decoder (1).
    pub n_layers_decoder: usize,
    /// Dropout of the encoder and decoder layers (0.2).
    pub dropout_rate: f64,
    /// Gene likelihood: `nb` (totalVI's default) or `zinb`.
    pub gene_likelihood: GeneLikelihood,
    /// Gene dispersion per gene or per gene and batch.
    pub gene_dispersion: Dispersion,
    /// Empirical protein-background prior (per-batch GMMs); `None`: when there are more than
    /// 10 proteins, as scvi-tools decides.
    pub empirical_background_prior: Option<bool>,
    /// Batch one-hot concatenated to the encoder's input (`encode_covariates`, true).
    pub encode_covariates: bool,
    /// KL warm-up in steps; `None`: int(0.75 · cells), as `TOTALVI.train()`.
    pub n_steps_kl_warmup: Option<usize>,
    /// Share of cells trained on; the rest are the validation set (0.9).
    pub train_size: f64,
    /// Stop when the validation ELBO has not improved for 45 epochs (`early_stopping`).
    pub early_stopping: bool,
    /// Multiply the learning rate by 0.6 after 30 epochs without improvement.
    pub reduce_lr_on_plateau: bool,
    /// Cap the epochs with scvi-tools' rule min(400, round(20000 / cells · 400)).
    pub epoch_rule: bool,
}

impl Default for TotalviParams {
    fn default() -> Self {
        TotalviParams {
            n_latent: 20,
            n_hidden: 256,
            n_layers_encoder: 2,
            n_layers_decoder: 1,
            dropout_rate: 0.2,
            gene_likelihood: GeneLikelihood::Nb,
            gene_dispersion: Dispersion::Gene,
            empirical_background_prior: None,
            encode_covariates: true,
            n_steps_kl_warmup: None,
            train_size: 0.9,
            early_stopping: true,
            reduce_lr_on_plateau: true,
            epoch_rule: true,
        }
    }
}

/// What the masked autoencoder hides from its encoder (Richter et al. 2024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Masking {
    /// Each entry independently, with probability `mask_rate`.
    #[default]
    #[serde(rename = "random")]
    Random,
    /// ⌊programmes · `mask_rate`⌋ whole gene programmes, the same for every cell of a
    /// mini-batch (programmes from `model.gene_programs`, a GMT file).
    #[serde(
        rename = "gene_program",
        alias = "gene_programs",
        alias = "gene-program",
        alias = "gene-programs"
    )]
    GeneProgram,
}

/// The masked autoencoder's output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MaeOutput {
    /// No activation: the decoder can reconstruct any log-normalised value (the intent).
    #[default]
    Linear,
    /// The reference's `nn.Sigmoid`: outputs in (0, 1), below most expressed log1p values.
    Sigmoid,
}

/// The masked autoencoder's settings (theislab/ssl_in_scg `train.py` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaeParams {
    /// Masking strategy (`masking_strategy`).
    #[serde(alias = "masking_strategy")]
    pub masking: Masking,
    /// Share of entries (random) or of gene programmes masked (`mask_rate`, 0.5).
    #[serde(alias = "masking_rate")]
    pub mask_rate: f64,
    /// Hidden widths of the encoder before its `hidden_dim`-wide output (512, 512, 256, 256).
    pub hidden_units: Vec<usize>,
    /// Dropout after every encoder and decoder layer (0.1).
    pub dropout_rate: f64,
    /// A decoder mirroring the encoder (`--decoder`) instead of one linear layer.
    #[serde(alias = "decoder")]
    pub deep_decoder: bool,
    /// The decoder's output activation: linear (default), or the reference's sigmoid
    /// (divergence DIV-MAE-1 in the crate docs: a sigmoid cannot output log1p values above 1).
    pub output_activation: MaeOutput,
}

impl Default for MaeParams {
    fn default() -> Self {
        MaeParams {
            masking: Masking::Random,
            mask_rate: 0.5,
            hidden_units: vec![512, 512, 256, 256],
            dropout_rate: 0.1,
            deep_decoder: false,
            output_activation: MaeOutput::Linear,
        }
    }
}

/// How DSBN's second BatchNorm (after the domain-specific first one) is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DsbnSecondNorm {
    /// One shared module run separately on each domain's rows (the `dsbn` branch, DIV-31):
    /// per-domain batch statistics, shared γ/β, running statistics updated once per domain.
    #[default]
    #[serde(rename = "shared-per-subset", alias = "shared_per_subset")]
    SharedPerSubset,
    /// One shared module on the whole mini-batch (a plain BatchNorm).
    #[serde(rename = "shared-mixed", alias = "shared_mixed")]
    SharedMixed,
}

/// Architecture and loss settings of one SSL model: the `model:` section of a config file and
/// of a saved model's `model.json`, in the reference's names (`integrate`, `reg_lambda`, …).
/// This is the one declaration of a model's settings: the YAML schema, `key=value` overrides
/// and `scssl train`'s flags are read off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The method (any name of the registry, [`crate::methods::REGISTRY`]).
    pub method: MethodRef,
    /// Feature count of each modality's input (RNA first, then protein). One entry = unimodal.
    /// Filled in from the data, so it is no key of a config file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_dims: Vec<usize>,
    /// Backbone output width `h`, the embedding width (reference 64).
    pub hidden_dim: usize,
    /// Head-width factor `f`; `None` = the method's reference value.
    pub factor: Option<usize>,
    /// Dropout after the backbone (reference 0).
    pub dropout: f64,
    /// NT-Xent temperature (SimCLR, MoCo, NNCLR; reference 0.5).
    pub temperature: f64,
    /// Memory-bank size K (MoCo, NNCLR; reference 2048).
    pub memory_bank_size: usize,
    /// Base momentum of the EMA target (MoCo, BYOL; 0.996), cosine-scheduled to 1.
    pub momentum: f64,
    /// Integration of the modalities (multimodal only; the reference's `integrate`).
    #[serde(rename = "integrate", alias = "integration")]
    pub integration: Integration,
    /// Embed with the projector output instead of the backbone's (the reference's
    /// `predict_projection`).
    pub predict_projection: bool,
    /// VICReg invariance weight λ (5).
    pub reg_lambda: f64,
    /// VICReg variance weight μ; `None`: = `reg_lambda`, as the reference code ties them
    /// (DIV-15).
    pub reg_alpha: Option<f64>,
    /// VICReg covariance weight ν (1).
    pub reg_beta: f64,
    /// Barlow Twins off-diagonal weight (5e-3).
    pub barlow_lambda: f64,
    /// Initial CLIP temperature τ (the logit scale starts at 1/τ and is learned; 0.07).
    pub clip_temperature: f64,
    /// Number of batches (batch covariates of scVI, totalVI and DSBN); filled in from the
    /// data, so it is no key of a config file.
    #[serde(skip_serializing_if = "is_zero")]
    pub n_batches: usize,
    /// Number of annotated cell types (for methods whose size depends on it, e.g. a cluster
    /// count); filled in from the data's labels when it has them, so it is no key of a config
    /// file.
    /// Number of annotated cell types (SCDC's cluster count when `scdc.n_clusters` is 0);
    /// filled in from the data's labels when it has them, so it is no key of a config file.
    #[serde(skip_serializing_if = "is_zero")]
    pub n_cell_types: usize,
    /// scVI's settings (the latent width is `n_latent`, else `hidden_dim`).
    pub scvi: ScviParams,
    /// totalVI's settings.
    pub totalvi: TotalviParams,
    /// The masked autoencoder's settings.
    pub mae: MaeParams,
    /// scCLIP's settings.
    #[serde(default)]
    pub scclip: crate::methods::scclip::ScclipParams,
    /// Concerto's settings.
    #[serde(default)]
    pub concerto: crate::methods::concerto::ConcertoParams,
    /// scButterfly-B's settings.
    #[serde(default)]
    pub scbutterfly: crate::methods::scbutterfly::ScbutterflyParams,
    /// scTEL's settings.
    #[serde(default)]
    pub sctel: crate::methods::sctel::SctelParams,
    /// GMT file of gene programmes for the masked autoencoder's `masking: gene_program`
    /// (a config file's relative path is resolved against the file's directory).
    pub gene_programs: Option<String>,
    /// The programmes of `gene_programs` mapped onto the input genes, resolved by the caller
    /// ([`crate::features::resolve_gene_programs`]; not saved: only training uses them).
    #[serde(skip)]
    pub gene_program_sets: Option<scssl_data::gmt::GenePrograms>,
    /// totalVI's empirical protein-background prior, computed by its `fit` from the training
    /// data (not saved: the trained prior parameters are in the checkpoint).
    #[serde(skip)]
    pub background_prior: Option<crate::methods::background_prior::BackgroundPrior>,
    /// Domain-specific BatchNorm (methods.md §5.11): the backbone's first BatchNorm is one
    /// module per batch (two-view methods, RNA only).
    pub dsbn: bool,
    /// How DSBN applies the backbone's second BatchNorm.
    pub dsbn_bn2: DsbnSecondNorm,
    /// CLAIRE's settings.
    pub claire: crate::methods::claire::ClaireParams,
    /// CLEAR's settings.
    pub clear: crate::methods::clear::ClearParams,
    /// SCDC's settings (the project's interpretation; feature `scdc`).
    #[cfg(feature = "scdc")]
    pub scdc: crate::methods::scdc::ScdcParams,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            method: MethodRef::builtin("simclr"),
            input_dims: Vec::new(),
            hidden_dim: 64,
            factor: None,
            dropout: 0.0,
            temperature: 0.5,
            memory_bank_size: 2048,
            momentum: 0.996,
            integration: Integration::Concat,
            predict_projection: false,
            reg_lambda: 5.0,
            reg_alpha: None,
            reg_beta: 1.0,
            barlow_lambda: 5e-3,
            clip_temperature: 0.07,
            n_batches: 0,
            scvi: ScviParams::default(),
            totalvi: TotalviParams::default(),
            mae: MaeParams::default(),
            scclip: Default::default(),
            concerto: Default::default(),
            scbutterfly: Default::default(),
            sctel: crate::methods::sctel::SctelParams::default(),
            gene_programs: None,
            gene_program_sets: None,
            background_prior: None,
            dsbn: false,
            dsbn_bn2: DsbnSecondNorm::SharedPerSubset,
            claire: Default::default(),
            clear: Default::default(),
            n_cell_types: 0,
            #[cfg(feature = "scdc")]
            scdc: Default::default(),
        }
    }
}

impl ModelConfig {
    /// A unimodal configuration with the reference's defaults.
    pub fn new(method: MethodRef, n_features: usize) -> ModelConfig {
        ModelConfig {
            method,
            input_dims: vec![n_features],
            ..ModelConfig::default()
        }
    }

    /// The head-width factor in effect.
    pub fn factor(&self) -> usize {
        self.factor.unwrap_or_else(|| self.method.default_factor())
    }

    /// Number of modalities.
    pub fn n_modalities(&self) -> usize {
        self.input_dims.len()
    }

    /// The VICReg weights in effect (μ = λ unless `reg_alpha` is given, DIV-15).
    pub fn vicreg(&self) -> VicRegWeights {
        VicRegWeights {
            invariance: self.reg_lambda,
            variance: self.reg_alpha.unwrap_or(self.reg_lambda),
            covariance: self.reg_beta,
        }
    }

    /// The embedding a trained model gives by default (`predict_projection`).
    pub fn embedding_output(&self) -> crate::EmbeddingOutput {
        if self.predict_projection {
            crate::EmbeddingOutput::Projection
        } else {
            crate::EmbeddingOutput::Backbone
        }
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.input_dims.is_empty() || self.input_dims.len() > 2 {
            return Err(invalid(
                "model.input_dims",
                format!(
                    "expected one (RNA) or two (RNA, protein) feature counts, got {}",
                    self.input_dims.len()
                ),
            ));
        }
        if let Some(i) = self.input_dims.iter().position(|&g| g == 0) {
            return Err(invalid(
                "model.input_dims",
                format!("modality {i} has no features"),
            ));
        }
        if self.hidden_dim == 0 {
            return Err(invalid("model.hidden_dim", "must be at least 1"));
        }
        if self.factor() == 0 {
            return Err(invalid("model.factor", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid("model.dropout", "expected a probability in [0, 1)"));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(invalid("model.temperature", "expected a positive number"));
        }
        if !(self.clip_temperature > 0.0 && self.clip_temperature.is_finite()) {
            return Err(invalid(
                "model.clip_temperature",
                "expected a positive number",
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(invalid("model.momentum", "expected a value in [0, 1]"));
        }
        for (name, v) in [
            ("model.reg_lambda", self.reg_lambda),
            ("model.reg_alpha", self.vicreg().variance),
            ("model.reg_beta", self.reg_beta),
            ("model.barlow_lambda", self.barlow_lambda),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(name, "expected a non-negative number"));
            }
        }
        self.method.validate(self)
    }
}

mod training;
pub use training::{LrSchedule, OptimizerKind, TrainConfig, momentum_at};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_is_the_reference_step_lr() {
        let s = LrSchedule::default();
        assert_eq!(s.lr(1e-4, 0, 100), 1e-4);
        assert!((s.lr(1e-4, 10, 100) - 1e-5).abs() < 1e-18);
        assert!((s.lr(1e-4, 25, 100) - 1e-6).abs() < 1e-18);
    }

    #[test]
    fn cosine_schedule_ends_at_min() {
        let s = LrSchedule::Cosine { min_lr: 1e-6 };
        assert_eq!(s.lr(1e-3, 0, 11), 1e-3);
        assert!((s.lr(1e-3, 10, 11) - 1e-6).abs() < 1e-15);
    }

    #[test]
    fn momentum_schedule_runs_from_base_to_one() {
        assert!((momentum_at(0.996, 0, 10) - 0.996).abs() < 1e-12);
        assert!((momentum_at(0.996, 9, 10) - 1.0).abs() < 1e-12);
        assert_eq!(momentum_at(0.996, 10, 10), 1.0);
    }

    #[test]
    fn method_names_parse() {
        for m in MethodRef::all() {
            assert_eq!(MethodRef::parse(m.name()).unwrap(), m);
        }
        assert_eq!(
            MethodRef::parse("Barlow_Twins").unwrap().name(),
            "barlowtwins"
        );
        let err = MethodRef::parse("simclrr").unwrap_err().to_string();
        assert!(
            err.contains("model.method") && err.contains("simclr"),
            "{err}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = ModelConfig::new(MethodRef::parse("simsiam").unwrap(), 10);
        c.hidden_dim = 3;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("model.factor"), "{err}");
        let t = TrainConfig {
            batch_size: 512,
            ..TrainConfig::default()
        };
        let err = t.validate(100).unwrap_err().to_string();
        assert!(err.contains("training.batch_size"), "{err}");
    }
}
