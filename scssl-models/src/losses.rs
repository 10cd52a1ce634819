//! SSL losses, as lightly 1.5.10 computes them (methods.md §2.3). Every function takes `[B, d]`
//! tensors and returns a one-element tensor; they are generic over the backend so that the
//! same code trains on CPU and CUDA and is gradient-checked in f64.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};

/// Row-wise L2 normalisation with PyTorch's `F.normalize` floor (‖x‖ ≥ 1e-12).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x.div(norm)
}

/// Stable log-sum-exp over dimension 1, `[n, m] → [n, 1]`.
pub fn logsumexp<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let max = x.clone().max_dim(1).detach();
    x.sub(max.clone()).exp().sum_dim(1).log().add(max)
}

fn diagonal_mask<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    let mut v = vec![false; n * n];
    for i in 0..n {
        v[i * n + i] = true;
    }
    Tensor::from_data(TensorData::new(v, [n, n]), device)
}

fn mean_scalar<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 1> {
    x.mean()
}

/// NT-Xent without a memory bank (SimCLR, NNCLR): for each cell two rows of logits, positives
/// on the diagonal of `ū·v̄ᵀ`, negatives the other view's cells and the own view's other cells;
/// mean cross-entropy over the 2B rows.
pub fn nt_xent<B: Backend>(u: Tensor<B, 2>, v: Tensor<B, 2>, temperature: f64) -> Tensor<B, 1> {
    let [n, _] = u.dims();
    let device = u.device();
    let u = l2_normalize(u);
    let v = l2_normalize(v);
    let inv_t = 1.0 / temperature;
    let uv = u.clone().matmul(v.clone().transpose()).mul_scalar(inv_t);
    let mask = diagonal_mask::<B>(n, &device);
    // −∞ stand-in: exp underflows to exactly 0 in f32 and f64, and gradients stay finite.
    let uu = u
        .clone()
        .matmul(u.clone().transpose())
        .mul_scalar(inv_t)
        .mask_fill(mask.clone(), -1e9);
    let vv = v
        .clone()
        .matmul(v.clone().transpose())
        .mul_scalar(inv_t)
        .mask_fill(mask, -1e9);
    let positives = u.mul(v).sum_dim(1).mul_scalar(inv_t);
    let rows0 = Tensor::cat(vec![uv.clone(), uu], 1);
    let rows1 = Tensor::cat(vec![uv.transpose(), vv], 1);
    let lse = Tensor::cat(vec![logsumexp(rows0), logsumexp(rows1)], 0);
    let pos = Tensor::cat(vec![positives.clone(), positives], 0);
    mean_scalar(lse.sub(pos))
}

/// NT-Xent against a memory bank (MoCo): logits `[q̄·k̄, q̄·Q]/T`, target 0, mean over B.
/// `bank` holds unit vectors and is treated as a constant.
pub fn nt_xent_bank<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    bank: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 1> {
    let q = l2_normalize(q);
    let k = l2_normalize(k);
    let inv_t = 1.0 / temperature;
    let positives = q.clone().mul(k).sum_dim(1).mul_scalar(inv_t);
    let negatives = q.matmul(bank.detach().transpose()).mul_scalar(inv_t);
    let logits = Tensor::cat(vec![positives.clone(), negatives], 1);
    mean_scalar(logsumexp(logits).sub(positives))
}

/// Negative cosine similarity: −mean_i a_i·b_i / max(‖a_i‖‖b_i‖, 1e-8).
pub fn negative_cosine<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 1> {
    let dot = a.clone().mul(b.clone()).sum_dim(1);
    let na = a.square().sum_dim(1).sqrt();
    let nb = b.square().sum_dim(1).sqrt();
    mean_scalar(dot.div(na.mul(nb).clamp_min(1e-8))).neg()
}

