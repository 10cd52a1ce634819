//! Concerto against a PyTorch build of the original TensorFlow networks (goldens by
//! `conformance/make_concerto_fixtures.py`): with the same weights, the teacher (feature
//! embedding × BN(value) → attention → tanh → BN → head) and the student give the same outputs
//! in eval mode to 1e-4, and in train mode (batch statistics, dropout 0) with the same moving
//! statistics afterwards; `simclr_loss` equals TensorFlow's formula to 1e-5.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{array, fixture, transpose};
use ndarray::Array2;
use scssl_models::layers::Pass;
use scssl_models::methods::concerto::{Concerto, ConcertoNetwork, simclr_loss};
use scssl_models::{
    ConcertoParams, CpuBackend, EmbedInputs, EmbeddingOutput, Method, MethodRef, ModelConfig,
    NamedTensor,
};
use serde_json::Value;

/// PyTorch's state-dict names → scssl's (BatchNorm weight/bias → γ/β, running → moving,
/// Linear weights transposed to `[in, out]`).
fn import(sd: &serde_json::Map<String, Value>) -> Vec<NamedTensor> {
    sd.iter()
        .map(|(k, v)| {
            let (data, shape) = array(v);
            let mut name = k
                .replace("teacher_head.", "teacher.head.")
                .replace("student_head.", "student.head.")
                .replace("embedding.weight", "embedding")
                .replace("attention.W", "attention.w")
                .replace("running_mean", "moving_mean")
                .replace("running_var", "moving_var");
            let is_bn = ["bn_value", "bn_in", "bn_out"]
                .iter()
                .any(|b| name.contains(&format!(".{b}.")));
            if is_bn {
                name = name.replace(".weight", ".gamma").replace(".bias", ".beta");
            }
            let linear_weight = name.ends_with(".weight") && shape.len() == 2;
            let (data, shape) = if linear_weight {
                (
                    transpose(&data, shape[0], shape[1]),
                    vec![shape[1], shape[0]],
                )
            } else {
                (data, shape)
            };
            NamedTensor { name, shape, data }
        })
        .collect()
}

fn config(dims: &[usize], g: &Value) -> ModelConfig {
    let s = &g["sizes"];
    ModelConfig {
        input_dims: dims.to_vec(),
        concerto: ConcertoParams {
            embedding_dim: s["embedding_dim"].as_u64().unwrap() as usize,
            head_dim: s["head_dim"].as_u64().unwrap() as usize,
            dropout: 0.0,
            temperature: s["temperature"].as_f64().unwrap(),
        },
        ..ModelConfig::new(MethodRef::parse("concerto").unwrap(), dims[0])
    }
}

fn tensor(v: &Value) -> Tensor<CpuBackend, 2> {
    let (data, shape) = array(v);
    Tensor::from_data(
        TensorData::new(data, [shape[0], shape[1]]),
        &Default::default(),
    )
}

fn values<const D: usize>(t: Tensor<CpuBackend, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// Largest absolute difference; asserts it is at most `tol`.
fn close(got: &[f32], want: &Value, tol: f64, what: &str) -> f64 {
    let (want, _) = array(want);
    assert_eq!(got.len(), want.len(), "{what}: length");
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - *w as f64).abs())
        .fold(0.0, f64::max);
    println!("{what}: max |error| {err:.2e}");
    assert!(err <= tol, "{what}: max |error| {err} > {tol}");
    err
}

fn inputs(c: &Value) -> Vec<Tensor<CpuBackend, 2>> {
    c["inputs"].as_array().unwrap().iter().map(tensor).collect()
}

