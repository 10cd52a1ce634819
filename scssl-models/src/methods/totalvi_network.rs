//! totalVI's networks (scvi-tools 1.1 `EncoderTOTALVI`, `DecoderTOTALVI` and the priors of
//! `TOTALVAE`) and its per-cell loss terms; the training objective and the registry entry are
//! in [`super::totalvi`].

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::scvi::{FcLayers, covariate_width, one_hot};
use crate::config::{Dispersion, GeneLikelihood, ModelConfig};
use crate::distributions::{
    kl_normal, kl_standard_normal, log_mixture_nb, log_nb_positive, log_zinb_positive,
};
use crate::error::Result;
use crate::layers::{Dense, NamedTensor, Pass, export, import, reject_leftovers, tensor_from};

const VAR_EPS: f64 = 1e-4;

/// totalVI's networks and priors.
#[derive(Module, Debug)]
pub struct TotalviNetwork<B: Backend> {
    /// Encoder of log1p(genes ⧺ proteins).
    pub encoder: FcLayers<B>,
    /// Posterior mean head.
    pub z_mean: Dense<B>,
    /// Posterior log-variance head.
    pub z_var: Dense<B>,
    /// scvi-tools' library encoder (built, unused with the observed library size).
    pub l_encoder: FcLayers<B>,
    /// Its mean head (unused).
    pub l_mean: Dense<B>,
    /// Its variance head (unused).
    pub l_var: Dense<B>,
    /// Gene decoder.
    pub px_decoder: FcLayers<B>,
    /// Gene-scale head.
    pub px_scale: Dense<B>,
    /// Protein-background decoder.
    pub py_back_decoder: FcLayers<B>,
    /// Background log-rate mean head.
    pub py_back_alpha: Dense<B>,
    /// Background log-rate log-scale head.
    pub py_back_beta: Dense<B>,
    /// Protein-foreground decoder.
    pub py_fore_decoder: FcLayers<B>,
    /// Foreground factor head (ReLU).
    pub py_fore_scale: Dense<B>,
    /// Mixing decoder.
    pub sigmoid_decoder: FcLayers<B>,
    /// Zero-inflation logits head (used with ZINB genes).
    pub px_dropout: Dense<B>,
    /// Background-mixing logits head.
    pub py_background: Dense<B>,
    /// log θ of the genes: `[1, genes]` or `[batches, genes]`.
    pub px_r: Param<Tensor<B, 2>>,
    /// log θ of the proteins, `[1, proteins]`.
    pub py_r: Param<Tensor<B, 2>>,
    /// Prior mean of the background log-rate, `[batches, proteins]`.
    pub background_alpha: Param<Tensor<B, 2>>,
    /// Log prior scale of the background log-rate, `[batches, proteins]`.
    pub background_log_beta: Param<Tensor<B, 2>>,
}

/// The decoder's outputs for a mini-batch.
#[derive(Debug, Clone)]
pub struct Decoded<B: Backend> {
    /// NB mean of the genes (library × scale).
    pub rate: Tensor<B, 2>,
    /// ZI logits of the genes.
    pub px_dropout: Tensor<B, 2>,
    /// Posterior mean of the background log-rate.
    pub back_alpha: Tensor<B, 2>,
    /// Its scale.
    pub back_beta: Tensor<B, 2>,
    /// Background rate.
    pub rate_back: Tensor<B, 2>,
    /// Foreground rate.
    pub rate_fore: Tensor<B, 2>,
    /// Logits of the background component.
    pub mixing: Tensor<B, 2>,
}

/// The per-cell terms of totalVI's loss, each `[n]`.
#[derive(Debug, Clone)]
pub struct ElboTerms<B: Backend> {
    /// −Σ_g log p(x_g).
    pub reconstruction_genes: Tensor<B, 1>,
    /// −Σ_p log p(y_p).
    pub reconstruction_proteins: Tensor<B, 1>,
    /// KL(q(z) ‖ N(0, I)).
    pub kl_z: Tensor<B, 1>,
    /// Σ_p KL(q(background) ‖ its prior).
    pub kl_background: Tensor<B, 1>,
}

fn param<B: Backend>(v: Vec<f32>, shape: [usize; 2], device: &B::Device) -> Param<Tensor<B, 2>> {
    Param::initialized(
        ParamId::new(),
        tensor_from::<B, 2>(v, shape, device).require_grad(),
    )
}

