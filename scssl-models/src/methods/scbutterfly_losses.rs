//! scButterfly-B's losses and the pieces of one training step built on the networks of
//! [`super::scbutterfly_network`] (methods.md §5.8; `train_model_cite.py`): PyTorch's MSE, KL and
//! BCE, the soft discriminator labels, the side noise, the translations, the generator and
//! discriminator losses, the pre-training terms and the ADT prediction. Re-exported from
//! `scbutterfly_network`, so their paths are unchanged.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::scbutterfly_network::{Discriminators, Generator, Side, TranslatorOut, site};
use crate::layers::{Pass, tensor_from};

/// PyTorch's `MSELoss()` (mean over every element).
pub fn mse<B: Backend>(pred: Tensor<B, 2>, target: Tensor<B, 2>) -> Tensor<B, 1> {
    pred.sub(target).square().mean()
}

/// KL(q‖N(0, I)) with `kl_mean=True`: −½·mean(1 + ℓ − μ² − e^ℓ) over batch and dimensions.
pub fn kl_mean<B: Backend>(mu: Tensor<B, 2>, logvar: Tensor<B, 2>) -> Tensor<B, 1> {
    logvar
        .clone()
        .add_scalar(1.0)
        .sub(mu.square())
        .sub(logvar.exp())
        .mean()
        .mul_scalar(-0.5)
}

/// PyTorch's `BCELoss()` of probabilities `p` ([n, 1]) against soft labels `y` ([n, 1]), each
/// log clamped at −100 as PyTorch does.
pub fn bce<B: Backend>(p: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 1> {
    let log_p = p.clone().log().clamp_min(-100.0);
    let log_q = p.neg().add_scalar(1.0).log().clamp_min(-100.0);
    y.clone()
        .mul(log_p)
        .add(y.neg().add_scalar(1.0).mul(log_q))
        .mean()
        .neg()
}

/// The soft label of one uniform draw u: u > 0.8 → u; (0.5, 0.8] → 0.8; (0.2, 0.5] → 0.2;
/// ≤ 0.2 → u. A label above 0.5 marks "real" (the modality's own encoder output).
pub fn soft_label(u: f64) -> f64 {
    if u > 0.8 {
        u
    } else if u > 0.5 {
        0.8
    } else if u > 0.2 {
        0.2
    } else {
        u
    }
}

/// The noise of one training forward pass of the integrative translator: ε of the RNA side and
/// of the ADT side (`None`: test mode, z = μ).
#[derive(Debug, Clone)]
pub struct SideNoise<B: Backend> {
    /// ε for the RNA side, [n, embed].
    pub rna: Option<Tensor<B, 2>>,
    /// ε for the ADT side, [n, embed].
    pub adt: Option<Tensor<B, 2>>,
}

impl<B: Backend> SideNoise<B> {
    /// Test mode: no sampling.
    pub fn none() -> Self {
        SideNoise {
            rna: None,
            adt: None,
        }
    }
}

/// The four translations of a paired batch and the posteriors (the reference's
/// `forward_translator` before its losses).
#[derive(Debug, Clone)]
pub struct Translations<B: Backend> {
    /// E_r(x_r).
    pub rna_latent: Tensor<B, 2>,
    /// E_a(x_a).
    pub adt_latent: Tensor<B, 2>,
    /// The translator's outputs from the RNA side (before decoding).
    pub from_rna: TranslatorOut<B>,
    /// The translator's outputs from the ADT side (before decoding).
    pub from_adt: TranslatorOut<B>,
}

/// The encoders and the translator on a paired batch (the generator pass that both
/// `forward_translator` and `forward_discriminator` start with). Pass sites 10–13.
pub fn translate<B: Backend>(
    g: &mut Generator<B>,
    x_rna: Tensor<B, 2>,
    x_adt: Tensor<B, 2>,
    noise: SideNoise<B>,
    pass: Pass,
) -> Translations<B> {
    let rna_latent = g.rna_encoder.forward(x_rna, site(pass, 10));
    let adt_latent = g.adt_encoder.forward(x_adt, site(pass, 11));
    let from_rna = g
        .translator
        .forward(rna_latent.clone(), Side::Rna, noise.rna, site(pass, 12));
    let from_adt = g
        .translator
        .forward(adt_latent.clone(), Side::Adt, noise.adt, site(pass, 13));
    Translations {
        rna_latent,
        adt_latent,
        from_rna,
        from_adt,
    }
}

/// The loss weights of integrative training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossWeights {
    /// Weight of the RNA reconstructions (R→R, A→R): 1.
    pub rna: f64,
    /// Weight of the ADT reconstructions (R→A, A→A): 2.
    pub adt: f64,
    /// Weight of the discriminator loss subtracted from the generator's: 1.
    pub discriminator: f64,
    /// KL weight of this epoch (after the warm-up).
    pub kl: f64,
    /// The generator subtracts the discriminator loss only below this value (1.35).
    pub gate: f64,
}

/// The terms of the generator's loss.
#[derive(Debug, Clone)]
pub struct GeneratorTerms<B: Backend> {
    /// rna·(MSE(R→R) + MSE(A→R)) + adt·(MSE(R→A) + MSE(A→A)) (what early stopping watches).
    pub reconstruction: Tensor<B, 1>,
    /// KL_r + KL_a.
    pub kl: Tensor<B, 1>,
}

