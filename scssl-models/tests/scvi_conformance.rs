//! scVI against scvi-tools 1.1.6 (goldens by `conformance/make_scvi_fixtures.py`): the NB and
//! ZINB log-likelihoods and the Normal KL on fixed float64 inputs to 1e-6, and the number of
//! trained parameters of the benchmark's and the default architecture.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use scssl_models::distributions::{kl_standard_normal, log_nb_positive, log_zinb_positive};
use scssl_models::methods::scvi::ScviNetwork;
use scssl_models::{CpuBackend, GeneLikelihood, MethodRef, ModelConfig, ScviParams};
use serde_json::Value;

type B64 = NdArray<f64>;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/fixtures/models/scvi.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn matrix(v: &Value) -> Tensor<B64, 2> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (n, d) = (rows.len(), rows[0].len());
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    Tensor::from_data(TensorData::new(flat, [n, d]), &Default::default())
}

fn values<const D: usize>(t: Tensor<B64, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            items.iter().flat_map(flat).collect()
        }
        _ => serde_json::from_value(v.clone()).unwrap(),
    }
}

fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn likelihoods_and_kl_equal_scvi_tools() {
    let g = golden();
    let (x, mu, theta, pi) = (
        matrix(&g["x"]),
        matrix(&g["mu"]),
        matrix(&g["theta"]),
        matrix(&g["pi"]),
    );
    close(
        &values(log_nb_positive(x.clone(), mu.clone(), theta.clone())),
        &flat(&g["log_nb_positive"]),
        "log_nb_positive",
    );
    close(
        &values(log_zinb_positive(x, mu, theta, pi)),
        &flat(&g["log_zinb_positive"]),
        "log_zinb_positive",
    );
    close(
        &values(kl_standard_normal(matrix(&g["mean"]), matrix(&g["var"]))),
        &flat(&g["kl_normal"]),
        "kl_normal",
    );
}

#[test]
fn parameter_counts_equal_scvi_tools() {
    let g = golden();
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
