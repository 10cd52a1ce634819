//! scTEL (Sci. Rep. 2025, `142857cyy/scTEL@9f80d5a`, a fork of sciPENN; methods.md §5.9): a
//! Transformer encoder + LSTM-cell network that predicts protein (ADT) from RNA, trained
//! unsupervised on CITE-seq data; its embedding is the last LSTM hidden state h3.
//!
//! * Network ([`super::sctel_network`]): Input_TE (Linear(G, d) → BN → scalar PReLU → a
//!   sequence of d tokens of width d via Linear(1, d) → BN over the token axis → the same
//!   PReLU → Dropout → PyTorch `TransformerEncoderLayer` (post-norm, ReLU, feed-forward d,
//!   dropout 0.2, LayerNorm ε 1e-5) → Linear(d, 1) → BN(d) → PReLU(d)), two FF_TE blocks (the
//!   same without the input layer, ending in Dropout), three `LSTMCell(d, d)` (gate order i, f,
//!   g, o, both bias vectors), the protein mean head on x3 (Linear(d, d) → BN → PReLU →
//!   Dropout → Linear(d, 256) → PReLU → Linear(256, P) → PReLU, one scalar PReLU) and the
//!   quantile head Linear(d, Q·P) read as (n, P, Q).
//! * Loss: the mean over cells and proteins of m ⊙ [(ŷ − y)² + mean_q ρ_q(ŷ_q − y)], q ∈ {0.1,
//!   0.25, 0.75, 0.9}; m, the protein-present mask, is all ones for one dataset.
//! * Training: Adam lr 1e-3, batches of 32, 10 % of the cells held out (seeded draw); after
//!   every epoch the validation loss (mean over held-out cells); early stopping after `es_max`
//!   (12) epochs without improvement; the learning rate × `decay_step` (0.1) after
//!   `decay_max − 1` (5) epochs without improvement. The model kept is the last epoch's, as the
//!   reference's (`scTEL_API.train` overwrites the best state with the final weights).
//! * Embedding: h3 (d wide), computed from RNA alone, in eval mode; joint = the only
//!   per-modality embedding = h3. [`Method::predict_modality`] gives the protein mean head.
//!   Both protein heads read x3, not the LSTM state, so without the cell-type head no
//!   gradient reaches the three LSTM cells: they keep their initial (seeded) weights and h3
//!   is a fixed random recurrent read-out of the trained x1, x2, x3 — as in the reference's
//!   unsupervised mode (`tests/sctel_method.rs` checks both this and that h3 still separates
//!   cell types better than a random embedding).
//!
//! Inputs: RNA = `features[0]`, protein = `features[1]`, both as the caller preprocessed them
//! (scssl-bench's multimodal pipeline, methods.md §1.2); scTEL does no preprocessing of its
//! own.
//!
//! Divergences from the reference:
//! * **Preprocessing.** The reference z-scores genes and proteins within each batch
//!   (`sc.pp.scale` per batch) after its own QC, normalisation, log1p and HVG selection
//!   (1,000 genes), and predicts in that per-batch z-scored protein space. Here the model
//!   receives the benchmark's features as given (log-normalised HVGs and the protein block as
//!   the caller prepared them) and predicts protein in that space: the model interface hands
//!   methods preprocessed matrices, and a second preprocessing pipeline for one method would
//!   make its inputs differ from every other method's.
//! * **Unsupervised only.** The reference adds a cell-type head (Softmax(Linear(d, K)) on c3,
//!   cross-entropy) when `type_key` is given, making it label-supervised. It is not built: the
//!   method interface passes no labels to training (an SSL benchmark must not train on the
//!   labels it scores), and the benchmark's use of `type_key` is unknown.
//! * **Validation order.** The reference evaluates the validation loss *before* training in
//!   each epoch, so its first validation is of the untrained network; the generic trainer
//!   validates after each epoch's training. Every later validation sees the same weights (the
//!   reference's epoch e + 1 validation = our epoch e one) and stopping happens after the same
//!   number of training epochs, except that the untrained network's loss does not count as a
//!   best value here.
//! * **Learning-rate decay.** The reference decays when (epochs without improvement + 1) is a
//!   multiple of `decay_max` (after 5, 11, 17 … bad epochs); the trainer's plateau rule
//!   (patience `decay_max − 2`, counter reset after a decay) decays after 5, 10, 15 …: the
//!   first decay matches, later ones come one epoch earlier per decay. With the defaults
//!   (early stop at 12) only the second decay moves, from epoch 11 to 10 of the stall.
//! * **Last mini-batch.** The reference keeps any last, short batch; a one-cell batch makes
//!   its BatchNorm raise. Here a last batch is kept when it has at least two cells.
//! * Unused modules (`Linear_in`, `dropout_out`, `FF_Embedding.BN`, `Protein_Linear.BN2`) are
//!   not built and not in the checkpoint; initial weights come from the run's seed, not
//!   PyTorch's generator; the validation split and shuffling are seeded draws of our own.