/// `forward_translator`: decode the four translations of a paired batch and weigh them.
/// Pass sites 10–17.
pub fn generator_terms<B: Backend>(
    g: &mut Generator<B>,
    x_rna: Tensor<B, 2>,
    x_adt: Tensor<B, 2>,
    noise: SideNoise<B>,
    w: &LossWeights,
    pass: Pass,
) -> GeneratorTerms<B> {
    let t = translate(g, x_rna.clone(), x_adt.clone(), noise, pass);
    let r2r = g.rna_decoder.forward(t.from_rna.to_rna, site(pass, 14));
    let r2a = g.adt_decoder.forward(t.from_rna.to_adt, site(pass, 15));
    let a2r = g.rna_decoder.forward(t.from_adt.to_rna, site(pass, 16));
    let a2a = g.adt_decoder.forward(t.from_adt.to_adt, site(pass, 17));
    let rna = mse(r2r, x_rna.clone()).add(mse(a2r, x_rna));
    let adt = mse(r2a, x_adt.clone()).add(mse(a2a, x_adt));
    GeneratorTerms {
        reconstruction: rna.mul_scalar(w.rna).add(adt.mul_scalar(w.adt)),
        kl: kl_mean(t.from_rna.mu, t.from_rna.logvar)
            .add(kl_mean(t.from_adt.mu, t.from_adt.logvar)),
    }
}

/// The generator's loss: `kl`·KL + reconstruction, minus `discriminator`·L_d when L_d (its
/// value, `ld_value`) is below the gate.
pub fn generator_loss<B: Backend>(
    terms: GeneratorTerms<B>,
    ld: Tensor<B, 1>,
    ld_value: f64,
    w: &LossWeights,
) -> Tensor<B, 1> {
    let loss = terms.kl.mul_scalar(w.kl).add(terms.reconstruction);
    if ld_value < w.gate {
        loss.sub(ld.mul_scalar(w.discriminator))
    } else {
        loss
    }
}

/// `forward_discriminator`: per cell, Dis_a sees E_a(x_a) when its soft label is above 0.5,
/// else to_a(T(E_r x_r)); Dis_r mirrors it; the loss is BCE(Dis_a) + BCE(Dis_r) against the
/// labels. Pass sites 10–13 (the generator) and 20–21 (the discriminators).
pub fn discriminator_loss<B: Backend>(
    g: &mut Generator<B>,
    d: &mut Discriminators<B>,
    x_rna: Tensor<B, 2>,
    x_adt: Tensor<B, 2>,
    noise: SideNoise<B>,
    labels: &[f32],
    pass: Pass,
) -> Tensor<B, 1> {
    let device = x_rna.device();
    let n = labels.len();
    let t = translate(g, x_rna, x_adt, noise, pass);
    let real: Vec<f32> = labels
        .iter()
        .map(|&l| f32::from(u8::from(l > 0.5)))
        .collect();
    let real = tensor_from::<B, 2>(real, [n, 1], &device);
    let fake = real.clone().neg().add_scalar(1.0);
    let y = tensor_from::<B, 2>(labels.to_vec(), [n, 1], &device);
    let input_adt = t
        .adt_latent
        .mul(real.clone())
        .add(t.from_rna.to_adt.mul(fake.clone()));
    let input_rna = t.rna_latent.mul(real).add(t.from_adt.to_rna.mul(fake));
    let p_adt = d.adt.forward(input_adt, site(pass, 20));
    let p_rna = d.rna.forward(input_rna, site(pass, 21));
    bce(p_adt, y.clone()).add(bce(p_rna, y))
}

/// The pre-training terms of one modality (`forward_R2R` / `forward_A2A`): the reconstruction
/// MSE through the modality's own encoder, pre-training translator and decoder, and its KL.
/// Pass sites 30–31.
pub fn pretrain_terms<B: Backend>(
    g: &mut Generator<B>,
    side: Side,
    x: Tensor<B, 2>,
    eps: Option<Tensor<B, 2>>,
    pass: Pass,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let (encoder, translator, decoder) = match side {
        Side::Rna => (
            &mut g.rna_encoder,
            &mut g.rna_translator,
            &mut g.rna_decoder,
        ),
        Side::Adt => (
            &mut g.adt_encoder,
            &mut g.adt_translator,
            &mut g.adt_decoder,
        ),
    };
    let h = encoder.forward(x.clone(), site(pass, 30));
    let (out, mu, logvar) = translator.forward(h, eps, pass);
    let pred = decoder.forward(out, site(pass, 31));
    (mse(pred, x), kl_mean(mu, logvar))
}

/// R→ADT in test mode: D_a(to_a(μ_r(E_r x_r))), before the reference's zero-clipping.
pub fn predict_adt<B: Backend>(g: &mut Generator<B>, x_rna: Tensor<B, 2>) -> Tensor<B, 2> {
    let pass = Pass::EVAL;
    let h = g.rna_encoder.forward(x_rna, pass);
    let t = g.translator.forward(h, Side::Rna, None, pass);
    g.adt_decoder.forward(t.to_adt, pass)
}
