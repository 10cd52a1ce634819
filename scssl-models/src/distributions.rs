//! Count likelihoods and the Gaussian KL of scvi-tools (`scvi.distributions._negative_binomial`,
//! scvi-tools 1.1), elementwise on tensors and differentiable through burn's autodiff.
//!
//! burn has no `lgamma`, so [`lgamma`] is built from differentiable primitives: the recurrence
//! lgamma(z) = lgamma(z + 6) − Σ_{k<6} ln(z + k) and Stirling's series at z + 6 ≥ 6 (error below
//! 1e-10 there), whose derivative is the matching digamma approximation.

use burn::tensor::Tensor;
use burn::tensor::activation::softplus;
use burn::tensor::backend::Backend;

/// ln Γ(z) for z > 0, elementwise.
pub fn lgamma<B: Backend, const D: usize>(z: Tensor<B, D>) -> Tensor<B, D> {
    let mut shift = z.clone().log();
    for k in 1..6 {
        shift = shift.add(z.clone().add_scalar(k as f64).log());
    }
    let w = z.add_scalar(6.0);
    let inv = w.clone().recip();
    let inv2 = inv.clone().square();
    // 1/(12w) − 1/(360w³) + 1/(1260w⁵) − 1/(1680w⁷), in Horner form
    let series = inv.mul(
        inv2.clone()
            .mul(
                inv2.clone()
                    .mul(inv2.mul_scalar(-1.0 / 1680.0).add_scalar(1.0 / 1260.0))
                    .add_scalar(-1.0 / 360.0),
            )
            .add_scalar(1.0 / 12.0),
    );
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    w.clone()
        .sub_scalar(0.5)
        .mul(w.clone().log())
        .sub(w)
        .add_scalar(half_ln_2pi)
        .add(series)
        .sub(shift)
}

/// ε of scvi-tools' likelihoods.
pub const EPS: f64 = 1e-8;

/// log NB(x; μ, θ) (mean μ, inverse dispersion θ), scvi-tools' `log_nb_positive`.
pub fn log_nb_positive<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    mu: Tensor<B, D>,
    theta: Tensor<B, D>,
) -> Tensor<B, D> {
    let log_theta_mu_eps = theta.clone().add(mu.clone()).add_scalar(EPS).log();
    theta
        .clone()
        .mul(
            theta
                .clone()
                .add_scalar(EPS)
                .log()
                .sub(log_theta_mu_eps.clone()),
        )
        .add(
            x.clone()
                .mul(mu.add_scalar(EPS).log().sub(log_theta_mu_eps)),
        )
        .add(lgamma(x.clone().add(theta.clone())))
        .sub(lgamma(theta))
        .sub(lgamma(x.add_scalar(1.0)))
}

/// log ZINB(x; μ, θ, π) with π the logit of the zero-inflation probability, scvi-tools'
/// `log_zinb_positive` (cases for x < ε and x > ε, as there).
pub fn log_zinb_positive<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    mu: Tensor<B, D>,
    theta: Tensor<B, D>,
    pi: Tensor<B, D>,
) -> Tensor<B, D> {
    let softplus_pi = softplus(pi.clone().neg(), 1.0);
    let log_theta_eps = theta.clone().add_scalar(EPS).log();
    let log_theta_mu_eps = theta.clone().add(mu.clone()).add_scalar(EPS).log();
    let pi_theta_log = pi.neg().add(
        theta
            .clone()
            .mul(log_theta_eps.sub(log_theta_mu_eps.clone())),
    );
    let case_zero = softplus(pi_theta_log.clone(), 1.0).sub(softplus_pi.clone());
    let zero = x.clone().lower_elem(EPS).float();
    let nonzero = x.clone().greater_elem(EPS).float();
    let case_non_zero = softplus_pi
        .neg()
        .add(pi_theta_log)
        .add(
            x.clone()
                .mul(mu.add_scalar(EPS).log().sub(log_theta_mu_eps)),
        )
        .add(lgamma(x.clone().add(theta.clone())))
        .sub(lgamma(theta))
        .sub(lgamma(x.add_scalar(1.0)));
    zero.mul(case_zero).add(nonzero.mul(case_non_zero))
}

/// log Poisson(x; μ), as `torch.distributions.Poisson(μ).log_prob(x)`.
pub fn log_poisson<B: Backend, const D: usize>(x: Tensor<B, D>, mu: Tensor<B, D>) -> Tensor<B, D> {
    x.clone()
        .mul(mu.clone().log())
        .sub(mu)
        .sub(lgamma(x.add_scalar(1.0)))
}

