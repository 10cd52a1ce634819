//! Losses against lightly 1.5.10 golden values (conformance/make_loss_fixtures.py) and
//! gradient checks by central finite differences, in f64.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use scssl_models::losses;

type B = NdArray<f64>;
type AD = Autodiff<NdArray<f64>>;

fn fixture() -> serde_json::Value {
    // the run-time CARGO_MANIFEST_DIR first (right even for a binary built in another checkout)
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../conformance/fixtures/models/losses.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("losses.json is committed"))
        .expect("valid JSON")
}

fn matrix(v: &serde_json::Value) -> (Vec<f64>, [usize; 2]) {
    let rows = v.as_array().expect("rows");
    let cols = rows[0].as_array().expect("row").len();
    let data = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    (data, [rows.len(), cols])
}

fn t<Bk: burn::tensor::backend::Backend>(v: &serde_json::Value) -> Tensor<Bk, 2> {
    let (data, shape) = matrix(v);
    Tensor::from_data(TensorData::new(data, shape), &Default::default())
}

fn scalar<Bk: burn::tensor::backend::Backend>(x: Tensor<Bk, 1>) -> f64 {
    x.into_scalar().elem()
}

fn close(ours: f64, golden: &serde_json::Value, name: &str) {
    let g = golden.as_f64().unwrap();
    assert!(
        (ours - g).abs() <= 1e-9 * g.abs().max(1.0),
        "{name}: ours {ours}, lightly {g}"
    );
}

#[test]
fn losses_match_lightly() {
    let f = fixture();
    let (u, v, w, bank) = (
        t::<B>(&f["u"]),
        t::<B>(&f["v"]),
        t::<B>(&f["w"]),
        t::<B>(&f["bank"]),
    );
    close(
        scalar(losses::nt_xent(u.clone(), v.clone(), 0.5)),
        &f["nt_xent_t0.5"],
        "NT-Xent T=0.5",
    );
    close(
        scalar(losses::nt_xent(u.clone(), v.clone(), 0.1)),
        &f["nt_xent_t0.1"],
        "NT-Xent T=0.1",
    );
    close(
        scalar(losses::nt_xent_bank(u.clone(), v.clone(), bank, 0.5)),
        &f["nt_xent_bank_t0.5"],
        "NT-Xent with memory bank",
    );
    close(
        scalar(losses::negative_cosine(u.clone(), v.clone())),
        &f["negative_cosine_uv"],
        "negative cosine",
    );
    close(
        scalar(losses::symmetric_negative_cosine(
            u.clone(),
            u.clone(),
            v.clone(),
            w.clone(),
        )),
        &f["symmetric_negative_cosine"],
        "symmetric negative cosine",
    );
    close(
        scalar(losses::vicreg(u.clone(), v.clone(), 5.0, 5.0, 1.0)),
        &f["vicreg_5_5_1"],
        "VICReg 5/5/1",
    );
    close(
        scalar(losses::vicreg(u.clone(), w.clone(), 25.0, 25.0, 1.0)),
        &f["vicreg_25_25_1"],
        "VICReg 25/25/1",
    );
    close(
        scalar(losses::barlow_twins(u.clone(), v.clone(), 5e-3)),
        &f["barlow_5e-3"],
        "Barlow Twins",
    );
    let s: Tensor<B, 1> = Tensor::from_data(
        TensorData::new(vec![f["clip_log_scale"].as_f64().unwrap()], [1]),
        &Default::default(),
    );
    close(scalar(losses::clip(u, w, s)), &f["clip"], "CLIP");
}

#[test]
fn hand_computed_values() {
    // Identical unit views with orthogonal cells: NT-Xent rows are
    // [1/T, 0, 0 | 0, 0] (positive first), so loss = log(e^{1/T} + 4) − 1/T.
    let eye: Tensor<B, 2> = Tensor::from_data(
        TensorData::new(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [3, 3]),
        &Default::default(),
    );
    let tt = 0.5f64;
    let expect = ((1.0 / tt).exp() + 4.0).ln() - 1.0 / tt;
    let got = scalar(losses::nt_xent(eye.clone(), eye.clone(), tt));
    assert!((got - expect).abs() < 1e-12, "{got} vs {expect}");
    // Cosine of a vector with itself is 1.
    assert!((scalar(losses::negative_cosine(eye.clone(), eye.clone())) + 1.0).abs() < 1e-12);
    // Barlow Twins of perfectly correlated standardised columns: C = I → loss 0 for the
    // diagonal; identical views of the identity have off-diagonal C = −1/2·... computed by
    // hand: columns of I standardised over 6 rows.
    let z: Tensor<B, 2> = Tensor::from_data(
        TensorData::new(vec![1.0, -1.0, -1.0, 1.0], [2, 2]),
        &Default::default(),
    );
    // Both views identical: each column standardised has values ±1, C = [[1, −1], [−1, 1]],
    // so L = 0 + λ·(1 + 1).
    let got = scalar(losses::barlow_twins(z.clone(), z, 0.25));
    let expect = 0.25 * 2.0 * (1.0f64 / (1.0 + 1e-5)).powi(2);
    assert!((got - expect).abs() < 1e-9, "{got} vs {expect}");
}

/// Central finite differences of `loss(x)` against the autodiff gradient, entry by entry.
fn gradient_check(
    name: &str,
    x: &serde_json::Value,
    loss: impl Fn(Tensor<AD, 2>) -> Tensor<AD, 1>,
) {
    let (data, shape) = matrix(x);
    let xt: Tensor<AD, 2> =
        Tensor::<AD, 2>::from_data(TensorData::new(data.clone(), shape), &Default::default())
            .require_grad();
    let grads = loss(xt.clone()).backward();
    let analytic: Vec<f64> = xt
        .grad(&grads)
        .expect("gradient")
        .into_data()
        .to_vec()
        .unwrap();
    let h = 1e-6;
    for i in 0..data.len() {
        let eval = |delta: f64| {
            let mut d = data.clone();
            d[i] += delta;
            let t = Tensor::<AD, 2>::from_data(TensorData::new(d, shape), &Default::default());
            scalar(loss(t))
        };
        let numeric = (eval(h) - eval(-h)) / (2.0 * h);
        let tol = 1e-5 * numeric.abs().max(1.0);
        assert!(
            (numeric - analytic[i]).abs() <= tol,
            "{name}: ∂/∂x[{i}] autodiff {} vs finite difference {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let f = fixture();
    let v = t::<AD>(&f["v"]);
    let w = t::<AD>(&f["w"]);
    let bank = t::<AD>(&f["bank"]);
    gradient_check("NT-Xent", &f["u"], |u| losses::nt_xent(u, v.clone(), 0.5));
    gradient_check("NT-Xent bank", &f["u"], |u| {
        losses::nt_xent_bank(u, v.clone(), bank.clone(), 0.5)
    });
    gradient_check("negative cosine", &f["u"], |u| {
        losses::negative_cosine(u, w.clone())
    });
    gradient_check("VICReg", &f["u"], |u| {
        losses::vicreg(u, v.clone(), 5.0, 5.0, 1.0)
    });
    gradient_check("Barlow Twins", &f["u"], |u| {
        losses::barlow_twins(u, v.clone(), 5e-3)
    });
    let s: Tensor<AD, 1> =
        Tensor::from_data(TensorData::new(vec![1.3f64], [1]), &Default::default());
    gradient_check("CLIP", &f["u"], |u| losses::clip(u, w.clone(), s.clone()));
}
