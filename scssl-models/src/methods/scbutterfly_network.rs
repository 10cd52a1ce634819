//! scButterfly-B's networks and losses (methods.md §5.8; `BioX-NKU/scButterfly@eb31e04`,
//! `model_component.py` and `train_model_cite.py`), built from the spec:
//!
//! * [`NetBlock`]: input dropout ("noise", PyTorch dropout, so kept values are scaled by
//!   1/(1−q)), then per layer Linear (Xavier-uniform weight, PyTorch's default bias) → BN →
//!   activation, with dropout p after every layer but the last; BN and the activation are
//!   applied on the output layer too.
//! * the RNA and ADT encoders and decoders, the shared [`Translator`] (per side a mean and a
//!   log-variance head, two output heads `to_rna` / `to_adt` shared by both sides), the two
//!   pre-training [`SingleTranslator`]s and the two discriminators (Linear → BN(1) → sigmoid).
//!
//! Every head is Linear → BN → activation ([`NetLayer`]); activations are LeakyReLU(0.01)
//! except the ADT decoder's output (identity, after its BN) and the discriminators' sigmoid.
//!
//! The losses and the pieces of one training step are in `scbutterfly_losses.rs`, re-exported
//! here.

use std::collections::HashMap;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::layers::{
    BatchNorm1d, Dense, NamedTensor, Pass, dropout, reject_leftovers, tensor_from,
};

/// Negative slope of PyTorch's `nn.LeakyReLU()`.
pub const LEAKY_SLOPE: f64 = 0.01;

/// A layer's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// LeakyReLU with slope 0.01.
    LeakyRelu,
    /// No activation (the ADT decoder's output).
    Identity,
    /// Logistic sigmoid (the discriminators).
    Sigmoid,
}

impl Activation {
    fn code(self) -> usize {
        match self {
            Activation::LeakyRelu => 0,
            Activation::Identity => 1,
            Activation::Sigmoid => 2,
        }
    }

    fn apply<B: Backend>(code: usize, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match code {
            0 => activation::leaky_relu(x, LEAKY_SLOPE),
            2 => activation::sigmoid(x),
            _ => x,
        }
    }
}

/// A pass with the dropout seed of one dropout site (`site` mixed into the pass's seed), so
/// no two dropout layers of a pass share a mask.
pub fn site(pass: Pass, site: u64) -> Pass {
    Pass {
        train: pass.train,
        dropout_seed: mix(pass.dropout_seed, site),
    }
}

/// A 64-bit mix of `a` and `b` (splitmix64's finaliser).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut h = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
}

