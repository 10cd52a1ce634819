//! scButterfly-B (Cao et al. 2024), the RNA ↔ ADT variant (`BioX-NKU/scButterfly@eb31e04`,
//! `train_model_cite.py` with the CITE-seq tutorial's settings; methods.md §5.8): a dual VAE
//! whose two encoders meet in a shared-latent translator, aligned by two adversarial
//! discriminators. The networks are in [`super::scbutterfly_network`], the training loop in
//! `scbutterfly_training.rs`.
//!
//! Training (a custom `fit`: the generic one-optimiser trainer cannot express it):
//!
//! 1. RNA pre-training (≤ `rna_pretrain_epochs`, 100): MSE(D_r(T_r(E_r x_r)), x_r) + w_r(e)·KL_r,
//!    w_r(e) = (20/G)·min(e/50, 1);
//! 2. ADT pre-training (≤ `adt_pretrain_epochs`, 100), the same with w_a = 1/150;
//! 3. integrative training (≤ `integrative_epochs`, else `training.epochs`, 200): per step a
//!    discriminator step (soft labels, BCE, SGD lr 0.005), then a generator step
//!    L_g = (w_r + w_a)(e)·(KL_r + KL_a) + 1·[MSE(R→R) + MSE(A→R)] + 2·[MSE(R→A) + MSE(A→A)],
//!    minus 1·L_d when L_d < 1.35 (L_d from a fresh discriminator pass, as the reference).
//!
//! Batches of 64 (`training.batch_size`), shuffled every epoch, the last one dropped only when
//! it would hold one cell; Adam (lr `training.lr` = 1e-3, ε 1e-8) for the encoders, decoders and
//! translators — one Adam state per parameter, which is what the reference's separate Adam
//! optimisers with one shared rate amount to —, SGD for the discriminators. Every phase
//! validates on held-out cells after each epoch (pre-training: the eval-mode reconstruction
//! MSE; integrative: the weighted reconstruction with sampled z, in eval mode, as the
//! reference) and stops after `patience` (50) epochs without improvement; the best state is
//! then reloaded for that phase's modules, but at the epoch cap the last weights stay
//! (the reference's `EarlyStopping`). Epochs are numbered consecutively over the three
//! phases in [`TrainEvent`]s and the history.
//!
//! Divergences and the project's choices:
//! * **Validation split**: the reference splits a dataset 64/16/20 % (train/validation/test);
//!   the benchmark's training cells are split `1 − validation_share` / `validation_share`
//!   (0.2 = 16/80) by a seeded permutation.
//! * **ADT input**: the tutorial feeds a per-cell CLR over non-zero entries only; scssl gives
//!   the protein block as the caller prepared it (scssl-bench: `data.protein_transform`,
//!   default `clr` = ln(1 + x/g) over all entries, Seurat's formula; `as_is` for
//!   pre-processed files). The non-zero CLR is not implemented.
//! * **Embedding** (how the benchmark embedded scButterfly is unknown): per modality
//!   `[μ_r, μ_a]`, the translator means of each side, in eval mode; joint = their mean. A
//!   query with RNA only (one input matrix) gets per_modality = `[μ_r]` and joint = μ_r.
//!   `model.hidden_dim` is not used: the embedding width is `embed_dim` (128).
//! * **Prediction**: [`Method::predict_modality`] is R→ADT = D_a(to_a(μ_r(E_r x_r))) in eval
//!   mode, values below `prediction_floor` (1e-4) set to 0 as the reference's `tensor2adata`
//!   does (negative CLR predictions become 0; `prediction_floor: null` keeps them).
//! * **Randomness**: initialisation, split, shuffles, dropout masks, ε and the soft labels
//!   come from ChaCha8 streams keyed by `training.seed`, not PyTorch's/NumPy's generators.
//! * CPU only: a CUDA device is refused with an error.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

pub use super::scbutterfly_network::{
    Dims, Discriminators, Generator, LossWeights, ScbutterflyNetwork, Side, SideNoise,
    discriminator_loss, generator_loss, generator_terms, mix, predict_adt, pretrain_terms,
    soft_label,
};
use super::scbutterfly_training::train_phases;
pub use super::scbutterfly_training::{EarlyStop, steps_per_epoch, warmed};
use super::{BatchNeeds, BatchSource, EmbedInputs, Fitted, Method};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{NamedTensor, Pass, tensor_values};
#[cfg(test)]
use crate::methods::MethodRef;
use crate::model::{EMBED_CHUNK, EmbeddingOutput, Embeddings, check_inputs, rows_tensor};
use crate::runtime::{ComputeDevice, CpuBackend, CpuTrainBackend};
use crate::train::TrainEvent;

