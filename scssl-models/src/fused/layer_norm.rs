//! LayerNorm over the last dimension (PyTorch's: biased variance, affine) as one fused
//! operation: one output buffer; the backward pass recomputes each row's mean and deviation
//! from the saved input.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use rayon::prelude::*;

use super::{FusedOp, cpu_tensor, shape, values};

/// Rows per parallel task; fixed, so the parameter gradients' sums (per task, then over
/// tasks in order) do not depend on the thread count.
const ROWS: usize = 64;

/// LayerNorm with variance offset `eps`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerNorm {
    eps: f64,
}

/// `(x − mean) / √(var + eps) · weight + bias` over the last dimension of `x`.
pub(crate) fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let inputs = [
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    ];
    let out = super::run::<B, _, 3>(LayerNorm::new(eps), inputs);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

impl LayerNorm {
    /// LayerNorm with variance offset `eps`.
    pub(crate) fn new(eps: f64) -> Self {
        LayerNorm { eps }
    }

    /// A row's mean and `√(var + eps)`.
    fn moments(&self, row: &[f32]) -> (f32, f32) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|&x| (x - mean) * (x - mean)).sum::<f32>() / n;
        (mean, (var + self.eps as f32).sqrt())
    }
}

impl FusedOp<3> for LayerNorm {
    fn forward(&self, [x, w, b]: &[NdArrayTensor; 3]) -> NdArrayTensor {
        let (xs, w, b) = (values(x), values(w), values(b));
        let width = w.len();
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(width * ROWS)
            .zip(xs.par_chunks(width * ROWS))
            .for_each(|(o, x)| {
                for (o, x) in o.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                    let (mean, sd) = self.moments(x);
                    for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w.iter()).zip(b.iter()) {
                        *o = (x - mean) / sd * w + b;
                    }
                }
            });
        cpu_tensor(out, &shape(x))
    }

    fn backward(&self, [x, w, b]: &[NdArrayTensor; 3], grad: &NdArrayTensor) -> [NdArrayTensor; 3] {
        let (xs, ws, gs) = (values(x), values(w), values(grad));
        let width = ws.len();
        let mut dx = vec![0.0f32; xs.len()];
        // per task: Σ dy ⊙ x̂ (the weight's gradient) then Σ dy (the bias's)
        let partial: Vec<Vec<f32>> = dx
            .par_chunks_mut(width * ROWS)
            .zip(xs.par_chunks(width * ROWS).zip(gs.par_chunks(width * ROWS)))
            .map(|(dx, (x, g))| {
                let mut sums = vec![0.0f32; 2 * width];
                let mut dxhat = vec![0.0f32; width];
                let mut xhat = vec![0.0f32; width];
                for ((dx, x), g) in dx
                    .chunks_exact_mut(width)
                    .zip(x.chunks_exact(width))
                    .zip(g.chunks_exact(width))
                {
                    let (mean, sd) = self.moments(x);
                    let (mut mean_d, mut mean_dx) = (0.0f32, 0.0f32);
                    for j in 0..width {
                        xhat[j] = (x[j] - mean) / sd;
                        dxhat[j] = g[j] * ws[j];
                        sums[j] += g[j] * xhat[j];
                        sums[width + j] += g[j];
                        mean_d += dxhat[j];
                        mean_dx += dxhat[j] * xhat[j];
                    }
                    let n = width as f32;
                    let (mean_d, mean_dx) = (mean_d / n, mean_dx / n);
                    for j in 0..width {
                        dx[j] = (dxhat[j] - mean_d - xhat[j] * mean_dx) / sd;
                    }
                }
                sums
            })
            .collect();
        let mut sums = vec![0.0f32; 2 * width];
        for p in &partial {
            for (s, v) in sums.iter_mut().zip(p) {
                *s += v;
            }
        }
        let db = sums.split_off(width);
        [
            cpu_tensor(dx, &shape(x)),
            cpu_tensor(sums, &shape(w)),
            cpu_tensor(db, &shape(b)),
        ]
    }

    fn reference<B: Backend>(&self, [x, w, b]: [FloatTensor<B>; 3]) -> FloatTensor<B> {
        let rank = burn::tensor::TensorMetadata::shape(&x).num_dims();
        let last = rank - 1;
        let mean = B::float_mean_dim(x.clone(), last);
        let centred = B::float_sub(x, mean);
        let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), last);
        let sd = B::float_sqrt(B::float_add_scalar(var, self.eps.into()));
        let y = B::float_div(centred, sd);
        // the parameters broadcast over every leading dimension
        let mut shape = vec![1; rank];
        shape[last] = burn::tensor::TensorMetadata::shape(&w).num_elements();
        let w = B::float_reshape(w, shape.clone().into());
        let b = B::float_reshape(b, shape.into());
        B::float_add(B::float_mul(y, w), b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::test_support::assert_matches_reference;

    #[test]
    fn fused_layer_norm_equals_the_reference() {
        // 70 rows of 24: more than one task, the last one short
        assert_matches_reference(LayerNorm { eps: 1e-12 }, [&[2, 35, 24], &[24], &[24]], 2e-5);
        assert_matches_reference(LayerNorm { eps: 1e-5 }, [&[3, 24], &[24], &[24]], 2e-5);
    }
}
