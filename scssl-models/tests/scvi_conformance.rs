//! scVI against scvi-tools 1.1.6 (goldens by `conformance/make_scvi_fixtures.py`; the float64
//! likelihood checks are in `likelihood_conformance.rs`): the number of trained parameters of
//! the benchmark's and the default architecture, and a small model trained by scvi-tools,
//! loaded into scssl's network, giving the same ELBO terms and posterior means to 1e-4.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{array, fixture, map_tensor};
use scssl_models::layers::Pass;
use scssl_models::methods::scvi::{Scvi, ScviNetwork, elbo_terms};
use scssl_models::{
    CpuBackend, EmbedInputs, EmbeddingOutput, GeneLikelihood, Method, MethodRef, ModelConfig,
    NamedTensor, ScviParams,
};
use serde_json::Value;

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            items.iter().flat_map(flat).collect()
        }
        _ => serde_json::from_value(v.clone()).unwrap(),
    }
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn parameter_counts_equal_scvi_tools() {
    let g = fixture("scvi.json");
    let pc = &g["parameter_counts"];
    let genes = pc["genes"].as_u64().unwrap() as usize;
    let batches = pc["batches"].as_u64().unwrap() as usize;
    for (name, n_layers, latent, likelihood) in [
        ("benchmark", 8, 30, GeneLikelihood::Nb),
        ("default", 1, 10, GeneLikelihood::Zinb),
    ] {
        let cfg = ModelConfig {
            hidden_dim: latent,
            n_batches: batches,
            scvi: ScviParams {
                n_layers,
                gene_likelihood: likelihood,
                ..ScviParams::default()
            },
            ..ModelConfig::new(MethodRef::parse("scvi").unwrap(), genes)
        };
        let net = ScviNetwork::<CpuBackend>::new(&cfg, 0, &Default::default());
        let want = pc[name]["n_parameters"].as_u64().unwrap()
            - pc[name]["n_unused_heads"].as_u64().unwrap();
        assert_eq!(net.n_parameters() as u64, want, "{name}");
    }
}

/// scvi-tools' module names → scssl's (the library encoder and `px_r_decoder`, unused with
/// these settings, are not built by scssl).
const MODULES: &[(&str, &str)] = &[
    ("z_encoder.encoder", "encoder"),
    ("z_encoder.mean_encoder", "z_mean"),
    ("z_encoder.var_encoder", "z_var"),
    ("decoder.px_decoder", "decoder"),
    ("decoder.px_scale_decoder", "px_scale"),
    ("decoder.px_dropout_decoder", "px_dropout"),
];

#[test]
fn a_model_trained_by_scvi_tools_gives_the_same_terms_and_latent_means() {
    let g = fixture("scvi.json");
    let f = &g["trained_scvi"];
    let (x, xs) = array(&f["x"]);
    let codes: Vec<u32> = serde_json::from_value(f["batch"].clone()).unwrap();
    let s = &f["settings"];
    let cfg = ModelConfig {
        hidden_dim: s["n_latent"].as_u64().unwrap() as usize,
        n_batches: 2,
        scvi: ScviParams {
            n_hidden: s["n_hidden"].as_u64().unwrap() as usize,
            n_layers: s["n_layers"].as_u64().unwrap() as usize,
            gene_likelihood: GeneLikelihood::Zinb,
            ..ScviParams::default()
        },
        ..ModelConfig::new(MethodRef::parse("scvi").unwrap(), xs[1])
    };
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (k, v) in f["state_dict"].as_object().unwrap() {
        if k == "px_r" {
            let (data, shape) = array(v);
            tensors.push(NamedTensor {
                name: "px_r".into(),
                shape: vec![1, shape[0]],
                data,
            });
        } else {
            tensors.extend(map_tensor(k, v, MODULES));
        }
    }
    let mut net = Scvi::cpu_network(&cfg, &tensors).unwrap();
    let xt = Tensor::<CpuBackend, 2>::from_data(
        TensorData::new(x.clone(), [xs[0], xs[1]]),
        &Default::default(),
    );
    let (rec, kl) = elbo_terms(&mut net, &cfg, xt, &codes, None, Pass::EVAL).unwrap();
    let v =
        |t: Tensor<CpuBackend, 1>| -> Vec<f64> { t.into_data().convert::<f64>().to_vec().unwrap() };
    close(&v(rec), &flat(&f["reconstruction"]), 1e-4, "reconstruction");
    close(&v(kl), &flat(&f["kl"]), 1e-4, "kl");
    let xa = ndarray::Array2::from_shape_vec((xs[0], xs[1]), x).unwrap();
    let emb = Scvi
        .embed(
            &cfg,
            &tensors,
            &EmbedInputs {
                features: Vec::new(),
                counts: Some(xa.view()),
                batch_codes: Some(&codes),
            },
            EmbeddingOutput::Backbone,
        )
        .unwrap();
    let got: Vec<f64> = emb.joint.iter().map(|&v| v as f64).collect();
    close(&got, &flat(&f["latent_mean"]), 1e-4, "latent means");
}
