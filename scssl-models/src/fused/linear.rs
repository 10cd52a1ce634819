//! A linear layer `x · W (+ b)` on the last dimension of `x` as one fused operation.
//!
//! burn-ndarray 0.21 copies a tensor on every reshape, even a contiguous one (its `reshape`
//! turns the view `to_shape` returns into a new array), and its matmul reshapes both inputs
//! and the output: a linear layer on `[batch, tokens, width]` activations cost three copies of
//! them and a fresh buffer for the bias sum. The fused kernels run one GEMM on the flat rows
//! (matrixmultiply, threaded for products this size) with the bias as its starting value;
//! the backward pass runs `dy · Wᵀ`, `xᵀ · dy` and the bias's column sums.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::{FusedOp, cpu_tensor, shape, values};
use crate::layers::Dense;

/// Rows per task of the bias's column sums; fixed, so the sum's order does not depend on
/// the thread count.
const ROWS: usize = 256;

/// A linear layer with a bias (`N = 3`: input, weight, bias) or without (`N = 2`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear;

/// `layer` applied to the last dimension of `x` (any rank).
pub(crate) fn linear<B: Backend, const D: usize>(
    layer: &Dense<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let x = x.into_primitive().tensor();
    let w = layer.weight.val().into_primitive().tensor();
    let out = match &layer.bias {
        Some(b) => super::run::<B, _, 3>(Linear, [x, w, b.val().into_primitive().tensor()]),
        None => super::run::<B, _, 2>(Linear, [x, w]),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `x · W + b` on the CPU (`b` optional). The views below cannot fail: `x`'s last dimension
/// is `W`'s rows (the layers are built with their input width, and the methods check the
/// data's width against it before a pass), and the buffers are allocated to the shapes.
fn forward_cpu(x: &NdArrayTensor, w: &NdArrayTensor, b: Option<&NdArrayTensor>) -> NdArrayTensor {
    let (xs, ws) = (values(x), values(w));
    let ws_shape = shape(w);
    let (d_in, d_out) = (ws_shape[0], ws_shape[1]);
    let rows = xs.len() / d_in.max(1);
    let mut out = vec![0.0f32; rows * d_out];
    let beta = match b {
        Some(b) => {
            let bs = values(b);
            out.par_chunks_mut(d_out * ROWS).for_each(|o| {
                for row in o.chunks_exact_mut(d_out) {
                    row.copy_from_slice(&bs);
                }
            });
            1.0
        }
        None => 0.0,
    };
    let xv = ArrayView2::from_shape((rows, d_in), &xs[..]).expect("rows × in");
    let wv = ArrayView2::from_shape((d_in, d_out), &ws[..]).expect("in × out");
    let mut ov = ArrayViewMut2::from_shape((rows, d_out), &mut out[..]).expect("rows × out");
    general_mat_mul(1.0, &xv, &wv, beta, &mut ov);
    let mut out_shape = shape(x);
    if let Some(last) = out_shape.last_mut() {
        *last = d_out;
    }
    cpu_tensor(out, &out_shape)
}

/// The gradients of `x` and `W` from the output's.
fn backward_cpu(
    x: &NdArrayTensor,
    w: &NdArrayTensor,
    grad: &NdArrayTensor,
) -> (NdArrayTensor, NdArrayTensor) {
    let (xs, ws, gs) = (values(x), values(w), values(grad));
    let w_shape = shape(w);
    let (d_in, d_out) = (w_shape[0], w_shape[1]);
    let rows = xs.len() / d_in.max(1);
    let xv = ArrayView2::from_shape((rows, d_in), &xs[..]).expect("rows × in");
    let wv = ArrayView2::from_shape((d_in, d_out), &ws[..]).expect("in × out");
    let gv = ArrayView2::from_shape((rows, d_out), &gs[..]).expect("rows × out");
    let mut dx = vec![0.0f32; rows * d_in];
    general_mat_mul(
        1.0,
        &gv,
        &wv.t(),
        0.0,
        &mut ArrayViewMut2::from_shape((rows, d_in), &mut dx[..]).expect("rows × in"),
    );
    let mut dw = vec![0.0f32; d_in * d_out];
    general_mat_mul(
        1.0,
        &xv.t(),
        &gv,
        0.0,
        &mut ArrayViewMut2::from_shape((d_in, d_out), &mut dw[..]).expect("in × out"),
    );
    (cpu_tensor(dx, &shape(x)), cpu_tensor(dw, &w_shape))
}

/// The bias's gradient: the column sums of the output's gradient (`rows × d_out`), per
/// fixed task of rows, then over tasks in order.
fn column_sums(grad: &NdArrayTensor, d_out: usize) -> NdArrayTensor {
    let gs = values(grad);
    let partial: Vec<Vec<f32>> = gs
        .par_chunks(d_out * ROWS)
        .map(|g| {
            let mut s = vec![0.0f32; d_out];
            for row in g.chunks_exact(d_out) {
                for (s, v) in s.iter_mut().zip(row) {
                    *s += v;
                }
            }
            s
        })
        .collect();
    let mut s = vec![0.0f32; d_out];
    for p in &partial {
        for (s, v) in s.iter_mut().zip(p) {
            *s += v;
        }
    }
    cpu_tensor(s, &[d_out])
}

/// `x · W (+ b)` from burn's operations: `x` flattened to rows, then shaped back.
fn reference<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    b: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let x_shape = x.shape().to_vec();
    let w_shape = w.shape().to_vec();
    let rows = x_shape.iter().product::<usize>() / w_shape[0].max(1);
    let y = B::float_matmul(B::float_reshape(x, [rows, w_shape[0]].into()), w);
    let y = match b {
        Some(b) => B::float_add(y, B::float_reshape(b, [1, w_shape[1]].into())),
        None => y,
    };
    let mut out_shape = x_shape;
    if let Some(last) = out_shape.last_mut() {
        *last = w_shape[1];
    }
    B::float_reshape(y, out_shape.into())
}

impl FusedOp<3> for Linear {
    fn forward(&self, [x, w, b]: &[NdArrayTensor; 3]) -> NdArrayTensor {
        forward_cpu(x, w, Some(b))
    }

    fn backward(&self, [x, w, _]: &[NdArrayTensor; 3], grad: &NdArrayTensor) -> [NdArrayTensor; 3] {
        let (dx, dw) = backward_cpu(x, w, grad);
        [dx, dw, column_sums(grad, shape(w)[1])]
    }

    fn reference<B: Backend>(&self, [x, w, b]: [FloatTensor<B>; 3]) -> FloatTensor<B> {
        reference::<B>(x, w, Some(b))
    }
}

impl FusedOp<2> for Linear {
    fn forward(&self, [x, w]: &[NdArrayTensor; 2]) -> NdArrayTensor {
        forward_cpu(x, w, None)
    }

    fn backward(&self, [x, w]: &[NdArrayTensor; 2], grad: &NdArrayTensor) -> [NdArrayTensor; 2] {
        let (dx, dw) = backward_cpu(x, w, grad);
        [dx, dw]
    }

    fn reference<B: Backend>(&self, [x, w]: [FloatTensor<B>; 2]) -> FloatTensor<B> {
        reference::<B>(x, w, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::test_support::assert_matches_reference;

    #[test]
    fn fused_linear_equals_the_reference() {
        // 600 rows: more than one task of the bias's sums
        assert_matches_reference::<_, 3>(Linear, [&[4, 150, 12], &[12, 7], &[7]], 2e-4);
        assert_matches_reference::<_, 2>(Linear, [&[9, 12], &[12, 5]], 2e-5);
    }

    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        use crate::fused::test_support::random;
        let (rows, d_in, d_out) = (3000, 40, 24);
        let t = |shape: &[usize], seed| {
            super::super::cpu_tensor(random(shape.iter().product(), seed), shape)
        };
        let inputs = [t(&[rows, d_in], 1), t(&[d_in, d_out], 2), t(&[d_out], 3)];
        let grad = t(&[rows, d_out], 4);
        let on = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool")
                .install(|| {
                    let out = FusedOp::<3>::forward(&Linear, &inputs);
                    let grads = FusedOp::<3>::backward(&Linear, &inputs, &grad);
                    std::iter::once(out)
                        .chain(grads)
                        .map(|x| values(&x).into_owned())
                        .collect::<Vec<_>>()
                })
        };
        let (one, two) = (on(1), on(2));
        for (a, b) in one.iter().zip(&two) {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}