/// scButterfly-B's settings (defaults: the CITE-seq tutorial's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScbutterflyParams {
    /// Hidden width of the RNA encoder and decoder (256).
    pub rna_hidden: usize,
    /// Hidden width of the ADT encoder and decoder (128).
    pub adt_hidden: usize,
    /// Encoder output width, the translator's input (128).
    pub encoder_dim: usize,
    /// Translator latent width, the embedding's (128).
    pub embed_dim: usize,
    /// Dropout between layers (0.1).
    pub dropout: f64,
    /// Input dropout ("noise") of the RNA encoder (0.5).
    pub rna_noise: f64,
    /// Input dropout of the ADT encoder (0).
    pub adt_noise: f64,
    /// Epoch cap of RNA pre-training (100; 0 skips it).
    pub rna_pretrain_epochs: usize,
    /// Epoch cap of ADT pre-training (100; 0 skips it).
    pub adt_pretrain_epochs: usize,
    /// Epoch cap of integrative training; `None`: `training.epochs` (scButterfly's default
    /// training has 200).
    pub integrative_epochs: Option<usize>,
    /// Epochs without a better validation loss before a phase stops (50).
    pub patience: usize,
    /// Share of the training cells held out for validation (0.2 = the reference's 16 % of
    /// 80 %); 0: no validation and no early stopping.
    pub validation_share: f64,
    /// KL weight of the RNA side; `None`: 20/G (the tutorial).
    pub rna_kl_weight: Option<f64>,
    /// KL weight of the ADT side (1/150 in the CITE-seq tutorial).
    pub adt_kl_weight: f64,
    /// Epochs of linear KL warm-up in every phase (50).
    pub kl_warmup_epochs: usize,
    /// Weight of the RNA reconstructions R→R and A→R (1).
    pub rna_loss_weight: f64,
    /// Weight of the ADT reconstructions R→A and A→A (2).
    pub adt_loss_weight: f64,
    /// Weight of the discriminator loss subtracted from the generator's (1).
    pub discriminator_weight: f64,
    /// The generator subtracts the discriminator loss only when it is below this (1.35).
    pub discriminator_gate: f64,
    /// SGD learning rate of the discriminators (0.005).
    pub discriminator_lr: f64,
    /// Predicted ADT values below this are set to 0 (1e-4, the reference's `tensor2adata`);
    /// `None`: raw predictions.
    pub prediction_floor: Option<f64>,
}

impl Default for ScbutterflyParams {
    fn default() -> Self {
        ScbutterflyParams {
            rna_hidden: 256,
            adt_hidden: 128,
            encoder_dim: 128,
            embed_dim: 128,
            dropout: 0.1,
            rna_noise: 0.5,
            adt_noise: 0.0,
            rna_pretrain_epochs: 100,
            adt_pretrain_epochs: 100,
            integrative_epochs: None,
            patience: 50,
            validation_share: 0.2,
            rna_kl_weight: None,
            adt_kl_weight: 1.0 / 150.0,
            kl_warmup_epochs: 50,
            rna_loss_weight: 1.0,
            adt_loss_weight: 2.0,
            discriminator_weight: 1.0,
            discriminator_gate: 1.35,
            discriminator_lr: 0.005,
            prediction_floor: Some(1e-4),
        }
    }
}

impl ScbutterflyParams {
    /// The network's widths and rates for `config`'s input widths.
    pub fn dims(&self, config: &ModelConfig) -> Dims {
        Dims {
            genes: config.input_dims.first().copied().unwrap_or(0),
            proteins: config.input_dims.get(1).copied().unwrap_or(0),
            rna_hidden: self.rna_hidden,
            adt_hidden: self.adt_hidden,
            encoder_dim: self.encoder_dim,
            embed_dim: self.embed_dim,
            dropout: self.dropout,
            rna_noise: self.rna_noise,
            adt_noise: self.adt_noise,
        }
    }

