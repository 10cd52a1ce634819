//! The float64 likelihoods and KLs against scvi-tools 1.1.6 (goldens by
//! `conformance/make_scvi_fixtures.py`) to 1e-6: NB, ZINB, the standard-normal KL (scVI), the
//! protein NB mixture and the Normal–Normal KL (totalVI).
//!
//! Kept in a test binary of its own: in burn-ndarray 0.21, once a process has computed on the
//! f32 backend, some f64 operations run at f32 precision, so these checks must not share a
//! process with the f32 model tests.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use scssl_models::distributions::{
    kl_normal, kl_standard_normal, log_mixture_nb, log_nb_positive, log_zinb_positive,
};
use serde_json::Value;

type B64 = NdArray<f64>;

fn golden(name: &str) -> Value {
    let path = format!(
        "{}/../conformance/fixtures/models/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            items.iter().flat_map(flat).collect()
        }
        _ => serde_json::from_value(v.clone()).unwrap(),
    }
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
    let g = golden("scvi.json");
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
fn mixture_likelihood_and_normal_kl_equal_scvi_tools() {
    let g = golden("totalvi.json");
    let theta_row = flat(&g["theta"]);
    let (n, p) = (flat(&g["y"]).len() / theta_row.len(), theta_row.len());
    let theta: Vec<f64> = (0..n).flat_map(|_| theta_row.clone()).collect();
    let theta = Tensor::<B64, 2>::from_data(TensorData::new(theta, [n, p]), &Default::default());
    close(
        &values(log_mixture_nb(
            matrix(&g["y"]),
            matrix(&g["mu1"]),
            matrix(&g["mu2"]),
            theta,
            matrix(&g["mixing"]),
        )),
        &flat(&g["log_mixture_nb"]),
        "log_mixture_nb",
    );
    close(
        &values(kl_normal(
            matrix(&g["m1"]),
            matrix(&g["s1"]),
            matrix(&g["m2"]),
            matrix(&g["s2"]),
        )),
        &flat(&g["kl_normal"]),
        "kl_normal",
    );
}
