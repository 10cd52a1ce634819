//! scVI (Lopez et al. 2018) built and trained as scvi-tools 1.1 does (methods.md §5.5): an
//! encoder of log1p counts (FC layers with BatchNorm momentum 0.01 / ε 1e-3, ReLU, dropout;
//! no covariates), a Gaussian posterior (variance exp(·) + 1e-4), a decoder with the batch
//! one-hot injected into every layer, softmax gene scales times the observed library size, an
//! NB / ZINB / Poisson likelihood with a per-gene (or per gene and batch) dispersion, the KL
//! weight warmed up over epochs, Adam with ε 0.01, a 90/10 train/validation split, and the
//! posterior mean as the embedding.

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{
    BatchNeeds, BatchSource, EmbedInputs, Fitted, Method, Objective, ObjectiveFamily, StepContext,
    StepInputs, TrainPlan,
};
use crate::config::{Dispersion, GeneLikelihood, ModelConfig, TrainConfig};
use crate::distributions::{kl_standard_normal, log_nb_positive, log_poisson, log_zinb_positive};
use crate::error::{ModelError, Result, invalid};
use crate::layers::{
    BatchNorm1d, Dense, NamedTensor, Pass, dropout, export, import, reject_leftovers, tensor_from,
};
use crate::model::{EmbeddingOutput, Embeddings, check_nonnegative, embed_latent, rows_tensor};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// scvi-tools' BatchNorm settings.
const BN_MOMENTUM: f64 = 0.01;
const BN_EPS: f64 = 1e-3;
/// Added to the posterior variance (scvi-tools `var_eps`).
const VAR_EPS: f64 = 1e-4;

/// One FC layer: Linear(n_in + covariates, n_out) → BatchNorm → ReLU → Dropout.
#[derive(Module, Debug)]
pub struct FcLayer<B: Backend> {
    /// The linear layer (its input includes the covariate one-hot when injected).
    pub linear: Dense<B>,
    /// BatchNorm (momentum 0.01, ε 1e-3).
    pub bn: BatchNorm1d<B>,
}

/// scvi-tools' `FCLayers`: the covariate one-hot (if any) is concatenated to every layer's
/// input (`deeply_inject_covariates=True`).
#[derive(Module, Debug)]
pub struct FcLayers<B: Backend> {
    /// The layers in order.
    pub layers: Vec<FcLayer<B>>,
    /// Width of the injected one-hot (0: no covariates).
    pub n_cov: usize,
    /// Dropout after each layer.
    pub dropout: f64,
}

impl<B: Backend> FcLayers<B> {
    pub(crate) fn new(
        n_in: usize,
        n_hidden: usize,
        n_layers: usize,
        n_cov: usize,
        dropout: f64,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let layers = (0..n_layers)
            .map(|i| {
                let d_in = if i == 0 { n_in } else { n_hidden } + n_cov;
                FcLayer {
                    linear: Dense::new(d_in, n_hidden, true, rng, device),
                    bn: BatchNorm1d::with_stats(n_hidden, true, BN_MOMENTUM, BN_EPS, device),
                }
            })
            .collect();
        FcLayers {
            layers,
            n_cov,
            dropout,
        }
    }

    pub(crate) fn forward(
        &mut self,
        mut x: Tensor<B, 2>,
        cov: Option<&Tensor<B, 2>>,
        pass: Pass,
    ) -> Tensor<B, 2> {
        let p = self.dropout;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            if let (Some(c), true) = (cov, self.n_cov > 0) {
                x = Tensor::cat(vec![x, c.clone()], 1);
            }
            x = relu(layer.bn.forward(layer.linear.forward(x), pass));
            let layer_pass = Pass {
                dropout_seed: pass.dropout_seed
                    ^ (0xD1B5_4A32_D192_ED03u64.wrapping_mul(i as u64 + 1)),
                ..pass
            };
            x = dropout(x, p, layer_pass);
        }
        x
    }

    pub(crate) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        for (i, l) in self.layers.iter().enumerate() {
            l.linear.export(&format!("{prefix}.{i}.linear"), out);
            l.bn.export(&format!("{prefix}.{i}.bn"), out);
        }
    }

    pub(crate) fn import(
        &mut self,
        prefix: &str,
        store: &mut HashMap<String, NamedTensor>,
    ) -> Result<()> {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.linear.import(&format!("{prefix}.{i}.linear"), store)?;
            l.bn.import(&format!("{prefix}.{i}.bn"), store)?;
        }
        Ok(())
    }
}