    /// The RNA KL weight in effect (20/G unless set).
    pub fn rna_kl(&self, genes: usize) -> f64 {
        self.rna_kl_weight.unwrap_or(20.0 / genes.max(1) as f64)
    }
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scbutterfly;

impl Scbutterfly {
    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ScbutterflyNetwork<CpuBackend>> {
        let dims = config.scbutterfly.dims(config);
        let mut net = ScbutterflyNetwork::<CpuBackend>::new(&dims, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl Method for Scbutterfly {
    fn name(&self) -> &'static str {
        "scbutterfly"
    }

    fn summary(&self) -> &'static str {
        "scButterfly-B: dual VAE with a shared translator and adversarial discriminators (RNA ↔ ADT)"
    }

    /// The reference's `train()`: Adam lr 1e-3 without weight decay, batches of 64, a
    /// constant rate, 200 integrative epochs (the pre-training caps are in the parameters).
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 200,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            optimizer: OptimizerKind::Adam,
            schedule: LrSchedule::Constant,
            ..TrainConfig::default()
        }
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            features: true,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.scbutterfly;
        if config.input_dims.len() != 2 {
            return Err(invalid(
                "data.protein_key",
                "scButterfly translates between RNA and protein: it needs RNA + protein (give the protein block, data.protein_key / --protein-key)",
            ));
        }
        for (name, v) in [
            ("model.scbutterfly.rna_hidden", p.rna_hidden),
            ("model.scbutterfly.adt_hidden", p.adt_hidden),
            ("model.scbutterfly.encoder_dim", p.encoder_dim),
            ("model.scbutterfly.embed_dim", p.embed_dim),
            ("model.scbutterfly.patience", p.patience),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if p.integrative_epochs == Some(0) {
            return Err(invalid(
                "model.scbutterfly.integrative_epochs",
                "must be at least 1",
            ));
        }
        for (name, v) in [
            ("model.scbutterfly.dropout", p.dropout),
            ("model.scbutterfly.rna_noise", p.rna_noise),
            ("model.scbutterfly.adt_noise", p.adt_noise),
            ("model.scbutterfly.validation_share", p.validation_share),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(invalid(name, "expected a value in [0, 1)"));
            }
        }
        for (name, v) in [
            (
                "model.scbutterfly.rna_kl_weight",
                p.rna_kl_weight.unwrap_or(0.0),
            ),
            ("model.scbutterfly.adt_kl_weight", p.adt_kl_weight),
            ("model.scbutterfly.rna_loss_weight", p.rna_loss_weight),
            ("model.scbutterfly.adt_loss_weight", p.adt_loss_weight),
            (
                "model.scbutterfly.discriminator_weight",
                p.discriminator_weight,
            ),
            (
                "model.scbutterfly.prediction_floor",
                p.prediction_floor.unwrap_or(0.0).abs(),
            ),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(name, "expected a non-negative number"));
            }
        }
        if !p.discriminator_gate.is_finite() {
            return Err(invalid(
                "model.scbutterfly.discriminator_gate",
                "expected a finite number",
            ));
        }
        if !(p.discriminator_lr > 0.0 && p.discriminator_lr.is_finite()) {
            return Err(invalid(
                "model.scbutterfly.discriminator_lr",
                "expected a positive number",
            ));
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
        config.validate()?;
        training.validate(n_cells)?;
        if training.optimizer != OptimizerKind::Adam {
            return Err(invalid(
                "training.optimizer",
                "scButterfly trains its networks with Adam",
            ));
        }
        if training.schedule != LrSchedule::Constant {
            return Err(invalid(
                "training.schedule",
                "scButterfly trains with constant learning rates (schedule: constant)",
            ));
        }
        if training.gradient_clip.is_some() {
            return Err(invalid(
                "training.gradient_clip",
                "scButterfly does not clip gradients",
            ));
        }
        match training.device {
            ComputeDevice::Cpu => {
                let (net, history) = train_phases::<CpuTrainBackend>(
                    config,
                    training,
                    n_cells,
                    &Default::default(),
                    source,
                    progress,
                )?;
                Ok(Fitted {
                    tensors: net.export(),
                    history,
                })
            }
            ComputeDevice::Cuda(i) => Err(ModelError::Device(format!(
                "cuda:{i}: scButterfly trains on the CPU only (training.device: cpu)"
            ))),
        }
    }

    /// Per modality the translator means `[μ_r, μ_a]` in eval mode, joint = their mean; RNA
    /// alone (one matrix) gives `[μ_r]` and joint = μ_r.
    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let dims = &config.input_dims;
        let k = inputs.features.len().clamp(1, 2);
        let n = check_inputs(&dims[..k.min(dims.len())], &inputs.features)?;
        let mut net = Self::cpu_network(config, tensors)?;
        let g = &mut net.generator;
        let mut out = Embeddings::builder(k, n);
        let mut start = 0;
        while start < n {
            let end = (start + EMBED_CHUNK).min(n);
            let h = g
                .rna_encoder
                .forward(rows_tensor(inputs.features[0], start..end), Pass::EVAL);
            let (mu_r, _) = g.translator.encode(h, Side::Rna, Pass::EVAL);
            let width = mu_r.dims()[1];
            let joint = if k == 2 {
                let h = g
                    .adt_encoder
                    .forward(rows_tensor(inputs.features[1], start..end), Pass::EVAL);
                let (mu_a, _) = g.translator.encode(h, Side::Adt, Pass::EVAL);
                let joint = mu_r.clone().add(mu_a.clone()).div_scalar(2.0);
                out.push_modality(1, width, tensor_values(mu_a));
                joint
            } else {
                mu_r.clone()
            };
            out.push_modality(0, width, tensor_values(mu_r));
            out.push_joint(width, tensor_values(joint));
            start = end;
        }
        out.finish()
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }

    /// R→ADT = D_a(to_a(μ_r(E_r x_r))) in eval mode, values below `prediction_floor` set to 0.
    fn predict_modality(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        rna: ArrayView2<'_, f32>,
    ) -> Result<Option<Array2<f32>>> {
        let n = check_inputs(&config.input_dims[..config.input_dims.len().min(1)], &[rna])?;
        let np = config.input_dims.get(1).copied().unwrap_or(0);
        let mut net = Self::cpu_network(config, tensors)?;
        let floor = config.scbutterfly.prediction_floor;
        let mut values = Vec::with_capacity(n * np);
        let mut start = 0;
        while start < n {
            let end = (start + EMBED_CHUNK).min(n);
            let pred = predict_adt(&mut net.generator, rows_tensor(rna, start..end));
            values.extend(tensor_values(pred));
            start = end;
        }
        if let Some(f) = floor {
            let f = f as f32;
            values.iter_mut().filter(|v| **v < f).for_each(|v| *v = 0.0);
        }
        Array2::from_shape_vec((n, np), values)
            .map(Some)
            .map_err(|e| ModelError::Inconsistent(format!("prediction rows × proteins: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_labels_follow_the_reference_bins() {
        assert_eq!(soft_label(0.95), 0.95);
        assert_eq!(soft_label(0.8), 0.8);
        assert_eq!(soft_label(0.6), 0.8);
        assert_eq!(soft_label(0.5), 0.2);
        assert_eq!(soft_label(0.3), 0.2);
        assert_eq!(soft_label(0.2), 0.2);
        assert_eq!(soft_label(0.1), 0.1);
    }

    #[test]
    fn the_last_batch_is_dropped_only_with_one_cell() {
        assert_eq!(steps_per_epoch(128, 64), 2);
        assert_eq!(steps_per_epoch(129, 64), 2);
        assert_eq!(steps_per_epoch(130, 64), 3);
        assert_eq!(steps_per_epoch(30, 64), 1);
    }

    #[test]
    fn kl_warm_up_is_linear_over_the_warm_up_epochs() {
        assert_eq!(warmed(0.5, 0, 50), 0.0);
        assert!((warmed(0.5, 25, 50) - 0.25).abs() < 1e-12);
        assert_eq!(warmed(0.5, 50, 50), 0.5);
        assert_eq!(warmed(0.5, 3, 0), 0.5);
    }

    #[test]
    fn early_stopping_counts_equal_losses_as_improvements() {
        let mut s = EarlyStop::default();
        assert_eq!(s.update(3.0, 2), (true, false));
        assert_eq!(s.update(3.5, 2), (false, false));
        assert_eq!(s.update(3.0, 2), (true, false)); // equal: saved, counter reset
        assert_eq!(s.update(3.1, 2), (false, false));
        assert_eq!(s.update(3.2, 2), (false, true));
    }

    #[test]
    fn rna_only_is_refused_naming_the_protein_key() {
        let mut c = ModelConfig::new(MethodRef::builtin("scbutterfly"), 20);
        let e = Scbutterfly.validate(&c).unwrap_err().to_string();
        assert!(e.contains("data.protein_key"), "{e}");
        c.input_dims.push(5);
        assert!(Scbutterfly.validate(&c).is_ok());
    }
}