/// BYOL's symmetric loss ½·NegCos(p0, sg(z1)) + ½·NegCos(p1, sg(z0)).
pub fn symmetric_negative_cosine<B: Backend>(
    p0: Tensor<B, 2>,
    z0: Tensor<B, 2>,
    p1: Tensor<B, 2>,
    z1: Tensor<B, 2>,
) -> Tensor<B, 1> {
    negative_cosine(p0, z1.detach())
        .add(negative_cosine(p1, z0.detach()))
        .mul_scalar(0.5)
}

fn covariance_penalty<B: Backend>(z: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, d] = z.dims();
    let centred = z.clone().sub(z.mean_dim(0));
    let cov = centred
        .clone()
        .transpose()
        .matmul(centred)
        .div_scalar((n as f64 - 1.0).max(1.0));
    let mask = diagonal_mask::<B>(d, &cov.device());
    cov.mask_fill(mask, 0.0).square().sum().div_scalar(d as f64)
}

fn variance_penalty<B: Backend>(z: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, _] = z.dims();
    let centred = z.clone().sub(z.mean_dim(0));
    let var = centred
        .square()
        .sum_dim(0)
        .div_scalar((n as f64 - 1.0).max(1.0));
    let std = var.add_scalar(1e-4).sqrt();
    burn::tensor::activation::relu(std.neg().add_scalar(1.0)).mean()
}

/// VICReg: λ·invariance + μ·variance + ν·covariance (lightly's formulas, ε 1e-4, ddof 1).
pub fn vicreg<B: Backend>(
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    invariance: f64,
    variance: f64,
    covariance: f64,
) -> Tensor<B, 1> {
    let inv = a.clone().sub(b.clone()).square().mean();
    let var = variance_penalty(a.clone())
        .add(variance_penalty(b.clone()))
        .mul_scalar(0.5);
    let cov = covariance_penalty(a).add(covariance_penalty(b));
    inv.mul_scalar(invariance)
        .add(var.mul_scalar(variance))
        .add(cov.mul_scalar(covariance))
}

/// Barlow Twins as lightly computes it: both views standardised with the statistics of the
/// stacked 2B rows (biased variance, ε 1e-5), C = ẑ_aᵀẑ_b / B,
/// L = Σ (C_dd − 1)² + λ·Σ_{c≠d} C_cd².
pub fn barlow_twins<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>, lambda: f64) -> Tensor<B, 1> {
    let [n, d] = a.dims();
    let both = Tensor::cat(vec![a, b], 0);
    let mean = both.clone().mean_dim(0);
    let centred = both.sub(mean);
    let var = centred.clone().square().mean_dim(0);
    let normed = centred.div(var.add_scalar(1e-5).sqrt());
    let za = normed.clone().slice([0..n, 0..d]);
    let zb = normed.slice([n..2 * n, 0..d]);
    let c = za.transpose().matmul(zb).div_scalar(n as f64);
    let mask = diagonal_mask::<B>(d, &c.device());
    let off = c.clone().mask_fill(mask.clone(), 0.0).square().sum();
    let on_diag = c.sub(Tensor::ones([d, d], &mask.device()));
    let on = on_diag.mask_fill(mask.bool_not(), 0.0).square().sum();
    on.add(off.mul_scalar(lambda))
}

/// CLIP loss: logits = s·āb̄ᵀ with s = exp(log_scale); ½[CE(logits, I) + CE(logitsᵀ, I)].
pub fn clip<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>, log_scale: Tensor<B, 1>) -> Tensor<B, 1> {
    let a = l2_normalize(a);
    let b = l2_normalize(b);
    let scale = log_scale.exp().unsqueeze_dim::<2>(0);
    let logits = a.clone().matmul(b.clone().transpose()).mul(scale.clone());
    let positives = a.mul(b).sum_dim(1).mul(scale);
    let rows = logsumexp(logits.clone()).sub(positives.clone());
    let cols = logsumexp(logits.transpose()).sub(positives);
    mean_scalar(rows).add(mean_scalar(cols)).mul_scalar(0.5)
}