/// `nn.Linear` followed by `nn.init.xavier_uniform_` on the weight: weight
/// U(±√(6/(in+out))), bias U(±1/√in).
pub fn xavier_dense<B: Backend>(
    d_in: usize,
    d_out: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Dense<B> {
    let wb = (6.0 / (d_in + d_out) as f64).sqrt() as f32;
    let bb = 1.0 / (d_in as f32).sqrt();
    let weight = tensor_from::<B, 2>(uniform(rng, d_in * d_out, wb), [d_in, d_out], device);
    let bias = tensor_from::<B, 1>(uniform(rng, d_out, bb), [d_out], device);
    Dense {
        weight: Param::initialized(ParamId::new(), weight.require_grad()),
        bias: Some(Param::initialized(ParamId::new(), bias.require_grad())),
    }
}

/// Linear (Xavier) → BatchNorm1d (PyTorch defaults) → activation.
#[derive(Module, Debug)]
pub struct NetLayer<B: Backend> {
    /// The linear layer.
    pub linear: Dense<B>,
    /// The BatchNorm after it.
    pub bn: BatchNorm1d<B>,
    /// The activation's code.
    pub act: usize,
}

impl<B: Backend> NetLayer<B> {
    /// A seeded layer.
    pub fn new(
        d_in: usize,
        d_out: usize,
        act: Activation,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        NetLayer {
            linear: xavier_dense(d_in, d_out, rng, device),
            bn: BatchNorm1d::new(d_out, true, device),
            act: act.code(),
        }
    }

    /// Linear → BN → activation.
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let y = self.bn.forward(self.linear.forward(x), pass);
        Activation::apply(self.act, y)
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.linear.export(&format!("{prefix}.linear"), out);
        self.bn.export(&format!("{prefix}.bn"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.linear.import(&format!("{prefix}.linear"), store)?;
        self.bn.import(&format!("{prefix}.bn"), store)
    }
}

/// scButterfly's `NetBlock`: input dropout `noise`, then the layers, with dropout `dropout`
/// after every layer but the last.
#[derive(Module, Debug)]
pub struct NetBlock<B: Backend> {
    /// The layers, in order.
    pub layers: Vec<NetLayer<B>>,
    /// Dropout between layers (p).
    pub dropout: f64,
    /// Dropout on the input (q, the "noise").
    pub noise: f64,
}

impl<B: Backend> NetBlock<B> {
    /// Layers `dims[i] → dims[i+1]` with activations `acts[i]`.
    pub fn new(
        dims: &[usize],
        acts: &[Activation],
        dropout: f64,
        noise: f64,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let layers = dims
            .windows(2)
            .zip(acts)
            .map(|(w, &a)| NetLayer::new(w[0], w[1], a, rng, device))
            .collect();
        NetBlock {
            layers,
            dropout,
            noise,
        }
    }

    /// The block's forward pass; dropout sites are seeded from `pass` (site 0 the input).
    pub fn forward(&mut self, x: Tensor<B, 2>, pass: Pass) -> Tensor<B, 2> {
        let mut x = dropout(x, self.noise, site(pass, 0));
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter_mut().enumerate() {
            x = layer.forward(x, pass);
            if i != last {
                x = dropout(x, self.dropout, site(pass, i as u64 + 1));
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

/// z = μ + ε·exp(ℓ/2) when noise ε is given (training), else μ (test).
fn reparameterise<B: Backend>(
    mu: Tensor<B, 2>,
    logvar: Tensor<B, 2>,
    eps: Option<Tensor<B, 2>>,
) -> Tensor<B, 2> {
    match eps {
        Some(e) => mu.add(e.mul(logvar.div_scalar(2.0).exp())),
        None => mu,
    }
}

/// Which side of the translator an input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The RNA encoder's output.
    Rna,
    /// The ADT encoder's output.
    Adt,
}

/// What the translator gives for one side's input.
#[derive(Debug, Clone)]
pub struct TranslatorOut<B: Backend> {
    /// The `to_rna` head (input of the RNA decoder).
    pub to_rna: Tensor<B, 2>,
    /// The `to_adt` head (input of the ADT decoder).
    pub to_adt: Tensor<B, 2>,
    /// μ of the side.
    pub mu: Tensor<B, 2>,
    /// ℓ, the side's log-variance (after its activation, as the reference).
    pub logvar: Tensor<B, 2>,
}

/// The integrative translator: per side μ and ℓ heads, and output heads shared by both sides.
#[derive(Module, Debug)]
pub struct Translator<B: Backend> {
    /// μ head of the RNA side.
    pub rna_mu: NetLayer<B>,
    /// μ head of the ADT side.
    pub adt_mu: NetLayer<B>,
    /// ℓ head of the RNA side.
    pub rna_logvar: NetLayer<B>,
    /// ℓ head of the ADT side.
    pub adt_logvar: NetLayer<B>,
    /// z → RNA decoder input (shared by both sides).
    pub to_rna: NetLayer<B>,
    /// z → ADT decoder input (shared by both sides).
    pub to_adt: NetLayer<B>,
}

impl<B: Backend> Translator<B> {
    fn new(input: usize, embed: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let l = Activation::LeakyRelu;
        Translator {
            rna_mu: NetLayer::new(input, embed, l, rng, device),
            adt_mu: NetLayer::new(input, embed, l, rng, device),
            rna_logvar: NetLayer::new(input, embed, l, rng, device),
            adt_logvar: NetLayer::new(input, embed, l, rng, device),
            to_rna: NetLayer::new(embed, input, l, rng, device),
            to_adt: NetLayer::new(embed, input, l, rng, device),
        }
    }

    /// μ and ℓ of one side.
    pub fn encode(
        &mut self,
        h: Tensor<B, 2>,
        side: Side,
        pass: Pass,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        match side {
            Side::Rna => (
                self.rna_mu.forward(h.clone(), pass),
                self.rna_logvar.forward(h, pass),
            ),
            Side::Adt => (
                self.adt_mu.forward(h.clone(), pass),
                self.adt_logvar.forward(h, pass),
            ),
        }
    }

    /// Both heads from one side's input; `eps` samples z (training), `None` uses μ (test).
    pub fn forward(
        &mut self,
        h: Tensor<B, 2>,
        side: Side,
        eps: Option<Tensor<B, 2>>,
        pass: Pass,
    ) -> TranslatorOut<B> {
        let (mu, logvar) = self.encode(h, side, pass);
        let z = reparameterise(mu.clone(), logvar.clone(), eps);
        TranslatorOut {
            to_rna: self.to_rna.forward(z.clone(), pass),
            to_adt: self.to_adt.forward(z, pass),
            mu,
            logvar,
        }
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        for (name, l) in self.heads() {
            l.export(&format!("{prefix}.{name}"), out);
        }
    }

    fn heads(&self) -> [(&'static str, &NetLayer<B>); 6] {
        [
            ("rna_mu", &self.rna_mu),
            ("adt_mu", &self.adt_mu),
            ("rna_logvar", &self.rna_logvar),
            ("adt_logvar", &self.adt_logvar),
            ("to_rna", &self.to_rna),
            ("to_adt", &self.to_adt),
        ]
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        for (name, l) in [
            ("rna_mu", &mut self.rna_mu),
            ("adt_mu", &mut self.adt_mu),
            ("rna_logvar", &mut self.rna_logvar),
            ("adt_logvar", &mut self.adt_logvar),
            ("to_rna", &mut self.to_rna),
            ("to_adt", &mut self.to_adt),
        ] {
            l.import(&format!("{prefix}.{name}"), store)?;
        }
        Ok(())
    }
}

/// The pre-training translator of one modality: μ, ℓ and one output head.
#[derive(Module, Debug)]
pub struct SingleTranslator<B: Backend> {
    /// μ head.
    pub mu: NetLayer<B>,
    /// ℓ head.
    pub logvar: NetLayer<B>,
    /// z → decoder input.
    pub out: NetLayer<B>,
}

impl<B: Backend> SingleTranslator<B> {
    fn new(input: usize, embed: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let l = Activation::LeakyRelu;
        SingleTranslator {
            mu: NetLayer::new(input, embed, l, rng, device),
            logvar: NetLayer::new(input, embed, l, rng, device),
            out: NetLayer::new(embed, input, l, rng, device),
        }
    }

    /// (decoder input, μ, ℓ); `eps` samples z, `None` uses μ.
    pub fn forward(
        &mut self,
        h: Tensor<B, 2>,
        eps: Option<Tensor<B, 2>>,
        pass: Pass,
    ) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
        let mu = self.mu.forward(h.clone(), pass);
        let logvar = self.logvar.forward(h, pass);
        let z = reparameterise(mu.clone(), logvar.clone(), eps);
        (self.out.forward(z, pass), mu, logvar)
    }

    fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        self.mu.export(&format!("{prefix}.mu"), out);
        self.logvar.export(&format!("{prefix}.logvar"), out);
        self.out.export(&format!("{prefix}.out"), out);
    }

    fn import(&mut self, prefix: &str, store: &mut HashMap<String, NamedTensor>) -> Result<()> {
        self.mu.import(&format!("{prefix}.mu"), store)?;
        self.logvar.import(&format!("{prefix}.logvar"), store)?;
        self.out.import(&format!("{prefix}.out"), store)
    }
}

/// The widths and rates of a scButterfly network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dims {
    /// RNA features G.
    pub genes: usize,
    /// ADT features P.
    pub proteins: usize,
    /// Hidden width of the RNA encoder and decoder (256).
    pub rna_hidden: usize,
    /// Hidden width of the ADT encoder and decoder (128).
    pub adt_hidden: usize,
    /// Encoder output = translator input width (128).
    pub encoder_dim: usize,
    /// Translator latent width, the embedding's (128).
    pub embed_dim: usize,
    /// Dropout p between layers (0.1).
    pub dropout: f64,
    /// Input dropout of the RNA encoder (0.5).
    pub rna_noise: f64,
    /// Input dropout of the ADT encoder (0).
    pub adt_noise: f64,
}

/// Everything but the discriminators (what the Adam optimisers train).
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    /// E_r: G → rna_hidden → encoder_dim.
    pub rna_encoder: NetBlock<B>,
    /// E_a: P → adt_hidden → encoder_dim.
    pub adt_encoder: NetBlock<B>,
    /// D_r: encoder_dim → rna_hidden → G.
    pub rna_decoder: NetBlock<B>,
    /// D_a: encoder_dim → adt_hidden → P (identity on the output, after its BN).
    pub adt_decoder: NetBlock<B>,
    /// T_r, RNA pre-training.
    pub rna_translator: SingleTranslator<B>,
    /// T_a, ADT pre-training.
    pub adt_translator: SingleTranslator<B>,
    /// T, integrative training.
    pub translator: Translator<B>,
}

/// The two discriminators (trained by SGD).
#[derive(Module, Debug)]
pub struct Discriminators<B: Backend> {
    /// Dis_r: encoder_dim → 1, on RNA-side encoder outputs.
    pub rna: NetBlock<B>,
    /// Dis_a: encoder_dim → 1, on ADT-side encoder outputs.
    pub adt: NetBlock<B>,
}

/// scButterfly-B: the generator and the discriminators.
#[derive(Module, Debug)]
pub struct ScbutterflyNetwork<B: Backend> {
    /// Encoders, decoders, translators.
    pub generator: Generator<B>,
    /// Discriminators.
    pub discriminators: Discriminators<B>,
}

impl<B: Backend> ScbutterflyNetwork<B> {
    /// A freshly initialised network from `seed`.
    pub fn new(d: &Dims, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x5CB7_7E2F));
        let l = Activation::LeakyRelu;
        let rng = &mut rng;
        let generator = Generator {
            rna_encoder: NetBlock::new(
                &[d.genes, d.rna_hidden, d.encoder_dim],
                &[l, l],
                d.dropout,
                d.rna_noise,
                rng,
                device,
            ),
            adt_encoder: NetBlock::new(
                &[d.proteins, d.adt_hidden, d.encoder_dim],
                &[l, l],
                d.dropout,
                d.adt_noise,
                rng,
                device,
            ),
            rna_decoder: NetBlock::new(
                &[d.encoder_dim, d.rna_hidden, d.genes],
                &[l, l],
                d.dropout,
                0.0,
                rng,
                device,
            ),
            adt_decoder: NetBlock::new(
                &[d.encoder_dim, d.adt_hidden, d.proteins],
                &[l, Activation::Identity],
                d.dropout,
                0.0,
                rng,
                device,
            ),
            rna_translator: SingleTranslator::new(d.encoder_dim, d.embed_dim, rng, device),
            adt_translator: SingleTranslator::new(d.encoder_dim, d.embed_dim, rng, device),
            translator: Translator::new(d.encoder_dim, d.embed_dim, rng, device),
        };
        let s = Activation::Sigmoid;
        let discriminators = Discriminators {
            rna: NetBlock::new(&[d.encoder_dim, 1], &[s], 0.0, 0.0, rng, device),
            adt: NetBlock::new(&[d.encoder_dim, 1], &[s], 0.0, 0.0, rng, device),
        };
        ScbutterflyNetwork {
            generator,
            discriminators,
        }
    }

    /// Every tensor with its checkpoint name.
    pub fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        let g = &self.generator;
        g.rna_encoder.export("rna_encoder", &mut out);
        g.adt_encoder.export("adt_encoder", &mut out);
        g.rna_decoder.export("rna_decoder", &mut out);
        g.adt_decoder.export("adt_decoder", &mut out);
        g.rna_translator.export("rna_translator", &mut out);
        g.adt_translator.export("adt_translator", &mut out);
        g.translator.export("translator", &mut out);
        self.discriminators
            .rna
            .export("rna_discriminator", &mut out);
        self.discriminators
            .adt
            .export("adt_discriminator", &mut out);
        out
    }

    /// Loads every tensor by name; a missing, misshapen or unknown tensor is an error.
    pub fn import(&mut self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut store: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let g = &mut self.generator;
        g.rna_encoder.import("rna_encoder", &mut store)?;
        g.adt_encoder.import("adt_encoder", &mut store)?;
        g.rna_decoder.import("rna_decoder", &mut store)?;
        g.adt_decoder.import("adt_decoder", &mut store)?;
        g.rna_translator.import("rna_translator", &mut store)?;
        g.adt_translator.import("adt_translator", &mut store)?;
        g.translator.import("translator", &mut store)?;
        self.discriminators
            .rna
            .import("rna_discriminator", &mut store)?;
        self.discriminators
            .adt
            .import("adt_discriminator", &mut store)?;
        reject_leftovers(&store)
    }
}

// the losses and training-step pieces, at their old paths
pub use super::scbutterfly_losses::*;