use std::marker::PhantomData;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use super::sctel_network::{SctelNetwork, SctelOutput, protein_loss, protein_loss_terms};
use super::{
    BatchNeeds, BatchSource, EmbedInputs, Fitted, LrPlateau, Method, Objective, ObjectiveFamily,
    StepContext, StepInputs, TrainPlan, Validation,
};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{NamedTensor, Pass, tensor_values};
use crate::model::{EMBED_CHUNK, EmbeddingOutput, Embeddings, check_inputs, rows_tensor};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// scTEL's settings (the reference's `scTEL_API` and `train` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SctelParams {
    /// Width d of every layer, the token count and the embedding width (`h_size`, 512; the
    /// first block runs attention over d tokens of width d per cell: GPU-class at 512).
    pub h_size: usize,
    /// Attention heads (`h`, 4); must divide `h_size`.
    pub heads: usize,
    /// Dropout of the Input_TE tokens, the FF_TE outputs and the protein head (`drop_rate`,
    /// 0.15; the encoder layers' own dropout is fixed at 0.2).
    pub dropout: f64,
    /// Quantiles of the quantile head and loss (`quantiles`, [0.1, 0.25, 0.75, 0.9]); empty:
    /// no quantile head, the loss is the squared error alone.
    pub quantiles: Vec<f64>,
    /// Share of the cells held out for validation (`val_split`, 0.1); 0 trains on every cell
    /// for `training.epochs` epochs without validation, early stopping or decay.
    pub val_split: f64,
    /// Stop after this many epochs without a lower validation loss (`ES_max`, 12).
    pub es_max: usize,
    /// Decay the learning rate after `decay_max − 1` epochs without improvement (`decay_max`,
    /// 6; at least 2).
    pub decay_max: usize,
    /// Factor of each decay (`decay_step`, 0.1).
    pub decay_step: f64,
}

impl Default for SctelParams {
    fn default() -> Self {
        SctelParams {
            h_size: 512,
            heads: 4,
            dropout: 0.15,
            quantiles: vec![0.1, 0.25, 0.75, 0.9],
            val_split: 0.1,
            es_max: 12,
            decay_max: 6,
            decay_step: 0.1,
        }
    }
}

/// A seeded network for `config`.
fn network<B: burn::tensor::backend::Backend>(
    config: &ModelConfig,
    seed: u64,
    device: &B::Device,
) -> SctelNetwork<B> {
    let p = &config.sctel;
    SctelNetwork::new(
        config.input_dims[0],
        config.input_dims.get(1).copied().unwrap_or(1),
        p.h_size,
        p.heads,
        p.dropout,
        p.quantiles.len(),
        seed,
        device,
    )
}

/// Row ranges of at most [`EMBED_CHUNK`] cells, fewer when d is large: one cell's forward
/// pass holds about (heads + 8)·d² values (attention weights and token sequences), so a chunk
/// is kept near 2²⁶ values (256 MiB).
fn chunks(config: &ModelConfig, n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let p = &config.sctel;
    let per_cell = (p.heads + 8) * p.h_size * p.h_size;
    let size = ((1usize << 26) / per_cell.max(1)).clamp(1, EMBED_CHUNK);
    (0..n)
        .step_by(size)
        .map(move |start| start..(start + size).min(n))
}

/// scTEL's training state (nothing besides the network).
pub struct SctelObjective<B: AutodiffBackend> {
    quantiles: Vec<f64>,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> SctelObjective<B> {
    fn terms(
        &self,
        net: &mut SctelNetwork<B>,
        inputs: StepInputs<B>,
        pass: Pass,
    ) -> Result<Tensor<B, 2>> {
        let mut features = inputs.features.into_iter();
        let (Some(rna), Some(protein)) = (features.next(), features.next()) else {
            return Err(ModelError::Inconsistent(
                "scTEL's RNA and protein features".into(),
            ));
        };
        let out = net.forward(rna, pass);
        Ok(protein_loss_terms(&out, protein, &self.quantiles, None))
    }
}

impl<B: AutodiffBackend> Objective<B> for SctelObjective<B> {
    type Network = SctelNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, SctelNetwork<B>)> {
        Ok((
            SctelObjective {
                quantiles: config.sctel.quantiles.clone(),
                backend: PhantomData,
            },
            network(config, training.seed, device),
        ))
    }