/// scVI's networks.
#[derive(Module, Debug)]
pub struct ScviNetwork<B: Backend> {
    /// Encoder of log1p counts (no covariates).
    pub encoder: FcLayers<B>,
    /// Posterior mean head.
    pub z_mean: Dense<B>,
    /// Posterior log-variance head (variance = exp(·) + 1e-4).
    pub z_var: Dense<B>,
    /// Decoder from z with the batch one-hot in every layer.
    pub decoder: FcLayers<B>,
    /// Gene-scale head (softmax over genes).
    pub px_scale: Dense<B>,
    /// Zero-inflation logits (ZINB only).
    pub px_dropout: Option<Dense<B>>,
    /// log θ: `[1, genes]` per gene, `[batches, genes]` per gene and batch.
    pub px_r: Param<Tensor<B, 2>>,
}

/// The batch one-hot scVI injects (width 0 with a single batch, as scvi-tools ignores a
/// one-category covariate).
pub(crate) fn covariate_width(config: &ModelConfig) -> usize {
    if config.n_batches > 1 {
        config.n_batches
    } else {
        0
    }
}

impl<B: Backend> ScviNetwork<B> {
    /// A seeded network (PyTorch-default initialisation; θ's logarithm from N(0, 1)).
    pub fn new(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let p = &config.scvi;
        let g = config.input_dims[0];
        let latent = p.latent(config.hidden_dim);
        let n_cov = covariate_width(config);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let encoder = FcLayers::new(
            g,
            p.n_hidden,
            p.n_layers,
            0,
            p.dropout_rate,
            &mut rng,
            device,
        );
        let z_mean = Dense::new(p.n_hidden, latent, true, &mut rng, device);
        let z_var = Dense::new(p.n_hidden, latent, true, &mut rng, device);
        let decoder = FcLayers::new(latent, p.n_hidden, p.n_layers, n_cov, 0.0, &mut rng, device);
        let px_scale = Dense::new(p.n_hidden, g, true, &mut rng, device);
        let px_dropout = (p.gene_likelihood == GeneLikelihood::Zinb)
            .then(|| Dense::new(p.n_hidden, g, true, &mut rng, device));
        let rows = match p.dispersion {
            Dispersion::Gene => 1,
            Dispersion::GeneBatch => config.n_batches.max(1),
        };
        let r: Vec<f32> = (0..rows * g)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let px_r = Param::initialized(
            ParamId::new(),
            tensor_from::<B, 2>(r, [rows, g], device).require_grad(),
        );
        ScviNetwork {
            encoder,
            z_mean,
            z_var,
            decoder,
            px_scale,
            px_dropout,
            px_r,
        }
    }

    /// Posterior mean and variance of z for raw counts `x`.
    pub fn encode(&mut self, x: Tensor<B, 2>, pass: Pass) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let h = self.encoder.forward(x.log1p(), None, pass);
        let mean = self.z_mean.forward(h.clone());
        let var = self.z_var.forward(h).exp().add_scalar(VAR_EPS);
        (mean, var)
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.encoder.export("encoder", &mut out);
        self.z_mean.export("z_mean", &mut out);
        self.z_var.export("z_var", &mut out);
        self.decoder.export("decoder", &mut out);
        self.px_scale.export("px_scale", &mut out);
        if let Some(d) = &self.px_dropout {
            d.export("px_dropout", &mut out);
        }
        export("px_r".into(), &self.px_r, &mut out);
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.encoder.import("encoder", &mut store)?;
        self.z_mean.import("z_mean", &mut store)?;
        self.z_var.import("z_var", &mut store)?;
        self.decoder.import("decoder", &mut store)?;
        self.px_scale.import("px_scale", &mut store)?;
        if let Some(d) = &mut self.px_dropout {
            d.import("px_dropout", &mut store)?;
        }
        import("px_r".into(), &mut self.px_r, &mut store)?;
        reject_leftovers(&store)
    }

    /// The number of trained parameters (BatchNorm running statistics excluded).
    pub fn n_parameters(&self) -> usize {
        self.export()
            .iter()
            .filter(|t| !t.name.contains("running_"))
            .map(|t| t.data.len())
            .sum()
    }
}

/// One-hot rows of `codes` (`[n, width]`); an empty tensor when `width` is 0.
pub(crate) fn one_hot<B: Backend>(
    codes: &[u32],
    width: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    let mut v = vec![0.0f32; codes.len() * width];
    for (i, &c) in codes.iter().enumerate() {
        if width > 0 {
            let c = c as usize;
            if c >= width {
                return Err(ModelError::Shape(format!(
                    "batch code {c} at row {i}, the model knows {width} batches"
                )));
            }
            v[i * width + c] = 1.0;
        }
    }
    Ok(tensor_from::<B, 2>(v, [codes.len(), width], device))
}

