//! SCDC (interpretation): single-cell debiased clustering (Li et al., IEEE TNNLS 2024),
//! methods.md §5.10. **scSSL-Bench's public code does not contain SCDC**; the paper lists it as a
//! baseline without saying how it ran it. Everything below is **the project's interpretation**
//! of the published method, built behind the `scdc` cargo feature (on by default) and reported
//! as "SCDC (interpretation)".
//!
//! The published idea (a public copy of the authors' model code, repository not identified,
//! read for this module): a *batch branch* whose code is shuffled among the cells of the same
//! batch before decoding, so that it can only carry what the cells of a batch share, and a
//! *cluster branch* (feature encoder → Gumbel-softmax cluster head) that must carry the biology.
//!
//! * Feature encoder G → 256 → 64 → 32 (ReLU after each hidden layer, linear output) on the
//!   log-normalised features with input noise x + γ·N(0, 1), γ = 0.1 in training; its 32-d
//!   output z is the embedding (noise-free, at inference).
//! * Cluster head 32 → 32 (ReLU) → K logits; K = `model.scdc.n_clusters`, or the number of
//!   annotated cell types when 0 (the benchmark runner fills it from `data.label_key`).
//!   Gumbel-softmax with the published **annealed temperature** τ = 0.33 + 0.67·(1 − m/K), m =
//!   the number of clusters used (argmax) in the previous epoch (1 before the first); plain
//!   softmax at inference. The spec's fixed τ = 1 is `anneal_temperature = false`.
//! * Batch encoder G → 256 → 64 → 32 (same form) and a batch classifier Linear(32, batches)
//!   trained with cross-entropy (the published classifier is a small MLP; the spec's linear one
//!   is kept).
//! * ZINB decoder d_in → 32 → 64 → 256 (ReLU) → softmax over genes for the mean proportions,
//!   μ = library size · proportions (library = the cell's total count); θ and the
//!   zero-inflation logit π are one free parameter per gene (the spec's choice; the published
//!   decoder predicts them per cell).
//! * Loss per cell, mean over cells; Adam at PyTorch's default lr 1e-3:
//!   w_u·(−log ZINB(x | dec(b ‖ c ‖ z))) − log ZINB(x | dec(b̃ ‖ c ‖ z)) + w_b·CE(classifier(b),
//!   batch) + w_bal·KL(p̄ ‖ uniform), with b̃ the batch codes shuffled among the cells of the
//!   same batch in the mini-batch.
//!
//! **Why the project's defaults differ from the spec's sketch and the published code.** With
//! the published form (w_u = 1, decoder input [b ‖ c], soft Gumbel, w_b = 0.01, no balance
//! term) the simulator showed: the cluster assignments collapse to one or two clusters (one
//! of them the batch), the un-shuffled term lets b carry each cell's own information, and z,
//! which learns only through the K-way cluster head, ends up encoding the batch (cell-type
//! silhouette 0.42–0.46 against 0.50 for a random embedding, batch silhouette 0.6–0.9, worse
//! with more epochs). The project therefore uses, each behind a `model.scdc` switch:
//! * `unshuffled_weight = 0`: only the shuffled term is decoded, so b can help only with what a
//!   batch shares — the published debiasing idea taken strictly;
//! * `decoder_sees_features = true`: the decoder also gets z, so the embedding receives the
//!   reconstruction gradient directly; as b̃ supplies the batch, z need not carry it;
//! * `hard_gumbel = true`: straight-through one-hot assignments (soft gradient);
//! * `balance_weight = 100`: KL of the mini-batch mean cluster probability from uniform, against
//!   the collapse;
//! * `batch_weight = 1`: the batch code learns the batch early, before the feature branch does.
//!
//! Setting `unshuffled_weight = 1, decoder_sees_features = false, hard_gumbel = false,
//! balance_weight = 0, batch_weight = 0.01` gives the published/spec form (with the annealed
//! temperature; `anneal_temperature = false` for the spec's τ = 1).

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::Module;
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{
    BatchNeeds, BatchSource, EmbedInputs, Fitted, Method, Objective, ObjectiveFamily, StepContext,
    StepInputs,
};
use crate::config::{LrSchedule, ModelConfig, OptimizerKind, TrainConfig};
use crate::distributions::log_zinb_positive;
use crate::error::{ModelError, Result, invalid};
use crate::layers::{Dense, NamedTensor, import, reject_leftovers, tensor_from};
use crate::model::{EmbeddingOutput, Embeddings, check_inputs, embed_latent, rows_tensor};
use crate::runtime::{CpuBackend, fit_objective};
use crate::train::TrainEvent;

