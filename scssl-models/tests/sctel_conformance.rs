//! scTEL against PyTorch (`conformance/make_sctel_fixtures.py`): the reference network's
//! weights (G = 30, P = 6, d = 16, 2 heads) loaded into ours give the same h3, protein means,
//! quantile outputs and protein loss, in eval mode and in train mode without dropout (batch
//! statistics, running-statistic updates included).

mod common;

use burn::tensor::Tensor;
use common::{array, fixture, transpose};
use scssl_models::layers::Pass;
use scssl_models::methods::sctel::{SctelNetwork, SctelOutput, protein_loss};
use scssl_models::{CpuBackend, NamedTensor};
use serde_json::Value;

type B = CpuBackend;

/// PyTorch's module prefixes → ours.
const MODULES: &[(&str, &str)] = &[
    ("input_TE_1.embedding.embedding", "input.embed"),
    ("input_TE_1.embedding.bnorm_in", "input.bn_in"),
    ("input_TE_1.embedding.Linear_out", "input.token"),
    ("input_TE_1.embedding.bnorm_out", "input.bn_tokens"),
    ("input_TE_1.embedding.act", "input.act"),
    ("input_TE_1.bnorm_out", "input.bn_out"),
    ("input_TE_1.act", "input.act_out"),
    ("input_TE_1.TE", "input.te"),
    ("input_TE_1.Linear_out", "input.out"),
    ("FF_TE_2.FF_Em.FC", "ff2.token"),
    ("FF_TE_2.FF_Em.act", "ff2.act"),
    ("FF_TE_2.TE", "ff2.te"),
    ("FF_TE_2.FC", "ff2.out"),
    ("FF_TE_2.BN", "ff2.bn_out"),
    ("FF_TE_2.act", "ff2.act_out"),
    ("FF_TE_3.FF_Em.FC", "ff3.token"),
    ("FF_TE_3.FF_Em.act", "ff3.act"),
    ("FF_TE_3.TE", "ff3.te"),
    ("FF_TE_3.FC", "ff3.out"),
    ("FF_TE_3.BN", "ff3.bn_out"),
    ("FF_TE_3.act", "ff3.act_out"),
    ("LSTMCell1", "lstm1"),
    ("LSTMCell2", "lstm2"),
    ("LSTMCell3", "lstm3"),
    ("mod2_out.MSE_layer.FC1", "protein.fc1"),
    ("mod2_out.MSE_layer.BN1", "protein.bn1"),
    ("mod2_out.MSE_layer.FC2", "protein.fc2"),
    ("mod2_out.MSE_layer.FC3", "protein.fc3"),
    ("mod2_out.MSE_layer.act", "protein.act"),
    ("mod2_out.Quantile_layer.0", "quantile"),
];

/// One PyTorch tensor under our name and layout (linear weights `[out, in]` → `[in, out]`).
fn map(name: &str, value: &Value) -> NamedTensor {
    let (module, rest) = MODULES
        .iter()
        .filter(|(old, _)| name.starts_with(&format!("{old}.")))
        .max_by_key(|(old, _)| old.len())
        .map(|(old, new)| (*new, &name[old.len() + 1..]))
        .unwrap_or_else(|| panic!("no mapping for {name}"));
    let is_bn = module.contains("bn");
    let is_ln = rest.starts_with("norm");
    let param = match rest {
        "self_attn.in_proj_weight" => "in_proj.weight".to_string(),
        "self_attn.in_proj_bias" => "in_proj.bias".to_string(),
        "weight_ih" => "ih.weight".to_string(),
        "bias_ih" => "ih.bias".to_string(),
        "weight_hh" => "hh.weight".to_string(),
        "bias_hh" => "hh.bias".to_string(),
        r => r.strip_prefix("self_attn.").unwrap_or(r).to_string(),
    };
    let param = if is_bn || is_ln {
        param.replace("weight", "gamma").replace("bias", "beta")
    } else {
        param
    };
    let (data, shape) = array(value);
    let prelu = module.contains("act");
    let (data, shape) = if param.ends_with("weight") && shape.len() == 2 && !prelu {
        (
            transpose(&data, shape[0], shape[1]),
            vec![shape[1], shape[0]],
        )
    } else {
        (data, shape)
    };
    NamedTensor {
        name: format!("{module}.{param}"),
        shape,
        data,
    }
}

