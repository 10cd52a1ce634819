//! scButterfly-B against PyTorch (`conformance/make_scbutterfly_fixtures.py`): the same
//! weights and BatchNorm statistics give the same eval-mode outputs of every encoder, decoder,
//! translator and discriminator (1e-4), and the same losses for given noise and soft labels
//! (1e-5), in eval mode and in train mode (batch statistics, dropout off).

mod common;

use burn::tensor::Tensor;
use common::{array, fixture, transpose};
use scssl_models::methods::scbutterfly_network::{
    Dims, LossWeights, ScbutterflyNetwork, Side, SideNoise, discriminator_loss, generator_loss,
    generator_terms, pretrain_terms,
};
use scssl_models::{CpuBackend, NamedTensor};
use serde_json::Value;

type B = CpuBackend;

struct Fixture {
    json: Value,
}

impl Fixture {
    fn load() -> Fixture {
        Fixture {
            json: fixture("scbutterfly.json"),
        }
    }

    fn size(&self, k: &str) -> usize {
        self.json["sizes"][k].as_u64().unwrap() as usize
    }

    fn dims(&self, dropout: f64, rna_noise: f64) -> Dims {
        Dims {
            genes: self.size("genes"),
            proteins: self.size("proteins"),
            rna_hidden: self.size("rna_hidden"),
            adt_hidden: self.size("adt_hidden"),
            encoder_dim: self.size("encoder_dim"),
            embed_dim: self.size("embed_dim"),
            dropout,
            rna_noise,
            adt_noise: 0.0,
        }
    }

    fn tensors(&self) -> Vec<NamedTensor> {
        self.json["tensors"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, v)| {
                let (data, shape) = array(v);
                let (data, shape) = if name.ends_with("linear.weight") {
                    (
                        transpose(&data, shape[0], shape[1]),
                        vec![shape[1], shape[0]],
                    )
                } else {
                    (data, shape)
                };
                NamedTensor {
                    name: name.clone(),
                    shape,
                    data,
                }
            })
            .collect()
    }

    fn network(&self, dropout: f64, rna_noise: f64) -> ScbutterflyNetwork<B> {
        let mut net =
            ScbutterflyNetwork::<B>::new(&self.dims(dropout, rna_noise), 1, &Default::default());
        net.import(self.tensors()).unwrap();
        net
    }

    fn input(&self, k: &str) -> Tensor<B, 2> {
        let (data, shape) = array(&self.json["inputs"][k]);
        Tensor::from_data(
            burn::tensor::TensorData::new(data, [shape[0], shape[1]]),
            &Default::default(),
        )
    }

    fn noise(&self, which: &str) -> SideNoise<B> {
        SideNoise {
            rna: Some(self.input(&format!("eps_{which}_rna"))),
            adt: Some(self.input(&format!("eps_{which}_adt"))),
        }
    }

    fn labels(&self) -> Vec<f32> {
        array(&self.json["inputs"]["labels"]).0
    }

    fn weights(&self, gate: f64) -> LossWeights {
        let w = &self.json["weights"];
        let f = |k: &str| w[k].as_f64().unwrap();
        LossWeights {
            rna: f("rna"),
            adt: f("adt"),
            discriminator: f("discriminator"),
            kl: f("kl"),
            gate,
        }
    }
}

fn values(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    t.into_data().convert::<f64>().to_vec::<f64>().unwrap()[0]
}

fn max_err(ours: &[f32], golden: &Value) -> f64 {
    let (want, _) = array(golden);
    assert_eq!(ours.len(), want.len());
    ours.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max)
}