/// Rows of the per-batch parameters (at least one).
pub(crate) fn rows(config: &ModelConfig) -> usize {
    config.n_batches.max(1)
}

/// Width of the encoder's batch one-hot (0 without `encode_covariates` or with one batch).
pub(crate) fn encoder_covariates(config: &ModelConfig) -> usize {
    if config.totalvi.encode_covariates {
        covariate_width(config)
    } else {
        0
    }
}

/// One-hot rows for `codes`; a code at or beyond `width` (a batch training never saw) gets the
/// mean one-hot (1/width everywhere). Empty when `width` is 0.
pub(crate) fn covariates_lenient<B: Backend>(
    codes: &[u32],
    width: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut v = vec![0.0f32; codes.len() * width];
    for (i, &c) in codes.iter().enumerate() {
        let row = &mut v[i * width..(i + 1) * width];
        match row.get_mut(c as usize) {
            Some(x) => *x = 1.0,
            None => row.iter_mut().for_each(|x| *x = 1.0 / width as f32),
        }
    }
    tensor_from::<B, 2>(v, [codes.len(), width], device)
}

fn with_cov<B: Backend>(parts: Vec<Tensor<B, 2>>, cov: &Tensor<B, 2>) -> Tensor<B, 2> {
    let mut parts = parts;
    if cov.dims()[1] > 0 {
        parts.push(cov.clone());
    }
    Tensor::cat(parts, 1)
}

fn sub_pass(pass: Pass, k: u64) -> Pass {
    Pass {
        dropout_seed: pass.dropout_seed ^ 0xA076_1D64_78BD_642Fu64.wrapping_mul(k + 1),
        ..pass
    }
}