fn matrix(v: &Value) -> Tensor<B, 2> {
    let (data, shape) = array(v);
    Tensor::from_data(
        burn::tensor::TensorData::new(data, [shape[0], shape[1]]),
        &Default::default(),
    )
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_diff(ours: &[f32], theirs: &Value) -> f64 {
    let (want, _) = array(theirs);
    assert_eq!(ours.len(), want.len());
    ours.iter()
        .zip(&want)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max)
}

fn loaded(f: &Value) -> SctelNetwork<B> {
    let s = &f["sizes"];
    let size = |k: &str| s[k].as_u64().unwrap() as usize;
    let mut net = SctelNetwork::<B>::new(
        size("genes"),
        size("proteins"),
        size("d"),
        size("heads"),
        0.15,
        4,
        0,
        &Default::default(),
    );
    let tensors: Vec<NamedTensor> = f["state_dict"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| map(k, v))
        .collect();
    assert_eq!(tensors.len(), net.export().len(), "every tensor mapped");
    net.import(tensors).unwrap();
    net
}

fn quantiles(f: &Value) -> Vec<f64> {
    f["quantiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_f64().unwrap())
        .collect()
}

fn compare(label: &str, out: &SctelOutput<B>, loss: f64, golden: &Value) {
    let h3 = max_diff(&values(out.embedding.clone()), &golden["h3"]);
    let prot = max_diff(&values(out.protein.clone()), &golden["protein"]);
    let q = max_diff(
        &values(out.quantiles.clone().unwrap()),
        &golden["quantiles"],
    );
    let dl = (loss - golden["loss"].as_f64().unwrap()).abs();
    println!("{label}: max |Δ| h3 {h3:.2e}, protein {prot:.2e}, quantiles {q:.2e}, loss {dl:.2e}");
    assert!(h3 < 1e-4, "{label} h3 {h3}");
    assert!(prot < 1e-4, "{label} protein {prot}");
    assert!(q < 1e-4, "{label} quantiles {q}");
    assert!(dl < 1e-5, "{label} loss {dl}");
}

#[test]
fn eval_mode_matches_pytorch() {
    let f = fixture("sctel.json");
    let mut net = loaded(&f);
    let out = net.forward(matrix(&f["x"]), Pass::EVAL);
    let loss = values(protein_loss(&out, matrix(&f["y"]), &quantiles(&f), None))[0] as f64;
    compare("eval", &out, loss, &f["eval"]);
    // the embedding path alone gives the same h3
    let h3 = net.embed(matrix(&f["x"]), Pass::EVAL);
    assert_eq!(values(h3), values(out.embedding));
}

#[test]
fn train_mode_without_dropout_matches_pytorch() {
    let f = fixture("sctel.json");
    let mut net = loaded(&f);
    net.set_dropout(0.0, 0.0);
    let pass = Pass {
        train: true,
        dropout_seed: 7,
    };
    let out = net.forward(matrix(&f["x"]), pass);
    let loss = values(protein_loss(&out, matrix(&f["y"]), &quantiles(&f), None))[0] as f64;
    compare("train", &out, loss, &f["train"]);
    // running statistics after the one train-mode pass
    let exported = net.export();
    for (name, golden) in f["train"]["running"].as_object().unwrap() {
        let ours = map(name, golden).name;
        let t = exported.iter().find(|t| t.name == ours).unwrap();
        let d = max_diff(&t.data, golden);
        println!("{ours}: max |Δ| {d:.2e}");
        assert!(d < 1e-5, "{ours}: {d}");
    }
}