/// SCDC's settings (`model.scdc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScdcParams {
    /// Number of clusters K; 0 = the number of annotated cell types
    /// ([`ModelConfig::n_cell_types`], which the benchmark fills in from `data.label_key`).
    pub n_clusters: usize,
    /// Hidden widths of both encoders (256, 64).
    pub hidden_units: Vec<usize>,
    /// Width of the feature and batch codes (32).
    pub latent_dim: usize,
    /// Standard deviation γ of the input noise (0.1).
    pub input_noise: f64,
    /// Gumbel-softmax temperature when `anneal_temperature` is off (1, the spec's value).
    pub gumbel_temperature: f64,
    /// Anneal the Gumbel temperature as the published code does (true): τ = 0.33 + 0.67·(1 −
    /// m/K), m = the number of clusters some cell was assigned to (argmax) in the previous
    /// epoch, 1 before the first.
    pub anneal_temperature: bool,
    /// Weight of the batch classifier's cross-entropy (1; the published code and the spec's
    /// sketch use 0.01, too weak for the batch code to learn the batch before the feature
    /// branch does).
    pub batch_weight: f64,
    /// Weight of the un-shuffled reconstruction term ZINB(x | dec(b, …)) (0; the published
    /// code and the spec use 1, which lets b carry every cell's own information).
    pub unshuffled_weight: f64,
    /// Feed the feature code z to the decoder besides [b̃ ‖ c] (true; the published decoder
    /// sees only [c ‖ b], so z learns only through the K-way cluster head).
    pub decoder_sees_features: bool,
    /// Straight-through hard Gumbel-softmax: one-hot forward, soft gradient (true; published:
    /// soft).
    pub hard_gumbel: bool,
    /// Weight of the cluster-balance term KL(p̄ ‖ uniform), p̄ the mini-batch mean of the
    /// (noise-free) cluster probabilities (100; not in the published code, which collapses to
    /// one or two clusters on the simulator).
    pub balance_weight: f64,
}

impl Default for ScdcParams {
    fn default() -> Self {
        ScdcParams {
            n_clusters: 0,
            hidden_units: vec![256, 64],
            latent_dim: 32,
            input_noise: 0.1,
            gumbel_temperature: 1.0,
            anneal_temperature: true,
            batch_weight: 1.0,
            unshuffled_weight: 0.0,
            decoder_sees_features: true,
            hard_gumbel: true,
            balance_weight: 100.0,
        }
    }
}

/// Linear layers with ReLU between them (none after the last).
#[derive(Module, Debug)]
pub struct ReluStack<B: Backend> {
    /// The layers in order.
    pub layers: Vec<Dense<B>>,
}

impl<B: Backend> ReluStack<B> {
    fn new(widths: &[usize], rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        ReluStack {
            layers: widths
                .windows(2)
                .map(|w| Dense::new(w[0], w[1], true, rng, device))
                .collect(),
        }
    }

    /// Applies the layers; `relu_last` also rectifies the output.
    pub fn forward(&self, mut x: Tensor<B, 2>, relu_last: bool) -> Tensor<B, 2> {
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last || relu_last {
                x = relu(x);
            }
        }
        x
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        for (i, l) in self.layers.iter().enumerate() {
            l.export(&format!("{prefix}.{i}"), out);
        }
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.import(&format!("{prefix}.{i}"), store)?;
        }
        Ok(())
    }
}