/// The per-cell ELBO terms of a mini-batch: reconstruction loss −Σ_g log p(x_g) and
/// KL(q(z|x) ‖ N(0, I)), each `[n]`.
pub fn elbo_terms<B: Backend>(
    net: &mut ScviNetwork<B>,
    config: &ModelConfig,
    counts: Tensor<B, 2>,
    batch_codes: &[u32],
    noise: Option<Tensor<B, 2>>,
    pass: Pass,
) -> Result<(Tensor<B, 1>, Tensor<B, 1>)> {
    let [n, _] = counts.dims();
    let device = counts.device();
    let (mean, var) = net.encode(counts.clone(), pass);
    // the reparameterised sample; the posterior mean when no noise is given (for checks)
    let z = match noise {
        Some(eps) => mean.clone().add(var.clone().sqrt().mul(eps)),
        None => mean.clone(),
    };
    let cov = one_hot::<B>(batch_codes, covariate_width(config), &device)?;
    let h = net.decoder.forward(z, Some(&cov), pass);
    let scale = softmax(net.px_scale.forward(h.clone()), 1);
    let library = counts.clone().sum_dim(1);
    let mu = scale.mul(library);
    let log_theta = match config.scvi.dispersion {
        Dispersion::Gene => net.px_r.val(),
        Dispersion::GeneBatch => {
            let rows = net.px_r.val().dims()[0];
            one_hot::<B>(batch_codes, rows, &device)?.matmul(net.px_r.val())
        }
    };
    let theta = log_theta.exp();
    let log_p = match config.scvi.gene_likelihood {
        GeneLikelihood::Nb => log_nb_positive(counts, mu, theta),
        GeneLikelihood::Zinb => {
            let head = net
                .px_dropout
                .as_ref()
                .ok_or_else(|| ModelError::Inconsistent("the ZINB dropout head".into()))?;
            log_zinb_positive(counts, mu, theta, head.forward(h))
        }
        GeneLikelihood::Poisson => log_poisson(counts, mu),
    };
    let reconstruction = log_p.sum_dim(1).reshape([n]).neg();
    Ok((reconstruction, kl_standard_normal(mean, var)))
}

/// scvi-tools' default number of epochs: min(400, round(20000 / cells · 400)), at least 1.
pub fn default_epochs(n_cells: usize) -> usize {
    let e = (20_000.0 / n_cells.max(1) as f64 * 400.0).round() as usize;
    e.clamp(1, 400)
}

/// The KL weight of an epoch: min(1, epoch / warm-up epochs).
pub fn kl_weight(epoch: usize, warmup_epochs: usize) -> f64 {
    if warmup_epochs == 0 {
        1.0
    } else {
        (epoch as f64 / warmup_epochs as f64).min(1.0)
    }
}

/// How scvi-tools trains: its data splitter (a permutation seeded by the run's seed and a
/// per-method `salt`; the first 1 − `train_size` of it held out as the validation set), the
/// last mini-batch kept with 3 cells or more, Adam's ε 0.01, and with `epoch_rule` at most
/// [`default_epochs`]. No validation rule (callers add theirs).
pub(crate) fn scvi_tools_plan(
    training: &TrainConfig,
    n_cells: usize,
    train_size: f64,
    epoch_rule: bool,
    salt: u64,
) -> TrainPlan {
    let n_train = ((train_size * n_cells as f64).ceil() as usize).min(n_cells);
    let mut order: Vec<usize> = (0..n_cells).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(training.seed ^ salt));
    let held_out = order[..n_cells - n_train].to_vec();
    let mut train_cells = order[n_cells - n_train..].to_vec();
    train_cells.sort_unstable();
    let epochs = if epoch_rule {
        training.epochs.min(default_epochs(n_cells))
    } else {
        training.epochs
    };
    TrainPlan {
        epochs,
        train_cells,
        held_out,
        min_last_batch: Some(3),
        adam_epsilon: 0.01,
        validation: None,
    }
}

/// scVI's training state.
pub struct ScviObjective<B: AutodiffBackend> {
    config: ModelConfig,
    kl_weight: f64,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> Objective<B> for ScviObjective<B> {
    type Network = ScviNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, ScviNetwork<B>)> {
        let net = ScviNetwork::new(config, training.seed, device);
        Ok((
            ScviObjective {
                config: config.clone(),
                kl_weight: 0.0,
                backend: PhantomData,
            },
            net,
        ))
    }