impl<B: Backend> TotalviNetwork<B> {
    /// A seeded network; `prior` is the empirical background prior (mean, scale per batch).
    pub fn new(
        config: &ModelConfig,
        prior: Option<(&[f64], &[f64])>,
        seed: u64,
        device: &B::Device,
    ) -> Self {
        let p = &config.totalvi;
        let (g, np) = (config.input_dims[0], config.input_dims[1]);
        let (d, h) = (p.n_latent, p.n_hidden);
        let n_cov = covariate_width(config);
        let enc_cov = encoder_covariates(config);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dr = p.dropout_rate;
        let enc = |n_layers, rng: &mut ChaCha8Rng| {
            FcLayers::new(g + np, h, n_layers, enc_cov, dr, rng, device)
        };
        let encoder = enc(p.n_layers_encoder, &mut rng);
        let z_mean = Dense::new(h, d, true, &mut rng, device);
        let z_var = Dense::new(h, d, true, &mut rng, device);
        let l_encoder = enc(1, &mut rng);
        let l_mean = Dense::new(h, 1, true, &mut rng, device);
        let l_var = Dense::new(h, 1, true, &mut rng, device);
        let dec =
            |rng: &mut ChaCha8Rng| FcLayers::new(d, h, p.n_layers_decoder, n_cov, dr, rng, device);
        let head = |out, rng: &mut ChaCha8Rng| Dense::new(h + d + n_cov, out, true, rng, device);
        let px_decoder = dec(&mut rng);
        let px_scale = head(g, &mut rng);
        let py_back_decoder = dec(&mut rng);
        let py_back_alpha = head(np, &mut rng);
        let py_back_beta = head(np, &mut rng);
        let py_fore_decoder = dec(&mut rng);
        let py_fore_scale = head(np, &mut rng);
        let sigmoid_decoder = dec(&mut rng);
        let px_dropout = head(g, &mut rng);
        let py_background = head(np, &mut rng);
        let px_rows = match p.gene_dispersion {
            Dispersion::Gene => 1,
            Dispersion::GeneBatch => rows(config),
        };
        let normal = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
            (0..n).map(|_| StandardNormal.sample(rng)).collect()
        };
        let px_r = param(normal(px_rows * g, &mut rng), [px_rows, g], device);
        let py: Vec<f32> = (0..np).map(|_| 2.0 * rng.random::<f32>()).collect();
        let py_r = param(py, [1, np], device);
        let b = rows(config);
        let (alpha, log_beta) = match prior {
            Some((mean, scale)) => {
                let a = (0..b * np).map(|i| mean[i / np] as f32).collect();
                let lb = (0..b * np).map(|i| (scale[i / np] as f32).ln()).collect();
                (a, lb)
            }
            None => {
                let a = normal(b * np, &mut rng);
                let lb = normal(b * np, &mut rng)
                    .into_iter()
                    .map(|v| v.clamp(-10.0, 1.0))
                    .collect();
                (a, lb)
            }
        };
        TotalviNetwork {
            encoder,
            z_mean,
            z_var,
            l_encoder,
            l_mean,
            l_var,
            px_decoder,
            px_scale,
            py_back_decoder,
            py_back_alpha,
            py_back_beta,
            py_fore_decoder,
            py_fore_scale,
            sigmoid_decoder,
            px_dropout,
            py_background,
            px_r,
            py_r,
            background_alpha: param(alpha, [b, np], device),
            background_log_beta: param(log_beta, [b, np], device),
        }
    }

    /// Posterior mean and variance of z for raw gene counts `x` and protein counts `y`, with
    /// the encoder's covariates `cov` (`[n, 0]` without).
    pub fn encode(
        &mut self,
        x: Tensor<B, 2>,
        y: Tensor<B, 2>,
        cov: &Tensor<B, 2>,
        pass: Pass,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let input = Tensor::cat(vec![x.log1p(), y.log1p()], 1);
        let cov = (cov.dims()[1] > 0).then_some(cov);
        let h = self.encoder.forward(input, cov, sub_pass(pass, 0));
        let mean = self.z_mean.forward(h.clone());
        let var = self.z_var.forward(h).exp().add_scalar(VAR_EPS);
        (mean, var)
    }

    /// The decoder on `z` with covariates `cov`; `back_noise` draws the background log-rate
    /// (`None`: its mean).
    pub fn decode(
        &mut self,
        z: Tensor<B, 2>,
        library: Tensor<B, 2>,
        cov: &Tensor<B, 2>,
        back_noise: Option<Tensor<B, 2>>,
        pass: Pass,
    ) -> Decoded<B> {
        let c = (cov.dims()[1] > 0).then_some(cov);
        let px = self.px_decoder.forward(z.clone(), c, sub_pass(pass, 1));
        let scale = softmax(self.px_scale.forward(with_cov(vec![px, z.clone()], cov)), 1);
        let back = self
            .py_back_decoder
            .forward(z.clone(), c, sub_pass(pass, 2));
        let back_in = with_cov(vec![back, z.clone()], cov);
        let back_alpha = self.py_back_alpha.forward(back_in.clone());
        let back_beta = self.py_back_beta.forward(back_in).exp();
        let log_back = match back_noise {
            Some(eps) => back_alpha.clone().add(back_beta.clone().mul(eps)),
            None => back_alpha.clone(),
        };
        let rate_back = log_back.exp();
        let fore = self
            .py_fore_decoder
            .forward(z.clone(), c, sub_pass(pass, 3));
        let fore_scale = relu(
            self.py_fore_scale
                .forward(with_cov(vec![fore, z.clone()], cov)),
        )
        .add_scalar(1.0 + 1e-8);
        let rate_fore = rate_back.clone().mul(fore_scale);
        let mix = self
            .sigmoid_decoder
            .forward(z.clone(), c, sub_pass(pass, 4));
        let mix_in = with_cov(vec![mix, z], cov);
        Decoded {
            rate: scale.mul(library),
            px_dropout: self.px_dropout.forward(mix_in.clone()),
            back_alpha,
            back_beta,
            rate_back,
            rate_fore,
            mixing: self.py_background.forward(mix_in),
        }
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.encoder.export("encoder", &mut out);
        self.z_mean.export("z_mean", &mut out);
        self.z_var.export("z_var", &mut out);
        self.l_encoder.export("l_encoder", &mut out);
        self.l_mean.export("l_mean", &mut out);
        self.l_var.export("l_var", &mut out);
        for (name, fc) in [
            ("px_decoder", &self.px_decoder),
            ("py_back_decoder", &self.py_back_decoder),
            ("py_fore_decoder", &self.py_fore_decoder),
            ("sigmoid_decoder", &self.sigmoid_decoder),
        ] {
            fc.export(name, &mut out);
        }
        for (name, d) in [
            ("px_scale", &self.px_scale),
            ("py_back_alpha", &self.py_back_alpha),
            ("py_back_beta", &self.py_back_beta),
            ("py_fore_scale", &self.py_fore_scale),
            ("px_dropout", &self.px_dropout),
            ("py_background", &self.py_background),
        ] {
            d.export(name, &mut out);
        }
        for (name, p) in [
            ("px_r", &self.px_r),
            ("py_r", &self.py_r),
            ("background_alpha", &self.background_alpha),
            ("background_log_beta", &self.background_log_beta),
        ] {
            export(name.into(), p, &mut out);
        }
        out
    }

    /// Loads every tensor by name; missing, extra or mis-shaped tensors are errors.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.encoder.import("encoder", &mut store)?;
        self.z_mean.import("z_mean", &mut store)?;
        self.z_var.import("z_var", &mut store)?;
        self.l_encoder.import("l_encoder", &mut store)?;
        self.l_mean.import("l_mean", &mut store)?;
        self.l_var.import("l_var", &mut store)?;
        self.px_decoder.import("px_decoder", &mut store)?;
        self.py_back_decoder.import("py_back_decoder", &mut store)?;
        self.py_fore_decoder.import("py_fore_decoder", &mut store)?;
        self.sigmoid_decoder.import("sigmoid_decoder", &mut store)?;
        self.px_scale.import("px_scale", &mut store)?;
        self.py_back_alpha.import("py_back_alpha", &mut store)?;
        self.py_back_beta.import("py_back_beta", &mut store)?;
        self.py_fore_scale.import("py_fore_scale", &mut store)?;
        self.px_dropout.import("px_dropout", &mut store)?;
        self.py_background.import("py_background", &mut store)?;
        import("px_r".into(), &mut self.px_r, &mut store)?;
        import("py_r".into(), &mut self.py_r, &mut store)?;
        import(
            "background_alpha".into(),
            &mut self.background_alpha,
            &mut store,
        )?;
        import(
            "background_log_beta".into(),
            &mut self.background_log_beta,
            &mut store,
        )?;
        reject_leftovers(&store)
    }

    /// The number of trained parameters (BatchNorm running statistics excluded), as
    /// scvi-tools counts `module.parameters()`.
    pub fn n_parameters(&self) -> usize {
        self.export()
            .iter()
            .filter(|t| !t.name.contains("running_"))
            .map(|t| t.data.len())
            .sum()
    }
}