    /// `val_split` of the cells (rounded, at least one) held out by a seeded draw; early
    /// stopping and learning-rate decay on their loss; a last batch of two or more cells is
    /// kept.
    fn plan(config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        let p = &config.sctel;
        let standard = TrainPlan {
            min_last_batch: Some(2),
            ..TrainPlan::standard(training, n_cells)
        };
        if p.val_split == 0.0 {
            return Ok(standard);
        }
        let n_val = (p.val_split * n_cells as f64).round() as usize;
        if n_val == 0 || n_val >= n_cells {
            return Err(invalid(
                "model.sctel.val_split",
                format!(
                    "{} of {n_cells} cells holds out {n_val}; expected at least one and fewer than all",
                    p.val_split
                ),
            ));
        }
        let mut order: Vec<usize> = (0..n_cells).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(training.seed ^ 0x5C7E_1000));
        let held_out = order[..n_val].to_vec();
        let mut train_cells = order[n_val..].to_vec();
        train_cells.sort_unstable();
        Ok(TrainPlan {
            train_cells,
            held_out,
            validation: Some(Validation {
                early_stopping_patience: Some(p.es_max),
                lr_plateau: Some(LrPlateau {
                    patience: p.decay_max - 2,
                    factor: p.decay_step,
                }),
            }),
            ..standard
        })
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) -> Option<f64> {
        None
    }

    fn loss(
        &mut self,
        net: &mut SctelNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        Ok(self.terms(net, inputs, step.pass(0))?.mean())
    }

    fn export(net: &SctelNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }

    /// The sum over the batch's cells of each cell's mean protein loss (eval mode).
    fn validation_loss(
        &mut self,
        net: &mut SctelNetwork<B>,
        inputs: StepInputs<B>,
        _step: &StepContext,
    ) -> Result<f64> {
        let terms = self.terms(net, inputs, Pass::EVAL)?.detach();
        let p = terms.dims()[1] as f64;
        let sum = tensor_values(terms.sum())
            .first()
            .copied()
            .unwrap_or(f32::NAN) as f64;
        Ok(sum / p)
    }
}

struct SctelFamily;

impl ObjectiveFamily for SctelFamily {
    type On<B: AutodiffBackend> = SctelObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sctel;

impl Sctel {
    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<SctelNetwork<CpuBackend>> {
        let mut net = network::<CpuBackend>(config, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }

    /// Checks the RNA matrix (and the protein one, when given) against the trained widths.
    fn check_rna(config: &ModelConfig, features: &[ArrayView2<'_, f32>]) -> Result<usize> {
        match features.len() {
            1 | 2 => check_inputs(&config.input_dims[..features.len()], features),
            k => Err(ModelError::Shape(format!(
                "scTEL embeds RNA (and optionally the protein block, unused); {k} matrices were given"
            ))),
        }
    }
}

impl Method for Sctel {
    fn name(&self) -> &'static str {
        "sctel"
    }

    fn summary(&self) -> &'static str {
        "scTEL: Transformer encoder + LSTM cells predicting protein from RNA; embedding = last LSTM state (Sci. Rep. 2025)"
    }