/// SCDC's networks.
#[derive(Module, Debug)]
pub struct ScdcNetwork<B: Backend> {
    /// G → … → 32: the embedding.
    pub feature_encoder: ReluStack<B>,
    /// 32 → 32 → K cluster logits.
    pub cluster_head: ReluStack<B>,
    /// G → … → 32: the batch code.
    pub batch_encoder: ReluStack<B>,
    /// 32 → batches.
    pub batch_classifier: Dense<B>,
    /// (32 + K) → 32 → 64 → 256 (ReLU), then the mean-proportion layer 256 → G.
    pub decoder: ReluStack<B>,
    /// Per-gene log θ.
    pub log_theta: burn::module::Param<Tensor<B, 1>>,
    /// Per-gene zero-inflation logit π.
    pub dropout_logit: burn::module::Param<Tensor<B, 1>>,
}

impl<B: Backend> ScdcNetwork<B> {
    /// A seeded network for `g` genes and `batches` batches.
    pub fn new(
        config: &ModelConfig,
        g: usize,
        batches: usize,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let p = &config.scdc;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut enc = vec![g];
        enc.extend(&p.hidden_units);
        enc.push(p.latent_dim);
        let k = Scdc::clusters(config).max(1);
        let feature_encoder = ReluStack::new(&enc, &mut rng, device);
        let cluster_head = ReluStack::new(&[p.latent_dim, p.latent_dim, k], &mut rng, device);
        let batch_encoder = ReluStack::new(&enc, &mut rng, device);
        let batch_classifier = Dense::new(p.latent_dim, batches.max(1), true, &mut rng, device);
        let dec_in = p.latent_dim
            + k
            + if p.decoder_sees_features {
                p.latent_dim
            } else {
                0
            };
        let decoder = ReluStack::new(&[dec_in, 32, 64, 256, g], &mut rng, device);
        let param = |v: Vec<f32>| {
            burn::module::Param::initialized(
                burn::module::ParamId::new(),
                tensor_from::<B, 1>(v, [g], device).require_grad(),
            )
        };
        let log_theta = param(
            (0..g)
                .map(|_| rng.sample::<f32, _>(StandardNormal))
                .collect(),
        );
        let dropout_logit = param(vec![0.0; g]);
        ScdcNetwork {
            feature_encoder,
            cluster_head,
            batch_encoder,
            batch_classifier,
            decoder,
            log_theta,
            dropout_logit,
        }
    }

    /// The 32-d embedding of log-normalised features.
    pub fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.feature_encoder.forward(x, false)
    }

    /// Σ_genes log ZINB(counts | dec(code ‖ c)) per cell, `[n, 1]`.
    fn log_likelihood(
        &self,
        code: Tensor<B, 2>,
        clusters: Tensor<B, 2>,
        counts: Tensor<B, 2>,
        library: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let [n, g] = counts.dims();
        let h = self
            .decoder
            .forward(Tensor::cat(vec![code, clusters], 1), false);
        let mu = softmax(h, 1).mul(library);
        let theta = self
            .log_theta
            .val()
            .exp()
            .unsqueeze_dim::<2>(0)
            .expand([n, g]);
        let pi = self
            .dropout_logit
            .val()
            .unsqueeze_dim::<2>(0)
            .expand([n, g]);
        log_zinb_positive(counts, mu, theta, pi).sum_dim(1)
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.feature_encoder.export("feature_encoder", &mut out);
        self.cluster_head.export("cluster_head", &mut out);
        self.batch_encoder.export("batch_encoder", &mut out);
        self.batch_classifier.export("batch_classifier", &mut out);
        self.decoder.export("decoder", &mut out);
        crate::layers::export("log_theta".into(), &self.log_theta, &mut out);
        crate::layers::export("dropout_logit".into(), &self.dropout_logit, &mut out);
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.feature_encoder.import("feature_encoder", &mut store)?;
        self.cluster_head.import("cluster_head", &mut store)?;
        self.batch_encoder.import("batch_encoder", &mut store)?;
        self.batch_classifier
            .import("batch_classifier", &mut store)?;
        self.decoder.import("decoder", &mut store)?;
        import("log_theta".into(), &mut self.log_theta, &mut store)?;
        import("dropout_logit".into(), &mut self.dropout_logit, &mut store)?;
        reject_leftovers(&store)
    }
}