fn check_case(key: &str) {
    let g = fixture("concerto.json");
    let c = &g[key];
    let dims: Vec<usize> = serde_json::from_value(c["dims"].clone()).unwrap();
    let cfg = config(&dims, &g);
    let tensors = import(c["state_dict"].as_object().unwrap());
    let mut net = Concerto::cpu_network(&cfg, &tensors).unwrap();
    let e = &c["eval"];

    // eval mode: features, both outputs, the loss of our outputs
    let fs = net.teacher_features(inputs(c), Pass::EVAL);
    for (m, f) in fs.into_iter().enumerate() {
        close(
            &values(f),
            &e["teacher_features"][m],
            1e-4,
            &format!("{key} teacher feature {m}"),
        );
    }
    let zt = net.teacher_forward(inputs(c), Pass::EVAL).unwrap();
    let zs = net.student_forward(inputs(c), Pass::EVAL).unwrap();
    close(
        &values(zt.clone()),
        &e["teacher"],
        1e-4,
        &format!("{key} teacher"),
    );
    close(
        &values(zs.clone()),
        &e["student"],
        1e-4,
        &format!("{key} student"),
    );
    let loss = values(simclr_loss(zt, zs, cfg.concerto.temperature));
    close(
        &loss,
        &e["loss"],
        1e-4,
        &format!("{key} loss of our outputs"),
    );
    // the loss alone, on the reference's outputs
    let loss = values(simclr_loss(
        tensor(&e["teacher"]),
        tensor(&e["student"]),
        cfg.concerto.temperature,
    ));
    close(&loss, &e["loss"], 1e-5, &format!("{key} loss"));

    // the method's embedding: L2-normalised teacher output, joint and per modality
    let xs: Vec<Array2<f32>> = c["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let (data, shape) = array(v);
            Array2::from_shape_vec((shape[0], shape[1]), data).unwrap()
        })
        .collect();
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    let emb = Concerto
        .embed(
            &cfg,
            &tensors,
            &EmbedInputs::features(&views),
            EmbeddingOutput::Backbone,
        )
        .unwrap();
    let joint: Vec<f32> = emb.joint.iter().copied().collect();
    close(&joint, &e["embedding"], 1e-4, &format!("{key} embedding"));
    for (m, part) in emb.per_modality.iter().enumerate() {
        let want = if dims.len() == 1 {
            &e["embedding"]
        } else {
            &e["embedding_per_modality"][m]
        };
        let got: Vec<f32> = part.iter().copied().collect();
        close(
            &got,
            want,
            1e-4,
            &format!("{key} embedding of modality {m}"),
        );
    }

    // train mode (dropout 0): batch statistics, then the moving statistics after the pass
    let t = &c["train"];
    let pass = Pass {
        train: true,
        dropout_seed: 0,
    };
    let mut net: ConcertoNetwork<CpuBackend> = Concerto::cpu_network(&cfg, &tensors).unwrap();
    let zt = net.teacher_forward(inputs(c), pass).unwrap();
    let zs = net.student_forward(inputs(c), pass).unwrap();
    close(
        &values(zt.clone()),
        &t["teacher"],
        1e-4,
        &format!("{key} train teacher"),
    );
    close(
        &values(zs.clone()),
        &t["student"],
        1e-4,
        &format!("{key} train student"),
    );
    let loss = values(simclr_loss(zt, zs, cfg.concerto.temperature));
    close(&loss, &t["loss"], 1e-4, &format!("{key} train loss"));
    let after = import(t["state_dict_after"].as_object().unwrap());
    let exported = net.export();
    for want in &after {
        let got = exported.iter().find(|e| e.name == want.name).unwrap();
        let err = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-5, "{key} {}: {err}", want.name);
    }
    println!("{key}: {} moving statistics match", after.len());
}

#[test]
fn rna_only_networks_equal_the_reference() {
    check_case("rna");
}

#[test]
fn rna_and_protein_networks_equal_the_reference() {
    check_case("rna_protein");
}

#[test]
fn simclr_loss_equals_tensorflow_with_a_zero_row() {
    let g = fixture("concerto.json");
    let l = &g["loss_only"];
    let got = values(simclr_loss(tensor(&l["z1"]), tensor(&l["z2"]), 0.1));
    close(&got, &l["loss"], 1e-5, "loss with a zero row");
}
