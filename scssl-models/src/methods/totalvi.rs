//! totalVI (Gayoso, Steier et al. 2021) built and trained as scvi-tools 1.1's `TOTALVAE` and
//! `TOTALVI.train()` (methods.md §5.6):
//!
//! * encoder of log1p(genes) ⧺ log1p(proteins) with the batch one-hot in every layer
//!   (`encode_covariates`), 2 FC layers of 256 (BatchNorm momentum 0.01 / ε 1e-3, ReLU,
//!   dropout 0.2), a Gaussian posterior of 20 dimensions (variance exp(·) + 1e-4); the library
//!   encoder scvi-tools builds is built too (its parameters count) but, with the observed
//!   library size, never used;
//! * four decoders of z with the batch one-hot (genes, protein background, foreground,
//!   mixing), each followed by linear heads of [hidden, z, one-hot]: gene scales (softmax ×
//!   the observed library size), background log-rate mean and scale (a reparameterised
//!   sample), the foreground factor ReLU(·) + 1 + 1e-8, ZI logits and the mixing logits;
//! * NB genes (θ per gene, or per gene and batch), the protein NB mixture with one θ per
//!   protein (initialised as log θ = 2·U[0, 1)), the KL of the background to its prior —
//!   empirical per batch ([`super::background_prior`]) with more than 10 proteins, otherwise
//!   α ~ N(0, 1), log β = clamp(N(0, 1), −10, 1) — and both priors' parameters trained;
//! * loss = mean(rec_genes + rec_proteins + w·KL_z + w·KL_background), w rising linearly over
//!   int(0.75 · cells) steps; Adam (ε 0.01, lr 4e-3, weight decay 1e-6), batches of 256, the
//!   90/10 split, early stopping on the validation ELBO (patience 45) and the learning rate ×
//!   0.6 after 30 epochs without improvement;
//! * embedding: the posterior mean of z. A cell of a batch training never saw is encoded with
//!   the mean of the training batches' one-hot vectors (each 1/B): scvi-tools needs scArches
//!   surgery for such a query, which this does not do.

