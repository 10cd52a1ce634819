//! CLEAR (Han et al., Briefings in Bioinformatics 2022; ml4bio/CLEAR; methods.md §5.2):
//! MoCo v1 with CLEAR's own augmentations.
//!
//! * Views: two augmented copies of each cell from the caller's pipeline; CLEAR's own is the
//!   `clear_original` preset (mask 20 %, Gaussian noise on 80 % of genes with σ = 0.5 — the
//!   value CLEAR hard-codes, its `sigma` argument is ignored —, inner swap 10 %, crossover
//!   25 % with one cell, "crossover with many" 25 %, each with probability 0.5), which
//!   [`Method::default_augmentation`] names.
//! * Encoder: Linear(G, 1024) → ReLU → Linear(1024, 128) → ReLU (ReLU on the output, no
//!   dropout), PyTorch default initialisation; a momentum key encoder (m = 0.999, updated
//!   before each step, starting as a copy).
//! * Loss: one-directional InfoNCE, logits [q̄·k̄⁺, q̄·Q]/T with target 0, T = 0.2, against a
//!   queue of 1,024 N(0, 1) keys L2-normalised at the start; the step's keys are enqueued
//!   after it.
//! * SGD (momentum 0.9) at lr 5e-3, weight decay 1e-6, batch 512, 100 epochs, a constant rate
//!   (CLEAR's optional cosine schedule: `training.schedule: cosine`). With fewer cells than
//!   the batch size, batch and queue are both set to the number of cells, as CLEAR does below
//!   512 cells.
//! * Embedding: the **key** (momentum) encoder's output, L2-normalised, as CLEAR reports it;
//!   `embed_with_query` switches to the query encoder.
//!
//! Divergence (the reference's bug, fixed): CLEAR's crossover swaps values with the partner
//! inside the shared augmentation pool and so mutates the data it draws later views from; here
//! the partner's values are copied into the view and the data stays unchanged.

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::claire::KeyQueue;
use super::{
    BatchNeeds, BatchSource, EmbedInputs, Fitted, Method, Objective, ObjectiveFamily, StepContext,
    StepInputs,
};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{Dense, NamedTensor, reject_leftovers};
use crate::losses::{l2_normalize, nt_xent_bank};
use crate::model::{EmbeddingOutput, Embeddings, check_inputs, embed_latent, rows_tensor};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// CLEAR's settings (`model.clear`), the reference's values by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClearParams {
    /// Hidden width (1,024).
    pub hidden_dim: usize,
    /// Embedding width (128).
    pub latent_dim: usize,
    /// Queue size r (1,024).
    pub queue_size: usize,
    /// Momentum of the key encoder (0.999).
    pub momentum: f64,
    /// InfoNCE temperature (0.2).
    pub temperature: f64,
    /// Embed with the query encoder instead of the key encoder CLEAR uses (false).
    pub embed_with_query: bool,
}

impl Default for ClearParams {
    fn default() -> Self {
        ClearParams {
            hidden_dim: 1024,
            latent_dim: 128,
            queue_size: 1024,
            momentum: 0.999,
            temperature: 0.2,
            embed_with_query: false,
        }
    }
}

/// CLEAR's encoder: Linear → ReLU → Linear → ReLU.
#[derive(Module, Debug)]
pub struct ClearEncoder<B: Backend> {
    /// G → hidden → latent.
    pub layers: Vec<Dense<B>>,
}

impl<B: Backend> ClearEncoder<B> {
    fn new(g: usize, p: &ClearParams, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        ClearEncoder {
            layers: vec![
                Dense::new(g, p.hidden_dim, true, rng, device),
                Dense::new(p.hidden_dim, p.latent_dim, true, rng, device),
            ],
        }
    }

    /// The encoder's output (before the loss's normalisation).
    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        for layer in &self.layers {
            x = relu(layer.forward(x));
        }
        x
    }
}

/// CLEAR's query encoder and its momentum key encoder (not trained by the optimiser).
#[derive(Module, Debug)]
pub struct ClearNetwork<B: Backend> {
    /// Trained by gradient descent.
    pub query: ClearEncoder<B>,
    /// The momentum copy; its output is the embedding.
    pub key: ClearEncoder<B>,
}

impl<B: Backend> ClearNetwork<B> {
    /// A seeded network: the key encoder starts as a copy of the query encoder.
    pub fn new(g: usize, p: &ClearParams, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let query = ClearEncoder::new(g, p, &mut rng, device);
        let key = query.clone().no_grad();
        ClearNetwork { query, key }
    }

    /// θ_key ← m·θ_key + (1 − m)·θ_query.
    pub fn momentum_update(&mut self, m: f64) {
        for (t, o) in self.key.layers.iter_mut().zip(&self.query.layers) {
            t.ema(o, m);
        }
    }

    /// Every tensor with its checkpoint name (`query.{i}.*`, `key.{i}.*`).
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (name, enc) in [("query", &self.query), ("key", &self.key)] {
            for (i, l) in enc.layers.iter().enumerate() {
                l.export(&format!("{name}.{i}"), &mut out);
            }
        }
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (name, enc) in [("query", &mut self.query), ("key", &mut self.key)] {
            for (i, l) in enc.layers.iter_mut().enumerate() {
                l.import(&format!("{name}.{i}"), &mut store)?;
            }
        }
        reject_leftovers(&store)
    }
}