    /// `scTEL_API`: Adam at lr 1e-3, batches of 32, a constant rate (decay only on validation
    /// stalls), up to 10,000 epochs ended by early stopping.
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 10_000,
            batch_size: 32,
            lr: 1e-3,
            weight_decay: 0.0,
            optimizer: OptimizerKind::Adam,
            schedule: LrSchedule::Constant,
            gradient_clip: None,
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
        let p = &config.sctel;
        if config.input_dims.len() != 2 {
            return Err(invalid(
                "data.protein_key",
                "scTEL learns to predict protein from RNA: it needs RNA + protein (give the protein block, data.protein_key / --protein-key)",
            ));
        }
        if p.h_size == 0 {
            return Err(invalid("model.sctel.h_size", "must be at least 1"));
        }
        if p.heads == 0 || !p.h_size.is_multiple_of(p.heads) {
            return Err(invalid(
                "model.sctel.heads",
                format!("{} heads do not divide h_size {}", p.heads, p.h_size),
            ));
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(invalid(
                "model.sctel.dropout",
                "expected a probability in [0, 1)",
            ));
        }
        if p.quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0)) {
            return Err(invalid(
                "model.sctel.quantiles",
                "every quantile must lie in (0, 1)",
            ));
        }
        if !(0.0..1.0).contains(&p.val_split) {
            return Err(invalid(
                "model.sctel.val_split",
                "expected a share in [0, 1)",
            ));
        }
        if p.es_max == 0 {
            return Err(invalid("model.sctel.es_max", "must be at least 1"));
        }
        if p.decay_max < 2 {
            return Err(invalid("model.sctel.decay_max", "must be at least 2"));
        }
        if !(p.decay_step > 0.0 && p.decay_step <= 1.0) {
            return Err(invalid(
                "model.sctel.decay_step",
                "expected a factor in (0, 1]",
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
        fit_objective::<SctelFamily>(config, training, n_cells, source, progress)
    }

    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = Self::check_rna(config, &inputs.features)?;
        let mut net = Self::cpu_network(config, tensors)?;
        let x = inputs.features[0];
        let d = config.sctel.h_size;
        let mut out = Embeddings::builder(1, n);
        for rows in chunks(config, n) {
            let values = tensor_values(net.embed(rows_tensor(x, rows), Pass::EVAL));
            out.push_modality(0, d, values.clone());
            out.push_joint(d, values);
        }
        out.finish()
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }

    /// The protein mean head on `rna`, eval mode.
    fn predict_modality(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        rna: ArrayView2<'_, f32>,
    ) -> Result<Option<Array2<f32>>> {
        let n = Self::check_rna(config, &[rna])?;
        let mut net = Self::cpu_network(config, tensors)?;
        let p = config.input_dims[1];
        let mut values = Vec::with_capacity(n * p);
        for rows in chunks(config, n) {
            let out = net.forward(rows_tensor(rna, rows), Pass::EVAL);
            values.extend(tensor_values(out.protein));
        }
        Array2::from_shape_vec((n, p), values)
            .map(Some)
            .map_err(|e| ModelError::Inconsistent(format!("predicted protein rows × width: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::MethodRef;
    use crate::runtime::CpuTrainBackend;

    fn config() -> ModelConfig {
        ModelConfig {
            input_dims: vec![20, 4],
            ..ModelConfig::new(MethodRef::parse("sctel").unwrap(), 20)
        }
    }

    #[test]
    fn the_plan_holds_out_ten_percent_and_stops_and_decays_as_the_reference() {
        let training = Sctel.default_training();
        let plan = <SctelObjective<CpuTrainBackend> as Objective<CpuTrainBackend>>::plan(
            &config(),
            &training,
            600,
        )
        .unwrap();
        assert_eq!(plan.held_out.len(), 60);
        assert_eq!(plan.train_cells.len(), 540);
        let mut all: Vec<usize> = plan
            .held_out
            .iter()
            .chain(&plan.train_cells)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..600).collect::<Vec<_>>());
        assert_eq!(plan.min_last_batch, Some(2));
        let rule = plan.validation.unwrap();
        assert_eq!(rule.early_stopping_patience, Some(12));
        assert_eq!(
            rule.lr_plateau,
            Some(LrPlateau {
                patience: 4,
                factor: 0.1
            })
        );
        assert_eq!(training.batch_size, 32);
        assert_eq!(training.lr, 1e-3);
        // val_split 0: every cell, no validation
        let mut c = config();
        c.sctel.val_split = 0.0;
        let plan = <SctelObjective<CpuTrainBackend> as Objective<CpuTrainBackend>>::plan(
            &c, &training, 600,
        )
        .unwrap();
        assert!(plan.validation.is_none() && plan.held_out.is_empty());
        // too few cells to hold one out
        c.sctel.val_split = 0.1;
        assert!(
            <SctelObjective<CpuTrainBackend> as Objective<CpuTrainBackend>>::plan(&c, &training, 4)
                .is_err()
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut c = config();
        assert!(c.validate().is_ok());
        c.sctel.quantiles = vec![0.5, 1.0];
        assert!(c.validate().unwrap_err().to_string().contains("quantiles"));
        c = config();
        c.sctel.decay_max = 1;
        assert!(c.validate().unwrap_err().to_string().contains("decay_max"));
        c = config();
        c.sctel.heads = 5;
        assert!(c.validate().unwrap_err().to_string().contains("heads"));
        // the settings read from YAML/JSON with defaults for missing keys
        let p: SctelParams = serde_json::from_str(r#"{"h_size": 64}"#).unwrap();
        assert_eq!(p.h_size, 64);
        assert_eq!(p.heads, 4);
        assert!(serde_json::from_str::<SctelParams>(r#"{"hsize": 64}"#).is_err());
    }
}
