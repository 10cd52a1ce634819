//! totalVI against scvi-tools 1.1.6 (goldens by `conformance/make_scvi_fixtures.py`; the
//! float64 likelihood checks are in `likelihood_conformance.rs`): the parameter counts of `TOTALVI` for a fixed data shape, and a small model trained by scvi-tools loaded
//! into scssl's network: the same ELBO terms and posterior means to 1e-4.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{array, fixture, map_tensor};
use scssl_models::layers::Pass;
use scssl_models::methods::totalvi::{Totalvi, TotalviNetwork, elbo_terms};
use scssl_models::{
    CpuBackend, Dispersion, EmbedInputs, EmbeddingOutput, Method, MethodRef, ModelConfig,
    NamedTensor, TotalviParams,
};
use serde_json::Value;

fn flat64(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            items.iter().flat_map(flat64).collect()
        }
        Value::Array(items) => items.iter().map(|x| x.as_f64().unwrap()).collect(),
        other => vec![other.as_f64().unwrap()],
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

fn config(genes: usize, proteins: usize, batches: usize, p: TotalviParams) -> ModelConfig {
    ModelConfig {
        input_dims: vec![genes, proteins],
        n_batches: batches,
        totalvi: p,
        ..ModelConfig::new(MethodRef::parse("totalvi").unwrap(), genes)
    }
}

#[test]
fn parameter_counts_equal_scvi_tools() {
    let g = fixture("totalvi.json");
    let pc = &g["parameter_counts"];
    let n = |k: &str| pc[k].as_u64().unwrap() as usize;
    for (name, p) in [
        ("default", TotalviParams::default()),
        (
            "gene_batch",
            TotalviParams {
                gene_dispersion: Dispersion::GeneBatch,
                n_latent: 10,
                ..TotalviParams::default()
            },
        ),
    ] {
        let cfg = config(n("genes"), n("proteins"), n("batches"), p);
        let net = TotalviNetwork::<CpuBackend>::new(&cfg, None, 0, &Default::default());
        assert_eq!(
            net.n_parameters() as u64,
            pc[name]["n_parameters"].as_u64().unwrap(),
            "{name}"
        );
    }
}

/// scvi-tools' module names → scssl's.
const MODULES: &[(&str, &str)] = &[
    ("encoder.encoder", "encoder"),
    ("encoder.z_mean_encoder", "z_mean"),
    ("encoder.z_var_encoder", "z_var"),
    ("encoder.l_gene_encoder", "l_encoder"),
    ("encoder.l_gene_mean_encoder", "l_mean"),
    ("encoder.l_gene_var_encoder", "l_var"),
    ("decoder.px_decoder", "px_decoder"),
    ("decoder.px_scale_decoder", "px_scale"),
    ("decoder.py_back_decoder", "py_back_decoder"),
    ("decoder.py_back_mean_log_alpha", "py_back_alpha"),
    ("decoder.py_back_mean_log_beta", "py_back_beta"),
    ("decoder.py_fore_decoder", "py_fore_decoder"),
    ("decoder.py_fore_scale_decoder", "py_fore_scale"),
    ("decoder.sigmoid_decoder", "sigmoid_decoder"),
    ("decoder.px_dropout_decoder_gene", "px_dropout"),
    ("decoder.py_background_decoder", "py_background"),
];

fn import_state_dict(sd: &serde_json::Map<String, Value>) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    for (k, v) in sd {
        let (data, shape) = array(v);
        match k.as_str() {
            "px_r" | "py_r" => out.push(NamedTensor {
                name: k.clone(),
                shape: vec![1, shape[0]],
                data,
            }),
            // scvi-tools: proteins × batches; scssl: batches × proteins
            "background_pro_alpha" | "background_pro_log_beta" => out.push(NamedTensor {
                name: if k.ends_with("alpha") {
                    "background_alpha".into()
                } else {
                    "background_log_beta".into()
                },
                shape: vec![shape[1], shape[0]],
                data: common::transpose(&data, shape[0], shape[1]),
            }),
            _ => out.extend(map_tensor(k, v, MODULES).map(|mut t| {
                // one-layer FCLayers heads are plain linear layers in scssl
                for head in HEADS {
                    if let Some(p) = t.name.strip_prefix(&format!("{head}.0.linear.")) {
                        t.name = format!("{head}.{p}");
                    }
                }
                t
            })),
        }
    }
    out
}

const HEADS: &[&str] = &[
    "px_scale",
    "py_back_alpha",
    "py_back_beta",
    "py_fore_scale",
    "px_dropout",
    "py_background",
];

#[test]
fn a_model_trained_by_scvi_tools_gives_the_same_terms_and_latent_means() {
    let g = fixture("totalvi.json");
    let f = &g["trained_totalvi"];
    let (x, xs) = array(&f["x"]);
    let (y, ys) = array(&f["y"]);
    let codes: Vec<u32> = serde_json::from_value(f["batch"].clone()).unwrap();
    let cfg = config(
        xs[1],
        ys[1],
        2,
        TotalviParams {
            n_latent: f["settings"]["n_latent"].as_u64().unwrap() as usize,
            n_hidden: f["settings"]["n_hidden"].as_u64().unwrap() as usize,
            ..TotalviParams::default()
        },
    );
    let tensors = import_state_dict(f["state_dict"].as_object().unwrap());
    let mut net = Totalvi::cpu_network(&cfg, &tensors).unwrap();
    let device = Default::default();
    let xt =
        Tensor::<CpuBackend, 2>::from_data(TensorData::new(x.clone(), [xs[0], xs[1]]), &device);
    let yt =
        Tensor::<CpuBackend, 2>::from_data(TensorData::new(y.clone(), [ys[0], ys[1]]), &device);
    let terms = elbo_terms(&mut net, &cfg, xt, yt, &codes, None, Pass::EVAL).unwrap();
    let v =
        |t: Tensor<CpuBackend, 1>| -> Vec<f64> { t.into_data().convert::<f64>().to_vec().unwrap() };
    for (name, got) in [
        ("reconstruction_genes", v(terms.reconstruction_genes)),
        ("reconstruction_proteins", v(terms.reconstruction_proteins)),
        ("kl_z", v(terms.kl_z)),
        ("kl_background", v(terms.kl_background)),
    ] {
        close(&got, &flat64(&f[name]), 1e-4, name);
    }
    let xa = ndarray::Array2::from_shape_vec((xs[0], xs[1]), x).unwrap();
    let ya = ndarray::Array2::from_shape_vec((ys[0], ys[1]), y).unwrap();
    let emb = Totalvi
        .embed(
            &cfg,
            &tensors,
            &EmbedInputs {
                features: vec![xa.view(), ya.view()],
                counts: Some(xa.view()),
                batch_codes: Some(&codes),
            },
            EmbeddingOutput::Backbone,
        )
        .unwrap();
    let got: Vec<f64> = emb.joint.iter().map(|&v| v as f64).collect();
    close(&got, &flat64(&f["latent_mean"]), 1e-4, "latent means");
}