/// The per-cell loss terms for counts `x`, proteins `y` and batch `codes`; `noise` holds the
/// z and background draws (`None`: posterior means, for checks).
pub fn elbo_terms<B: Backend>(
    net: &mut TotalviNetwork<B>,
    config: &ModelConfig,
    x: Tensor<B, 2>,
    y: Tensor<B, 2>,
    codes: &[u32],
    noise: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    pass: Pass,
) -> Result<ElboTerms<B>> {
    let [n, _] = x.dims();
    let device = x.device();
    let enc_cov = one_hot::<B>(codes, encoder_covariates(config), &device)?;
    let cov = one_hot::<B>(codes, covariate_width(config), &device)?;
    let (mean, var) = net.encode(x.clone(), y.clone(), &enc_cov, pass);
    let (z, back_noise) = match noise {
        Some((ez, eb)) => (mean.clone().add(var.clone().sqrt().mul(ez)), Some(eb)),
        None => (mean.clone(), None),
    };
    let library = x.clone().sum_dim(1);
    let dec = net.decode(z, library, &cov, back_noise, pass);
    let batches = one_hot::<B>(codes, rows(config), &device)?;
    let log_theta = match config.totalvi.gene_dispersion {
        Dispersion::Gene => net.px_r.val(),
        Dispersion::GeneBatch => batches.clone().matmul(net.px_r.val()),
    };
    let theta = log_theta.exp();
    let log_px = match config.totalvi.gene_likelihood {
        GeneLikelihood::Zinb => log_zinb_positive(x, dec.rate, theta, dec.px_dropout),
        _ => log_nb_positive(x, dec.rate, theta),
    };
    let np = y.dims()[1];
    let py_theta = net.py_r.val().exp().expand([n, np]);
    let log_py = log_mixture_nb(y, dec.rate_back, dec.rate_fore, py_theta, dec.mixing);
    let prior_alpha = batches.clone().matmul(net.background_alpha.val());
    let prior_beta = batches.matmul(net.background_log_beta.val().exp());
    let kl_back = kl_normal(dec.back_alpha, dec.back_beta, prior_alpha, prior_beta);
    Ok(ElboTerms {
        reconstruction_genes: log_px.sum_dim(1).reshape([n]).neg(),
        reconstruction_proteins: log_py.sum_dim(1).reshape([n]).neg(),
        kl_z: kl_standard_normal(mean, var),
        kl_background: kl_back.sum_dim(1).reshape([n]),
    })
}