/// CLEAR's loss: InfoNCE of the query of view 1 against the key of view 2 and the queue; the
/// (normalised) keys to enqueue.
pub fn clear_loss<B: Backend>(
    net: &ClearNetwork<B>,
    queue: &KeyQueue<B>,
    x1: Tensor<B, 2>,
    x2: Tensor<B, 2>,
    temperature: f64,
) -> (Tensor<B, 1>, Tensor<B, 2>) {
    let q = net.query.forward(x1);
    let k = l2_normalize(net.key.forward(x2).detach());
    let loss = nt_xent_bank(q, k.clone(), queue.rows.clone(), temperature);
    (loss, k)
}

/// CLEAR's training state: the queue.
pub struct ClearObjective<B: AutodiffBackend> {
    params: ClearParams,
    queue: KeyQueue<B>,
}

impl<B: AutodiffBackend> Objective<B> for ClearObjective<B> {
    type Network = ClearNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, ClearNetwork<B>)> {
        let p = &config.clear;
        let net = ClearNetwork::new(config.input_dims[0], p, training.seed, device);
        let queue = KeyQueue::random_unit(
            p.queue_size,
            p.latent_dim,
            training.seed ^ 0x5DEE_CE66_D1CE_4E5B,
            device,
        );
        Ok((
            ClearObjective {
                params: p.clone(),
                queue,
            },
            net,
        ))
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) -> Option<f64> {
        Some(self.params.momentum)
    }

    fn loss(
        &mut self,
        net: &mut ClearNetwork<B>,
        inputs: StepInputs<B>,
        _step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        net.momentum_update(self.params.momentum);
        let mut views = inputs.views.into_iter().map(|v| v.into_iter().next());
        let (Some(Some(x1)), Some(Some(x2))) = (views.next(), views.next()) else {
            return Err(ModelError::Inconsistent("CLEAR's two views".into()));
        };
        let (loss, keys) = clear_loss(net, &self.queue, x1, x2, self.params.temperature);
        self.queue.enqueue(keys);
        Ok(loss)
    }

    fn export(net: &ClearNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

struct ClearFamily;

impl ObjectiveFamily for ClearFamily {
    type On<B: AutodiffBackend> = ClearObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clear;

impl Clear {
    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ClearNetwork<CpuBackend>> {
        let g = config.input_dims.first().copied().unwrap_or(0);
        let mut net = ClearNetwork::<CpuBackend>::new(g, &config.clear, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl Method for Clear {
    fn name(&self) -> &'static str {
        "clear"
    }

    fn summary(&self) -> &'static str {
        "CLEAR: MoCo v1 with CLEAR's own augmentations, embedding from the key encoder (Han et al. 2022)"
    }

    /// CLEAR's defaults: SGD (momentum 0.9) at lr 5e-3, weight decay 1e-6, batch 512,
    /// 100 epochs, constant rate.
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 100,
            batch_size: 512,
            lr: 5e-3,
            weight_decay: 1e-6,
            optimizer: OptimizerKind::Sgd,
            schedule: LrSchedule::Constant,
            ..TrainConfig::default()
        }
    }

    fn default_augmentation(&self) -> Option<&'static str> {
        Some("clear_original")
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            views: 2,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.clear;
        if config.input_dims.len() > 1 {
            return Err(invalid(
                "data.protein_key",
                "CLEAR integrates RNA only; drop the protein block",
            ));
        }
        if p.hidden_dim == 0 || p.latent_dim == 0 || p.queue_size == 0 {
            return Err(invalid(
                "model.clear",
                "hidden_dim, latent_dim and queue_size must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&p.momentum) {
            return Err(invalid(
                "model.clear.momentum",
                "expected a value in [0, 1]",
            ));
        }
        if !(p.temperature > 0.0 && p.temperature.is_finite()) {
            return Err(invalid(
                "model.clear.temperature",
                "expected a positive number",
            ));
        }
        Ok(())
    }

    /// With fewer cells than the batch size, batch and queue become the number of cells.
    fn fit(
        &self,
        config: &ModelConfig,
        training: &TrainConfig,
        n_cells: usize,
        source: &mut BatchSource<'_>,
        progress: &mut dyn FnMut(&TrainEvent),
    ) -> Result<Fitted> {
        let (mut config, mut training) = (config.clone(), training.clone());
        if n_cells < training.batch_size && n_cells > 0 {
            tracing::info!(
                cells = n_cells,
                "CLEAR: fewer cells than the batch size; batch and queue set to the cell count"
            );
            training.batch_size = n_cells;
            config.clear.queue_size = n_cells;
        }
        fit_objective::<ClearFamily>(&config, &training, n_cells, source, progress)
    }

    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = check_inputs(&config.input_dims, &inputs.features)?;
        let net = Self::cpu_network(config, tensors)?;
        let encoder = if config.clear.embed_with_query {
            &net.query
        } else {
            &net.key
        };
        let x = inputs.features[0];
        embed_latent(n, |rows| {
            Ok(l2_normalize(encoder.forward(rows_tensor(x, rows))))
        })
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_encoder_starts_as_a_copy() {
        // the encoder has neither dropout nor BatchNorm: train and eval mode agree
        let p = ClearParams {
            hidden_dim: 8,
            latent_dim: 4,
            ..ClearParams::default()
        };
        let net = ClearNetwork::<CpuBackend>::new(6, &p, 1, &Default::default());
        let x =
            crate::layers::tensor_from::<CpuBackend, 2>(vec![0.5; 12], [2, 6], &Default::default());
        let a = crate::layers::tensor_values(net.query.forward(x.clone()));
        let b = crate::layers::tensor_values(net.key.forward(x));
        assert_eq!(
            a, b,
            "the key encoder starts as a copy of the query encoder"
        );
    }
}