    /// The 90/10 split (a seeded permutation; the first 10 % are held out), the epoch rule,
    /// last mini-batches of 3 cells or more kept, Adam's ε 0.01.
    fn plan(config: &ModelConfig, training: &TrainConfig, n_cells: usize) -> Result<TrainPlan> {
        let p = &config.scvi;
        Ok(scvi_tools_plan(
            training,
            n_cells,
            p.train_size,
            p.epoch_rule,
            0x5C71_5911,
        ))
    }

    fn start_epoch(&mut self, epoch: usize, _epochs: usize) -> Option<f64> {
        self.kl_weight = kl_weight(epoch, self.config.scvi.kl_warmup_epochs);
        None
    }

    fn loss(
        &mut self,
        net: &mut ScviNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        let counts = inputs
            .counts
            .ok_or_else(|| ModelError::Inconsistent("scVI's counts".into()))?;
        let codes = inputs
            .batch_codes
            .ok_or_else(|| ModelError::Inconsistent("scVI's batch codes".into()))?;
        let [n, _] = counts.dims();
        let d = self.config.scvi.latent(self.config.hidden_dim);
        let pass = step.pass(0);
        let mut rng = ChaCha8Rng::seed_from_u64(step.pass(1).dropout_seed);
        let eps: Vec<f32> = (0..n * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let noise = Tensor::from_data(TensorData::new(eps, [n, d]), &counts.device());
        let (rec, kl) = elbo_terms(net, &self.config, counts, &codes, Some(noise), pass)?;
        Ok(rec.add(kl.mul_scalar(self.kl_weight)).mean())
    }

    fn export(net: &ScviNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

struct ScviFamily;

impl ObjectiveFamily for ScviFamily {
    type On<B: AutodiffBackend> = ScviObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scvi;

impl Scvi {
    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ScviNetwork<CpuBackend>> {
        let mut net = ScviNetwork::<CpuBackend>::new(config, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl Method for Scvi {
    fn name(&self) -> &'static str {
        "scvi"
    }

    fn summary(&self) -> &'static str {
        "scVI: a variational autoencoder of raw counts with a batch covariate (scvi-tools 1.1)"
    }

    /// scvi-tools' `SCVI.train()` defaults: Adam at lr 1e-3 with weight decay 1e-6, batches
    /// of 128, a constant rate, at most 400 epochs (fewer above 20,000 cells, by the rule).
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 400,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 1e-6,
            schedule: crate::config::LrSchedule::Constant,
            ..TrainConfig::default()
        }
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            counts: true,
            batch_codes: true,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.scvi;
        if config.input_dims.len() != 1 {
            return Err(invalid(
                "data.protein_key",
                "scVI models RNA only; totalVI is the multimodal model",
            ));
        }
        if p.n_latent == Some(0) || (p.n_latent.is_none() && config.hidden_dim == 0) {
            return Err(invalid("model.scvi.n_latent", "must be at least 1"));
        }
        if p.n_layers == 0 {
            return Err(invalid("model.scvi.n_layers", "must be at least 1"));
        }
        if p.n_hidden == 0 {
            return Err(invalid("model.scvi.n_hidden", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&p.dropout_rate) {
            return Err(invalid(
                "model.scvi.dropout_rate",
                "expected a probability in [0, 1)",
            ));
        }
        if !(p.train_size > 0.0 && p.train_size <= 1.0) {
            return Err(invalid(
                "model.scvi.train_size",
                "expected a share in (0, 1]",
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
        fit_objective::<ScviFamily>(config, training, n_cells, source, progress)
    }

    /// The posterior mean (scvi-tools' `get_latent_representation()`), from the counts.
    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let counts = inputs
            .counts
            .ok_or_else(|| ModelError::Shape("scVI embeds raw counts; none were given".into()))?;
        let g = config.input_dims[0];
        if counts.ncols() != g {
            return Err(ModelError::Shape(format!(
                "the counts have {} genes, the model was trained on {g}",
                counts.ncols()
            )));
        }
        check_nonnegative("counts", "scVI", counts)?;
        let mut net = Self::cpu_network(config, tensors)?;
        embed_latent(counts.nrows(), |rows| {
            Ok(net.encode(rows_tensor(counts, rows), Pass::EVAL).0)
        })
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}
