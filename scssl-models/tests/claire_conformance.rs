//! CLAIRE against the reference formulas (goldens by `conformance/make_claire_fixtures.py`,
//! PyTorch and scikit-learn): three MoCo steps of CLAIRE-release's `ClaireNet` (momentum
//! update, symmetric loss against a zero-initialised queue, both key sets enqueued with the
//! pointer wrapping) and the GMM anchor re-filtering of `filter_anchors`.

mod common;

use burn::tensor::Tensor;
use common::{array, fixture, transpose};
use scssl_models::layers::{NamedTensor, Pass};
use scssl_models::methods::claire::{ClaireEncoder, ClaireParams, KeyQueue, moco_loss, refilter};
use scssl_models::{CpuBackend, ModelError};
use serde_json::Value;

type B = CpuBackend;

fn encoder(weights: &Value, genes: usize, latent: usize) -> ClaireEncoder<B> {
    let params = ClaireParams {
        latent_dim: latent,
        dropout: 0.0,
        ..ClaireParams::default()
    };
    let mut net = ClaireEncoder::<B>::new(genes, &params, 0, &Default::default());
    let mut tensors = Vec::new();
    // PyTorch's Sequential indices 0, 3, 6 are the three Linear layers
    for (ours, theirs) in [(0, 0), (1, 3), (2, 6)] {
        let (w, s) = array(&weights[format!("{theirs}.weight")]);
        tensors.push(NamedTensor {
            name: format!("encoder.{ours}.weight"),
            shape: vec![s[1], s[0]],
            data: transpose(&w, s[0], s[1]),
        });
        let (b, s) = array(&weights[format!("{theirs}.bias")]);
        tensors.push(NamedTensor {
            name: format!("encoder.{ours}.bias"),
            shape: s,
            data: b,
        });
    }
    net.import(tensors).unwrap();
    net
}

fn tensor(v: &Value) -> Tensor<B, 2> {
    let (data, shape) = array(v);
    Tensor::from_data(
        burn::tensor::TensorData::new(data, [shape[0], shape[1]]),
        &Default::default(),
    )
}

fn values(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max |Δ| {worst}");
}

#[test]
fn moco_steps_equal_claire_release() -> Result<(), ModelError> {
    let g = fixture("claire.json");
    let (genes, latent, k) = (
        g["genes"].as_u64().unwrap() as usize,
        g["latent"].as_u64().unwrap() as usize,
        g["queue"].as_u64().unwrap() as usize,
    );
    let (t, m) = (
        g["temperature"].as_f64().unwrap(),
        g["momentum"].as_f64().unwrap(),
    );
    let query = encoder(&g["initial"]["query"], genes, latent);
    let mut key = encoder(&g["initial"]["key"], genes, latent);
    let mut queue = KeyQueue::<B>::zeros(k, latent, &Default::default());
    for (s, step) in g["steps"].as_array().unwrap().iter().enumerate() {
        key.momentum_update(&query, m);
        let want_key = encoder(&step["key_after"], genes, latent);
        close(
            &values(key.layers[0].weight.val()),
            &values(want_key.layers[0].weight.val()),
            1e-6,
            "key weights after the momentum update",
        );
        let (x1, x2) = (tensor(&step["x1"]), tensor(&step["x2"]));
        let q1 = query.forward(x1.clone(), Pass::EVAL);
        close(&values(q1), &array(&step["q1"]).0, 1e-5, "query embedding");
        let (loss, keys) = moco_loss(&query, &key, &queue, x1, x2, t, true, [Pass::EVAL; 4]);
        let got: f32 = loss.into_scalar();
        let want = step["loss"].as_f64().unwrap() as f32;
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "step {s}: loss {got} vs {want}"
        );
        for key_set in keys {
            queue.enqueue(key_set);
        }
        close(
            &values(queue.rows.clone()),
            &array(&step["queue_after"]).0,
            1e-5,
            "queue",
        );
        assert_eq!(queue.pointer() as u64, step["ptr_after"].as_u64().unwrap());
        println!("step {s}: loss {got:.6} (reference {want:.6})");
    }
    Ok(())
}

#[test]
fn anchor_refiltering_matches_scikit_learn() {
    let g = fixture("claire.json");
    let gmm = &g["gmm"];
    let sims: Vec<f64> = gmm["similarities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want: Vec<bool> = gmm["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    let got = refilter(&sims, 0.5).unwrap();
    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    println!(
        "kept {} of {} (scikit-learn {}), {differ} decisions differ",
        got.iter().filter(|k| **k).count(),
        sims.len(),
        want.iter().filter(|k| **k).count()
    );
    assert!(
        differ <= 2,
        "{differ} keep decisions differ from scikit-learn's"
    );
}
