//! Exact (erf) GELU, `x · (1 + erf(x / √2)) / 2`, as one fused operation with the exact
//! derivative `(1 + erf(x / √2)) / 2 + x · φ(x)` in its backward pass (burn's own GELU
//! backward uses the tanh approximation's derivative, off by up to ~1e-3 from the exact one).

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use rayon::prelude::*;

use super::{FusedOp, cpu_tensor, shape, values};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The GELU operation (no settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gelu;

/// Exact GELU of `x`, element-wise.
pub(crate) fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let out = super::run::<B, _, 1>(Gelu, [x.into_primitive().tensor()]);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `(1 + erf(x / √2)) / 2`, the standard normal CDF (f64 inside, as burn-ndarray's erf).
fn normal_cdf(x: f32) -> f32 {
    ((1.0 + libm::erf(x as f64 / std::f64::consts::SQRT_2)) / 2.0) as f32
}

impl FusedOp<1> for Gelu {
    fn forward(&self, [x]: &[NdArrayTensor; 1]) -> NdArrayTensor {
        let xs = values(x);
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = x * normal_cdf(x);
                }
            });
        cpu_tensor(out, &shape(x))
    }

    fn backward(&self, [x]: &[NdArrayTensor; 1], grad: &NdArrayTensor) -> [NdArrayTensor; 1] {
        let (xs, gs) = (values(x), values(grad));
        let density = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
            .for_each(|(o, (x, g))| {
                for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                    let xd = x as f64;
                    let pdf = (density * (-0.5 * xd * xd).exp()) as f32;
                    *o = g * (normal_cdf(x) + x * pdf);
                }
            });
        [cpu_tensor(out, &shape(x))]
    }

    fn reference<B: Backend>(&self, [x]: [FloatTensor<B>; 1]) -> FloatTensor<B> {
        B::gelu(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::test_support::assert_matches_reference;

    #[test]
    fn values_match_burns_gelu() {
        // burn's backward uses the tanh approximation's derivative (~1e-3 off), so only the
        // values are compared with it; the gradient is checked against finite differences
        let x: Vec<f32> = (0..2001).map(|i| -6.0 + 12.0 * i as f32 / 2000.0).collect();
        let t = super::super::cpu_tensor(x.clone(), &[x.len()]);
        let reference = values(&Gelu.reference::<super::super::Cpu>([t.clone()])).into_owned();
        let fused = values(&Gelu.forward(&[t])).into_owned();
        let d = fused
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-6, "{d}");
    }

    #[test]
    fn the_gradient_is_the_exact_derivative() {
        let x: Vec<f32> = (0..401).map(|i| -4.0 + 8.0 * i as f32 / 400.0).collect();
        let n = x.len();
        let t = super::super::cpu_tensor(x.clone(), &[n]);
        let ones = super::super::cpu_tensor(vec![1.0; n], &[n]);
        let [g] = Gelu.backward(&[t], &ones);
        let g = values(&g).into_owned();
        for (&x, &g) in x.iter().zip(&g) {
            let f = |x: f64| x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)) / 2.0;
            let h = 1e-4;
            let fd = (f(x as f64 + h) - f(x as f64 - h)) / (2.0 * h);
            assert!((g as f64 - fd).abs() < 1e-5, "x {x}: {g} against {fd}");
        }
    }

    #[test]
    fn the_tape_step_gives_the_kernels_values() {
        // the fused path on the autodiff backend against the kernel itself: through the
        // reference the gradient would be burn's approximate one, so compare values only by
        // a tolerance wide enough for that difference
        assert_matches_reference(Gelu, [&[3, 5, 7]], 5e-3);
    }
}
