//! scCLIP against a PyTorch build of the fork's network (`conformance/make_scclip_fixtures.py`):
//! the same weights give the same pooled outputs, normalised embeddings and CLIP loss, after
//! the same input preparation (per-gene max-abs scaling of RNA, binarised protein).

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{array, fixture, transpose};
use ndarray::Array2;
use scssl_models::methods::scclip::{Scclip, clip_loss, maxabs, prepare};
use scssl_models::{
    CpuBackend, EmbedInputs, EmbeddingOutput, Method, MethodRef, ModelConfig, NamedTensor,
    ScclipParams,
};
use serde_json::Value;

fn matrix(v: &Value) -> Array2<f32> {
    let (data, shape) = array(v);
    Array2::from_shape_vec((shape[0], shape[1]), data).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

fn setup() -> (Value, ModelConfig, Vec<NamedTensor>) {
    let f = fixture("scclip.json");
    let s = &f["sizes"];
    let get = |k: &str| s[k].as_u64().unwrap() as usize;
    let config = ModelConfig {
        input_dims: vec![get("genes"), get("proteins")],
        scclip: ScclipParams {
            hidden_size: get("hidden"),
            num_layers: get("layers"),
            num_heads: get("heads"),
            intermediate_size: get("intermediate"),
            num_patches: get("patches"),
            projection_dim: get("projection"),
            logit_scale: s["logit_scale"].as_f64().unwrap(),
            ..ScclipParams::default()
        },
        ..ModelConfig::new(MethodRef::parse("scclip").unwrap(), get("genes"))
    };
    config.validate().unwrap();
    let mut tensors: Vec<NamedTensor> = f["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            let (data, shape) = array(v);
            // PyTorch Linear weights are [out, in], ours [in, out]
            let (data, shape) = if name.ends_with(".weight") && shape.len() == 2 {
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
        .collect();
    let rna = matrix(&f["rna"]);
    let scale = maxabs(rna.view());
    let (golden, _) = array(&f["rna_maxabs"]);
    assert!(max_diff(&scale, &golden) < 1e-6, "max |x| per gene");
    tensors.push(NamedTensor {
        name: "rna_maxabs".into(),
        shape: vec![scale.len()],
        data: scale,
    });
    (f, config, tensors)
}

#[test]
fn forward_and_loss_match_pytorch() {
    let (f, config, tensors) = setup();
    Scclip.check_tensors(&config, &tensors).unwrap();
    let rna = matrix(&f["rna"]);
    let protein = matrix(&f["protein"]);

    // the pooled ViT outputs on the prepared input
    let net = Scclip::cpu_network(&config, &tensors).unwrap();
    let scale = &tensors.last().unwrap().data;
    let (r_in, p_in) = prepare(rna.view(), protein.view(), Some(scale), true);
    let t = |x: &Array2<f32>| {
        Tensor::<CpuBackend, 2>::from_data(
            TensorData::new(
                x.iter().copied().collect::<Vec<f32>>(),
                [x.nrows(), x.ncols()],
            ),
            &Default::default(),
        )
    };
    let eval = scssl_models::layers::Pass::EVAL;
    let pooled_r: Vec<f32> = net
        .rna_model
        .forward(t(&r_in), eval)
        .into_data()
        .to_vec()
        .unwrap();
    let pooled_p: Vec<f32> = net
        .protein_model
        .forward(t(&p_in), eval)
        .into_data()
        .to_vec()
        .unwrap();
    let d_pr = max_diff(&pooled_r, &array(&f["rna_pooled"]).0);
    let d_pp = max_diff(&pooled_p, &array(&f["protein_pooled"]).0);

    // the embeddings through the method's own entry point (raw input, stored scale)
    let emb = Scclip
        .embed(
            &config,
            &tensors,
            &EmbedInputs::features(&[rna.view(), protein.view()]),
            EmbeddingOutput::Backbone,
        )
        .unwrap();
    let a = emb.per_modality[0].clone();
    let b = emb.per_modality[1].clone();
    let d_a = max_diff(a.as_slice().unwrap(), &array(&f["rna_embedding"]).0);
    let d_b = max_diff(b.as_slice().unwrap(), &array(&f["protein_embedding"]).0);
    assert_eq!(emb.joint.ncols(), 2 * config.scclip.projection_dim);
    assert_eq!(
        emb.joint.slice(ndarray::s![.., ..a.ncols()]),
        a.view(),
        "joint = RNA ⧺ protein"
    );
    assert_eq!(emb.joint.slice(ndarray::s![.., a.ncols()..]), b.view());

    let loss: f32 = clip_loss(t(&a), t(&b), config.scclip.logit_scale).into_scalar();
    let d_loss = (loss as f64 - f["loss"].as_f64().unwrap()).abs();
    println!(
        "max |Δ|: pooled RNA {d_pr:.2e}, pooled protein {d_pp:.2e}, RNA embedding {d_a:.2e}, protein embedding {d_b:.2e}, loss {d_loss:.2e}"
    );
    for (what, d) in [
        ("pooled RNA", d_pr),
        ("pooled protein", d_pp),
        ("RNA embedding", d_a),
        ("protein embedding", d_b),
    ] {
        assert!(d < 1e-4, "{what}: {d}");
    }
    assert!(d_loss < 1e-5, "loss: {d_loss}");
}

#[test]
fn checkpoint_checks_name_the_tensor() {
    let (_, config, mut tensors) = setup();
    // the scale is part of the checkpoint
    let scale = tensors.pop().unwrap();
    let err = Scclip.check_tensors(&config, &tensors).unwrap_err();
    assert!(err.to_string().contains("rna_maxabs"), "{err}");
    // and must fit the genes
    tensors.push(NamedTensor {
        shape: vec![3],
        data: vec![1.0; 3],
        ..scale
    });
    let err = Scclip.check_tensors(&config, &tensors).unwrap_err();
    assert!(err.to_string().contains("rna_maxabs"), "{err}");
    tensors.pop();
    // without max-abs scaling no scale is stored
    let mut off = config.clone();
    off.scclip.maxabs_rna = false;
    Scclip.check_tensors(&off, &tensors).unwrap();
}

#[test]
fn gradients_match_pytorch() {
    use scssl_models::CpuTrainBackend as B;
    use scssl_models::methods::scclip::ScclipNetwork;
    let (f, config, mut tensors) = setup();
    let scale = tensors.pop().unwrap().data;
    let mut net = ScclipNetwork::<B>::new(&config, 0, &Default::default());
    net.import(tensors).unwrap();
    let rna = matrix(&f["rna"]);
    let protein = matrix(&f["protein"]);
    let (r_in, p_in) = prepare(rna.view(), protein.view(), Some(&scale), true);
    let t = |x: &Array2<f32>| {
        Tensor::<B, 2>::from_data(
            TensorData::new(
                x.iter().copied().collect::<Vec<f32>>(),
                [x.nrows(), x.ncols()],
            ),
            &Default::default(),
        )
    };
    let eval = scssl_models::layers::Pass::EVAL;
    let a = net.embed_rna(t(&r_in), eval);
    let b = net.embed_protein(t(&p_in), eval);
    let grads = clip_loss(a, b, config.scclip.logit_scale).backward();
    fn values<const D: usize>(
        g: Option<Tensor<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, D>>,
    ) -> Vec<f32> {
        g.unwrap().into_data().to_vec().unwrap()
    }
    let (r0, r1) = (&net.rna_model.layers[0], &net.rna_model.layers[1]);
    let p1 = &net.protein_model.layers[1];
    let ours: Vec<(&str, Vec<f32>)> = vec![
        (
            "rna_model.embeddings.patch_embeddings.projection.weight",
            values(net.rna_model.patch_projection.weight.grad(&grads)),
        ),
        (
            "rna_model.embeddings.cls_token",
            values(net.rna_model.cls_token.grad(&grads)),
        ),
        (
            "rna_model.encoder.layer.0.attention.attention.query.weight",
            values(r0.query.weight.grad(&grads)),
        ),
        (
            "rna_model.encoder.layer.0.attention.attention.key.bias",
            values(r0.key.bias.as_ref().unwrap().grad(&grads)),
        ),
        (
            "rna_model.encoder.layer.0.layernorm_before.weight",
            values(r0.layernorm_before.weight.grad(&grads)),
        ),
        (
            "rna_model.encoder.layer.1.intermediate.dense.weight",
            values(r1.intermediate.weight.grad(&grads)),
        ),
        (
            "rna_model.pooler.dense.bias",
            values(net.rna_model.pooler.bias.as_ref().unwrap().grad(&grads)),
        ),
        (
            "protein_model.embeddings.position_embeddings",
            values(net.protein_model.position_embeddings.grad(&grads)),
        ),
        (
            "protein_model.encoder.layer.1.attention.attention.value.weight",
            values(p1.value.weight.grad(&grads)),
        ),
        (
            "protein_model.layernorm.bias",
            values(net.protein_model.layernorm.bias.grad(&grads)),
        ),
        (
            "rna_projection.weight",
            values(net.rna_projection.weight.grad(&grads)),
        ),
        (
            "protein_projection.weight",
            values(net.protein_projection.weight.grad(&grads)),
        ),
    ];
    assert_eq!(ours.len(), f["grads"].as_object().unwrap().len());
    let mut worst = 0.0f64;
    for (name, g) in ours {
        let (data, shape) = array(&f["grads"][name]);
        let golden = if name.ends_with(".weight") && shape.len() == 2 {
            transpose(&data, shape[0], shape[1])
        } else {
            data
        };
        // relative to the tensor's largest gradient; the key bias's gradient is 0 in exact
        // arithmetic (softmax ignores a shift shared by all keys), so an absolute floor
        let top = golden.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let diff = max_diff(&g, &golden);
        let rel = diff / top.max(1e-3);
        println!("{name}: max |g| {top:.2e}, max |Δ| {diff:.2e}");
        worst = worst.max(rel);
        assert!(rel < 1e-3, "{name}: max |Δ| {diff} for max |g| {top}");
    }
    println!("gradients: worst max |Δ| / max(max |g|, 1e-3) = {worst:.2e}");
}