/// Rows of the mini-batch reordered so that each cell takes the batch code of another cell of
/// its own batch (a permutation within every batch), drawn from `rng`.
pub fn shuffle_within_batches(batches: &[u32], rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batches.len()).collect();
    let mut groups: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, &b) in batches.iter().enumerate() {
        groups.entry(b).or_default().push(i);
    }
    let mut keys: Vec<u32> = groups.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let members = &groups[&k];
        let mut shuffled = members.clone();
        shuffled.shuffle(rng);
        for (&i, &j) in members.iter().zip(&shuffled) {
            order[i] = j;
        }
    }
    order
}

/// SCDC's loss on one mini-batch (see the module docs); `rng` draws the input noise, the
/// Gumbel noise and the within-batch shuffle.
pub fn scdc_loss<B: Backend>(
    net: &ScdcNetwork<B>,
    params: &ScdcParams,
    x: Tensor<B, 2>,
    counts: Tensor<B, 2>,
    batches: &[u32],
    temperature: f64,
    rng: &mut ChaCha8Rng,
) -> (Tensor<B, 1>, Vec<usize>) {
    let [n, g] = x.dims();
    let device = x.device();
    let noise: Vec<f32> = (0..n * g)
        .map(|_| (params.input_noise * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect();
    let noisy = x.clone().add(tensor_from::<B, 2>(noise, [n, g], &device));
    let z = net.embed(noisy.clone());
    let logits = net.cluster_head.forward(z.clone(), false);
    let logits_plain = logits.clone();
    let k = logits.dims()[1];
    let gumbel: Vec<f32> = (0..n * k)
        .map(|_| {
            let u: f64 = rng.random_range(1e-10..1.0);
            -(-u.ln()).ln() as f32
        })
        .collect();
    let clusters = softmax(
        logits
            .add(tensor_from::<B, 2>(gumbel, [n, k], &device))
            .div_scalar(temperature),
        1,
    );
    let probs = softmax(logits_plain, 1);
    let [_, k] = probs.dims();
    let mean_p = probs.mean_dim(0);
    // Σ_k p̄_k log(K p̄_k) = KL(p̄ ‖ uniform)
    let balance = mean_p
        .clone()
        .mul(mean_p.clamp_min(1e-8).mul_scalar(k as f64).log())
        .sum()
        .reshape([1]);
    let clusters = if params.hard_gumbel {
        let hard_idx = clusters.clone().argmax(1);
        let hard = clusters.zeros_like().scatter(
            1,
            hard_idx,
            clusters.ones_like().narrow(1, 0, 1),
            burn::tensor::IndexingUpdateOp::Add,
        );
        hard.sub(clusters.clone().detach()).add(clusters)
    } else {
        clusters
    };
    let used: Vec<usize> = clusters
        .clone()
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let clusters = if params.decoder_sees_features {
        Tensor::cat(vec![clusters, z], 1)
    } else {
        clusters
    };
    let b = net.batch_encoder.forward(noisy, false);
    let library = counts.clone().sum_dim(1);
    let ll = net.log_likelihood(b.clone(), clusters.clone(), counts.clone(), library.clone());
    let order: Vec<i64> = shuffle_within_batches(batches, rng)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(order, [n]), &device);
    let shuffled = b.clone().select(0, idx);
    let ll_shuffled = net.log_likelihood(shuffled, clusters, counts, library);
    let reconstruction = ll
        .mul_scalar(params.unshuffled_weight)
        .add(ll_shuffled)
        .neg()
        .mean();
    let n_batches = net.batch_classifier.weight.val().dims()[1];
    let mut onehot = vec![0.0f32; n * n_batches];
    for (i, &c) in batches.iter().enumerate() {
        if (c as usize) < n_batches {
            onehot[i * n_batches + c as usize] = 1.0;
        }
    }
    let log_p = log_softmax(net.batch_classifier.forward(b), 1);
    let ce = log_p
        .mul(tensor_from::<B, 2>(onehot, [n, n_batches], &device))
        .sum_dim(1)
        .neg()
        .mean();
    (
        reconstruction
            .add(ce.mul_scalar(params.batch_weight))
            .add(balance.mul_scalar(params.balance_weight)),
        used,
    )
}

/// SCDC's training state (nothing besides the network).
pub struct ScdcObjective<B: AutodiffBackend> {
    params: ScdcParams,
    k: usize,
    /// Clusters predicted (argmax) in the previous epoch (published: starts at 1).
    predicted: f64,
    seen: Vec<bool>,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> Objective<B> for ScdcObjective<B> {
    type Network = ScdcNetwork<B>;

    fn init(
        config: &ModelConfig,
        training: &TrainConfig,
        device: &B::Device,
    ) -> Result<(Self, ScdcNetwork<B>)> {
        if Scdc::clusters(config) == 0 {
            return Err(invalid(
                "model.scdc.n_clusters",
                "SCDC needs the number of clusters: set it, or give data.label_key so that it is the number of cell types",
            ));
        }
        let net = ScdcNetwork::new(
            config,
            config.input_dims[0],
            config.n_batches,
            training.seed,
            device,
        );
        Ok((
            ScdcObjective {
                params: config.scdc.clone(),
                k: Scdc::clusters(config),
                predicted: 1.0,
                seen: vec![false; Scdc::clusters(config)],
                backend: PhantomData,
            },
            net,
        ))
    }

    fn start_epoch(&mut self, epoch: usize, _epochs: usize) -> Option<f64> {
        if epoch > 0 {
            self.predicted = self.seen.iter().filter(|&&s| s).count() as f64;
        }
        self.seen = vec![false; self.k];
        None
    }

    fn loss(
        &mut self,
        net: &mut ScdcNetwork<B>,
        inputs: StepInputs<B>,
        step: &StepContext,
    ) -> Result<Tensor<B, 1>> {
        let missing = |what: &str| ModelError::Inconsistent(format!("SCDC's {what}"));
        let x = inputs
            .features
            .into_iter()
            .next()
            .ok_or_else(|| missing("features"))?;
        let counts = inputs.counts.ok_or_else(|| missing("counts"))?;
        let batches = inputs.batch_codes.ok_or_else(|| missing("batch codes"))?;
        let mut rng = ChaCha8Rng::seed_from_u64(step.pass(0).dropout_seed);
        let temperature = if self.params.anneal_temperature {
            (1.0 - self.predicted / self.k as f64) * (1.0 - 0.33) + 0.33
        } else {
            self.params.gumbel_temperature
        };
        let (loss, used) = scdc_loss(
            net,
            &self.params,
            x,
            counts,
            &batches,
            temperature,
            &mut rng,
        );
        for u in used {
            if let Some(s) = self.seen.get_mut(u) {
                *s = true;
            }
        }
        Ok(loss)
    }

    fn export(net: &ScdcNetwork<B::InnerBackend>) -> Vec<NamedTensor> {
        net.export()
    }
}

struct ScdcFamily;

impl ObjectiveFamily for ScdcFamily {
    type On<B: AutodiffBackend> = ScdcObjective<B>;
}

/// The registry entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scdc;

impl Scdc {
    /// K: `scdc.n_clusters`, or the number of annotated cell types when it is 0.
    pub fn clusters(config: &ModelConfig) -> usize {
        match config.scdc.n_clusters {
            0 => config.n_cell_types,
            k => k,
        }
    }

    /// The network on the CPU with `tensors` loaded.
    pub fn cpu_network(
        config: &ModelConfig,
        tensors: &[NamedTensor],
    ) -> Result<ScdcNetwork<CpuBackend>> {
        let g = config.input_dims.first().copied().unwrap_or(0);
        let mut net =
            ScdcNetwork::<CpuBackend>::new(config, g, config.n_batches, 0, &Default::default());
        net.import(tensors.to_vec())?;
        Ok(net)
    }
}

impl Method for Scdc {
    fn name(&self) -> &'static str {
        "scdc"
    }

    /// scSSL-Bench's code has no SCDC: its rows say that this is the project's reading.
    fn display_name(&self) -> &'static str {
        "SCDC (interpretation)"
    }

    fn summary(&self) -> &'static str {
        "SCDC (interpretation): debiased clustering with a ZINB decoder and within-batch shuffled batch codes (Li et al. 2024; not in scSSL-Bench's code)"
    }

    /// Adam at PyTorch's default rate 1e-3, batch 256, 100 epochs.
    fn default_training(&self) -> TrainConfig {
        TrainConfig {
            epochs: 100,
            batch_size: 256,
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
            counts: true,
            batch_codes: true,
            ..BatchNeeds::default()
        }
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let p = &config.scdc;
        if config.input_dims.len() > 1 {
            return Err(invalid(
                "data.protein_key",
                "SCDC models RNA only; drop the protein block",
            ));
        }
        if p.latent_dim == 0 || p.hidden_units.contains(&0) {
            return Err(invalid(
                "model.scdc",
                "latent_dim and every hidden width must be at least 1",
            ));
        }
        if !(p.input_noise >= 0.0 && p.input_noise.is_finite()) {
            return Err(invalid("model.scdc.input_noise", "expected a number ≥ 0"));
        }
        if !(p.gumbel_temperature > 0.0 && p.gumbel_temperature.is_finite()) {
            return Err(invalid(
                "model.scdc.gumbel_temperature",
                "expected a positive number",
            ));
        }
        for (key, v) in [
            ("model.scdc.batch_weight", p.batch_weight),
            ("model.scdc.unshuffled_weight", p.unshuffled_weight),
            ("model.scdc.balance_weight", p.balance_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, "expected a number ≥ 0"));
            }
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
        fit_objective::<ScdcFamily>(config, training, n_cells, source, progress)
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
        let x = inputs.features[0];
        embed_latent(n, |rows| Ok(net.embed(rows_tensor(x, rows))))
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        Self::cpu_network(config, tensors).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shuffle_stays_within_each_batch() {
        let batches = [0, 1, 0, 2, 1, 0, 2, 2, 0];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let order = shuffle_within_batches(&batches, &mut rng);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..batches.len()).collect::<Vec<_>>());
        for (i, &j) in order.iter().enumerate() {
            assert_eq!(batches[i], batches[j]);
        }
        assert_ne!(order, (0..batches.len()).collect::<Vec<_>>());
    }

    #[test]
    fn cluster_assignments_sum_to_one() {
        let config = ModelConfig {
            scdc: ScdcParams {
                n_clusters: 3,
                hidden_units: vec![8],
                latent_dim: 4,
                ..ScdcParams::default()
            },
            ..ModelConfig::new(crate::MethodRef::parse("scdc").unwrap(), 6)
        };
        let net = ScdcNetwork::<CpuBackend>::new(&config, 6, 2, 1, &Default::default());
        let x = tensor_from::<CpuBackend, 2>(vec![0.3; 12], [2, 6], &Default::default());
        let p = softmax(net.cluster_head.forward(net.embed(x), false), 1);
        let sums = crate::layers::tensor_values(p.sum_dim(1));
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }
}