use std::marker::PhantomData;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::background_prior::empirical_prior;
use super::scvi::scvi_tools_plan;
pub use super::totalvi_network::{Decoded, ElboTerms, TotalviNetwork, elbo_terms};
use super::totalvi_network::{covariates_lenient, encoder_covariates, rows};
use super::{
    BatchNeeds, BatchRequest, BatchSource, EmbedInputs, Fitted, LrPlateau, Method, Objective,
    ObjectiveFamily, StepContext, StepInputs, TrainPlan, Validation,
};
use crate::config::{GeneLikelihood, ModelConfig, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{NamedTensor, Pass};
use crate::model::{EmbeddingOutput, Embeddings, check_nonnegative, embed_latent, rows_tensor};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// totalVI's training state: the config (with the KL warm-up resolved) and the KL weight.
pub struct TotalviObjective<B: AutodiffBackend> {
    config: ModelConfig,
    warmup_steps: usize,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> TotalviObjective<B> {
    fn draw(
        &self,
        n: usize,
        np: usize,
        step: &StepContext,
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let d = self.config.totalvi.n_latent;
        let mut rng = ChaCha8Rng::seed_from_u64(step.pass(1).dropout_seed);
        let mut draw =
            |k: usize| -> Vec<f32> { (0..k).map(|_| StandardNormal.sample(&mut rng)).collect() };
        let ez = draw(n * d);
        let eb = draw(n * np);
        (
            Tensor::from_data(TensorData::new(ez, [n, d]), device),
            Tensor::from_data(TensorData::new(eb, [n, np]), device),
        )
    }

    fn terms(
        &self,
        net: &mut TotalviNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
        pass: Pass,
    ) -> Result<ElboTerms<B>> {
        let x = inputs
            .counts
            .ok_or_else(|| ModelError::Inconsistent("totalVI's gene counts".into()))?;
        let y = inputs
            .features
            .into_iter()
            .nth(1)
            .ok_or_else(|| ModelError::Inconsistent("totalVI's protein counts".into()))?;
        let codes = inputs
            .batch_codes
            .ok_or_else(|| ModelError::Inconsistent("totalVI's batch codes".into()))?;
        let [n, np] = y.dims();
        let noise = self.draw(n, np, step, &x.device());
        elbo_terms(net, &self.config, x, y, &codes, Some(noise), pass)
    }
}

impl<B: AutodiffBackend> Objective<B> for TotalviObjective<B> {
    type Network = TotalviNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, TotalviNetwork<B>)> {
        let prior = config
            .background_prior
            .as_ref()
            .map(|p| (p.mean.as_slice(), p.scale.as_slice()));
        let net = TotalviNetwork::new(config, prior, training.seed, device);
        Ok((
            TotalviObjective {
                config: config.clone(),
                warmup_steps: config.totalvi.n_steps_kl_warmup.unwrap_or(0),
                backend: PhantomData,
            },
            net,
        ))
    }

    /// scvi-tools' data splitter (as scVI), the epoch rule, and validation every epoch with
    /// early stopping (patience 45) and ReduceLROnPlateau (patience 30, factor 0.6).
    fn plan(config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        let p = &config.totalvi;
        let validation = (p.early_stopping || p.reduce_lr_on_plateau).then_some(Validation {
            early_stopping_patience: p.early_stopping.then_some(45),
            lr_plateau: p.reduce_lr_on_plateau.then_some(LrPlateau {
                patience: 30,
                factor: 0.6,
            }),
        });
        Ok(TrainPlan {
            validation,
            ..scvi_tools_plan(training, n_cells, p.train_size, p.epoch_rule, 0x7074_5911)
        })
    }

    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) -> Option<f64> {
        None
    }

    fn loss(
        &mut self,
        net: &mut TotalviNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        let w = if (step.global_step as usize) < self.warmup_steps {
            step.global_step as f64 / self.warmup_steps as f64
        } else {
            1.0
        };
        let t = self.terms(net, inputs, step, step.pass(0))?;
        Ok(t.reconstruction_genes
            .add(t.reconstruction_proteins)
            .add(t.kl_z.add(t.kl_background).mul_scalar(w))
            .mean())
    }

    fn export(net: &TotalviNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }

    /// scvi-tools' `elbo_validation`: reconstruction plus the unweighted KL terms.
    fn validation_loss(
        &mut self,
        net: &mut TotalviNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<f64> {
        let t = self.terms(net, inputs, step, Pass::EVAL)?;
        let total = t
            .reconstruction_genes
            .add(t.reconstruction_proteins)
            .add(t.kl_z)
            .add(t.kl_background)
            .sum()
            .detach();
        Ok(total.into_scalar().elem())
    }
}

struct TotalviFamily;

impl ObjectiveFamily for TotalviFamily {
    type On<B: AutodiffBackend> = TotalviObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totalvi;

impl Totalvi {
    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<TotalviNetwork<CpuBackend>> {
        let mut net = TotalviNetwork::<CpuBackend>::new(config, None, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }

    /// Whether the empirical background prior applies (scvi-tools: more than 10 proteins).
    pub fn uses_empirical_prior(config: &ModelConfig) -> bool {
        config
            .totalvi
            .empirical_background_prior
            .unwrap_or(config.input_dims.get(1).copied().unwrap_or(0) > 10)
    }
}

impl Method for Totalvi {
    fn name(&self) -> &'static str {
        "totalvi"
    }

    fn summary(&self) -> &'static str {
        "totalVI: a VAE of RNA and protein counts with a protein background/foreground mixture (scvi-tools 1.1)"
    }

    /// `TOTALVI.train()` defaults: lr 4e-3, batches of 256, weight decay 1e-6, a constant rate
    /// (lowered on plateaus), at most 400 epochs (fewer above 20,000 cells).
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 400,
            batch_size: 256,
            lr: 4e-3,
            weight_decay: 1e-6,
            schedule: crate::config::LrSchedule::Constant,
            ..TrainConfig::default()
        }
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            features: true,
            counts: true,
            protein_counts: true,
            batch_codes: true,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.totalvi;
        if config.input_dims.len() != 2 {
            return Err(invalid(
                "data.protein_key",
                "totalVI models RNA and protein: give the protein block (data.protein_key / --protein-key)",
            ));
        }
        for (name, v) in [
            ("model.totalvi.n_latent", p.n_latent),
            ("model.totalvi.n_hidden", p.n_hidden),
            ("model.totalvi.n_layers_encoder", p.n_layers_encoder),
            ("model.totalvi.n_layers_decoder", p.n_layers_decoder),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&p.dropout_rate) {
            return Err(invalid(
                "model.totalvi.dropout_rate",
                "expected a probability in [0, 1)",
            ));
        }
        if p.gene_likelihood == GeneLikelihood::Poisson {
            return Err(invalid(
                "model.totalvi.gene_likelihood",
                "totalVI's genes are nb or zinb",
            ));
        }
        let validates = p.early_stopping || p.reduce_lr_on_plateau;
        if !(p.train_size > 0.0 && (p.train_size < 1.0 || (!validates && p.train_size <= 1.0))) {
            return Err(invalid(
                "model.totalvi.train_size",
                "expected a share in (0, 1), or up to 1 without early stopping and plateau",
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
        let mut config = config.clone();
        config
            .totalvi
            .n_steps_kl_warmup
            .get_or_insert((0.75 * n_cells as f64) as usize);
        if Self::uses_empirical_prior(&config) {
            let all: Vec<usize> = (0..n_cells).collect();
            let batch = source(BatchRequest {
                epoch: 0,
                step: 0,
                cells: &all,
                needs: self.needs(&config),
            })
            .map_err(|message| ModelError::Views { epoch: 0, message })?;
            let (Some(protein), Some(codes)) = (batch.features.get(1), batch.batch_codes) else {
                return Err(ModelError::Inconsistent(
                    "the protein counts and batches for totalVI's prior".into(),
                ));
            };
            check_nonnegative("protein counts", "totalVI", protein.view())?;
            config.background_prior = Some(empirical_prior(
                protein.view(),
                &codes,
                rows(&config),
                training.seed,
            ));
        }
        fit_objective::<TotalviFamily>(&config, training, n_cells, source, progress)
    }

    /// The posterior mean of z (`get_latent_representation()`), from gene and protein counts
    /// and each cell's batch.
    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let counts = inputs.counts.ok_or_else(|| {
            ModelError::Shape("totalVI embeds raw gene counts; none were given".into())
        })?;
        let protein = inputs.features.get(1).ok_or_else(|| {
            ModelError::Shape("totalVI embeds protein counts; none were given".into())
        })?;
        let (g, np) = (config.input_dims[0], config.input_dims[1]);
        if counts.ncols() != g || protein.ncols() != np || protein.nrows() != counts.nrows() {
            return Err(ModelError::Shape(format!(
                "totalVI was trained on {g} genes and {np} proteins; got {} × {} counts and {} × {} proteins",
                counts.nrows(),
                counts.ncols(),
                protein.nrows(),
                protein.ncols()
            )));
        }
        check_nonnegative("gene counts", "totalVI", counts)?;
        check_nonnegative("protein counts", "totalVI", protein.view())?;
        let n = counts.nrows();
        let width = encoder_covariates(config);
        let codes: Vec<u32> = match inputs.batch_codes {
            Some(c) if c.len() == n => c.to_vec(),
            Some(c) => {
                return Err(ModelError::Shape(format!(
                    "{} batch codes for {n} cells",
                    c.len()
                )));
            }
            None if width == 0 => vec![0; n],
            None => {
                return Err(ModelError::Shape(
                    "totalVI encodes each cell's batch; no batch codes were given".into(),
                ));
            }
        };
        let mut net = Self::cpu_network(config, tensors)?;
        let protein = protein.view();
        embed_latent(n, |rows| {
            let cov =
                covariates_lenient::<CpuBackend>(&codes[rows.clone()], width, &Default::default());
            let (x, y) = (
                rows_tensor(counts, rows.clone()),
                rows_tensor(protein, rows),
            );
            Ok(net.encode(x, y, &cov, Pass::EVAL).0)
        })
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}