#[test]
fn eval_forward_matches_pytorch() {
    let f = Fixture::load();
    let mut net = f.network(0.1, 0.5);
    let g = &mut net.generator;
    let pass = scssl_models::layers::Pass::EVAL;
    let (xr, xa) = (f.input("x_rna"), f.input("x_adt"));
    let hr = g.rna_encoder.forward(xr, pass);
    let ha = g.adt_encoder.forward(xa, pass);
    let tr = g.translator.forward(hr.clone(), Side::Rna, None, pass);
    let ta = g.translator.forward(ha.clone(), Side::Adt, None, pass);
    let (pr, _, _) = g.rna_translator.forward(hr.clone(), None, pass);
    let (pa, _, _) = g.adt_translator.forward(ha.clone(), None, pass);
    let outs: Vec<(&str, Tensor<B, 2>)> = vec![
        ("rna_latent", hr.clone()),
        ("adt_latent", ha.clone()),
        ("mu_rna", tr.mu.clone()),
        ("logvar_rna", tr.logvar.clone()),
        ("mu_adt", ta.mu.clone()),
        ("logvar_adt", ta.logvar.clone()),
        ("rna_to_rna", g.rna_decoder.forward(tr.to_rna.clone(), pass)),
        ("rna_to_adt", g.adt_decoder.forward(tr.to_adt.clone(), pass)),
        ("adt_to_rna", g.rna_decoder.forward(ta.to_rna.clone(), pass)),
        ("adt_to_adt", g.adt_decoder.forward(ta.to_adt.clone(), pass)),
        ("pretrain_rna_to_rna", g.rna_decoder.forward(pr, pass)),
        ("pretrain_adt_to_adt", g.adt_decoder.forward(pa, pass)),
        (
            "discriminator_rna",
            net.discriminators.rna.forward(hr, pass),
        ),
        (
            "discriminator_adt",
            net.discriminators.adt.forward(ha, pass),
        ),
    ];
    let mut worst = 0.0f64;
    for (name, t) in outs {
        let e = max_err(&values(t), &f.json["forward"][name]);
        println!("{name}: max |Δ| = {e:.2e}");
        assert!(e < 1e-4, "{name}: {e}");
        worst = worst.max(e);
    }
    println!("eval forward: max |Δ| = {worst:.2e}");
}

fn check_losses(train: bool) {
    let f = Fixture::load();
    let key = if train { "train_losses" } else { "eval_losses" };
    // dropout is off in train mode (the script sets every p to 0)
    let (p, q) = if train { (0.0, 0.0) } else { (0.1, 0.5) };
    let pass = scssl_models::layers::Pass {
        train,
        dropout_seed: 3,
    };
    let golden = |k: &str| f.json[key][k].as_f64().unwrap();
    let mut got: Vec<(&str, f64)> = Vec::new();
    for (side, x, eps, rec, kl) in [
        (
            Side::Rna,
            "x_rna",
            "eps_pretrain_rna",
            "pretrain_rna_reconstruction",
            "pretrain_rna_kl",
        ),
        (
            Side::Adt,
            "x_adt",
            "eps_pretrain_adt",
            "pretrain_adt_reconstruction",
            "pretrain_adt_kl",
        ),
    ] {
        let mut net = f.network(p, q);
        let (r, k) = pretrain_terms(
            &mut net.generator,
            side,
            f.input(x),
            Some(f.input(eps)),
            pass,
        );
        got.push((rec, scalar(r)));
        got.push((kl, scalar(k)));
    }
    // each loss on a fresh network: train-mode passes update the running statistics, and the
    // script computes every loss from the same statistics
    let mut net = f.network(p, q);
    let ld = discriminator_loss(
        &mut net.generator,
        &mut net.discriminators,
        f.input("x_rna"),
        f.input("x_adt"),
        f.noise("disc"),
        &f.labels(),
        pass,
    );
    let ld_value = scalar(ld.clone());
    got.push(("discriminator", ld_value));
    for (gate, name) in [(1.35, "generator_total"), (2.0, "generator_total_gate_2")] {
        let mut net = f.network(p, q);
        let w = f.weights(gate);
        let t = generator_terms(
            &mut net.generator,
            f.input("x_rna"),
            f.input("x_adt"),
            f.noise("gen"),
            &w,
            pass,
        );
        if gate < 2.0 {
            got.push(("generator_reconstruction", scalar(t.reconstruction.clone())));
            got.push(("generator_kl", scalar(t.kl.clone())));
        }
        got.push((name, scalar(generator_loss(t, ld.clone(), ld_value, &w))));
    }
    let mut worst = 0.0f64;
    for (name, v) in got {
        let e = (v - golden(name)).abs();
        println!("{key}.{name}: {v} vs {} (|Δ| = {e:.2e})", golden(name));
        assert!(e < 1e-5, "{key}.{name}: {v} vs {}", golden(name));
        worst = worst.max(e);
    }
    println!("{key}: max |Δ| = {worst:.2e}");
}

#[test]
fn eval_losses_match_pytorch() {
    check_losses(false);
}

#[test]
fn train_mode_losses_match_pytorch() {
    check_losses(true);
}