/// KL(N(m, σ²) ‖ N(0, 1)) per cell, summed over the latent dimensions (`[n, d]` → `[n]`).
pub fn kl_standard_normal<B: Backend>(mean: Tensor<B, 2>, var: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = mean.dims()[0];
    var.clone()
        .add(mean.square())
        .sub_scalar(1.0)
        .sub(var.log())
        .mul_scalar(0.5)
        .sum_dim(1)
        .reshape([n])
}

/// log of the two-component NB mixture with a shared θ, scvi-tools' `log_mixture_nb` (totalVI's
/// protein likelihood): logsumexp(log NB(x; μ₁, θ), log NB(x; μ₂, θ) − π) − softplus(−π), so
/// σ(π) is the probability of component 1 (the background).
pub fn log_mixture_nb<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    mu_1: Tensor<B, D>,
    mu_2: Tensor<B, D>,
    theta: Tensor<B, D>,
    pi_logits: Tensor<B, D>,
) -> Tensor<B, D> {
    let log_theta_mu_1_eps = theta.clone().add(mu_1.clone()).add_scalar(EPS).log();
    let log_theta_mu_2_eps = theta.clone().add(mu_2.clone()).add_scalar(EPS).log();
    let lgammas = lgamma(x.clone().add(theta.clone()))
        .sub(lgamma(theta.clone()))
        .sub(lgamma(x.clone().add_scalar(1.0)));
    let log_theta_eps = theta.clone().add_scalar(EPS).log();
    let log_nb_1 = theta
        .clone()
        .mul(log_theta_eps.clone().sub(log_theta_mu_1_eps.clone()))
        .add(
            x.clone()
                .mul(mu_1.add_scalar(EPS).log().sub(log_theta_mu_1_eps)),
        )
        .add(lgammas.clone());
    let log_nb_2 = theta
        .mul(log_theta_eps.sub(log_theta_mu_2_eps.clone()))
        .add(x.mul(mu_2.add_scalar(EPS).log().sub(log_theta_mu_2_eps)))
        .add(lgammas)
        .sub(pi_logits.clone());
    // logsumexp of the two, stabilised by their maximum (torch.logsumexp)
    // max(a, b) = (a + b + |a − b|)/2 (burn-ndarray's `max_pair` on f64 goes through f32)
    let max = log_nb_1
        .clone()
        .add(log_nb_2.clone())
        .add(log_nb_1.clone().sub(log_nb_2.clone()).abs())
        .mul_scalar(0.5);
    let lse = log_nb_1
        .sub(max.clone())
        .exp()
        .add(log_nb_2.sub(max.clone()).exp())
        .log()
        .add(max);
    lse.sub(softplus(pi_logits.neg(), 1.0))
}

/// KL(N(m₁, s₁²) ‖ N(m₂, s₂²)) elementwise, with scales (standard deviations) `s`, as
/// `torch.distributions.kl_divergence` of two `Normal`s.
pub fn kl_normal<B: Backend, const D: usize>(
    m1: Tensor<B, D>,
    s1: Tensor<B, D>,
    m2: Tensor<B, D>,
    s2: Tensor<B, D>,
) -> Tensor<B, D> {
    let var_ratio = s1.clone().div(s2.clone()).square();
    let t1 = m1.sub(m2).div(s2).square();
    var_ratio
        .clone()
        .add(t1)
        .sub_scalar(1.0)
        .sub(var_ratio.log())
        .mul_scalar(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B64 = NdArray<f64>;

    fn t(v: &[f64]) -> Tensor<B64, 1> {
        Tensor::from_floats(v, &Default::default())
    }

    #[test]
    fn lgamma_matches_known_values() {
        // Γ(1) = Γ(2) = 1, Γ(0.5) = √π, Γ(10) = 362880; 1e-3 and 1e5 from Python's math.lgamma
        let z = t(&[1.0, 2.0, 0.5, 10.0, 1e-3, 1e5]);
        let got: Vec<f64> = lgamma(z).into_data().to_vec().unwrap();
        let want = [
            0.0,
            0.0,
            0.5 * std::f64::consts::PI.ln(),
            362880f64.ln(),
            6.907_178_885_383_854,
            1_051_287.708_973_656_6,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-7 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
}
