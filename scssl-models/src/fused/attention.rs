//! Multi-head self-attention with attention-probability dropout as one fused operation:
//! `softmax(Q Kᵀ / √d) ⊙ mask · V` per head, for `[batch, tokens, width]` inputs whose width
//! holds the heads side by side (the layout HF's ViT and the projections produce).
//!
//! Built from burn's tensor operations, attention keeps every `[batch, heads, tokens,
//! tokens]` intermediate (the scores, the scaled scores, the softmax's steps, the dropout
//! mask, the dropped probabilities) alive for the backward pass: at scCLIP's size (batch
//! 256, 8 heads, 129 tokens) that is 136 MB each, a dozen of them per layer, and on the CPU
//! the kernel's zeroing of the fresh pages took about half of a training step. The fused
//! operation keeps only Q, K and V: its backward pass recomputes each head's probabilities
//! (flash-attention style) and redraws the dropout mask from its seed, so nothing of size
//! tokens² outlives one head's computation.
//!
//! The CPU backend (`NdArray<f32>`, with or without autodiff) runs the fused kernels here
//! (one task per cell of the batch, its heads in turn; the softmax compiled for this CPU's
//! widest vectors); any other backend (CUDA) runs [`reference_self_attention`], the same computation from burn's
//! operations. Both draw the same mask ([`dropout_keeps`]), so the two agree to rounding,
//! which the tests check for values and gradients.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::softmax::{softmax_rows_plain, sum_of_products};
use super::{FusedOp, cpu_tensor, dropout_keeps, keep_scale, mask_tensor, shape, values};

/// The settings of one attention call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AttentionSpec {
    /// Heads; must divide the width.
    pub heads: usize,
    /// Probability of dropping an attention weight (0 in evaluation).
    pub dropout: f64,
    /// Seed of the dropout mask.
    pub seed: u64,
}

/// The shape of one call: batch, tokens, width, heads and the width of a head.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    tokens: usize,
    width: usize,
    heads: usize,
    head_width: usize,
}

impl Dims {
    fn new(shape: [usize; 3], heads: usize) -> Self {
        let [batch, tokens, width] = shape;
        Dims {
            batch,
            tokens,
            width,
            heads,
            head_width: width / heads,
        }
    }
}

/// Self-attention of `[batch, tokens, width]` queries, keys and values (heads side by side in
/// the width): the `[batch, tokens, width]` context, heads side by side again.
pub(crate) fn self_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    spec: AttentionSpec,
) -> Tensor<B, 3> {
    let spec = AttentionSpec {
        dropout: spec.dropout.max(0.0),
        ..spec
    };
    let inputs = [q, k, v].map(|x| x.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(super::run::<B, _, 3>(spec, inputs)))
}

impl FusedOp<3> for AttentionSpec {
    fn forward(&self, [q, k, v]: &[NdArrayTensor; 3]) -> NdArrayTensor {
        forward_cpu(q, k, v, dims_of(q, self.heads), *self)
    }

    fn backward(&self, [q, k, v]: &[NdArrayTensor; 3], grad: &NdArrayTensor) -> [NdArrayTensor; 3] {
        backward_cpu(q, k, v, grad, dims_of(q, self.heads), *self)
    }

    fn reference<B: Backend>(&self, inputs: [FloatTensor<B>; 3]) -> FloatTensor<B> {
        let [q, k, v] = inputs.map(|x| Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(x)));
        reference_self_attention(q, k, v, *self)
            .into_primitive()
            .tensor()
    }
}

fn dims_of(t: &NdArrayTensor, heads: usize) -> Dims {
    let s = shape(t);
    Dims::new([s[0], s[1], s[2]], heads)
}

/// [`self_attention`] from burn's tensor operations (any backend, autodiff through burn):
/// the reference the fused kernels are tested against and the path of non-CPU backends.
pub(crate) fn reference_self_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    spec: AttentionSpec,
) -> Tensor<B, 3> {
    let d = Dims::new(q.dims(), spec.heads);
    let heads = |x: Tensor<B, 3>| {
        x.reshape([d.batch, d.tokens, d.heads, d.head_width])
            .swap_dims(1, 2)
    };
    let (q, k, v) = (heads(q), heads(k), heads(v));
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .div_scalar((d.head_width as f64).sqrt());
    let mut probs = softmax(scores, 3);
    if spec.dropout > 0.0 {
        let shape = [d.batch, d.heads, d.tokens, d.tokens];
        let like = probs.clone().into_primitive().tensor();
        let mask = mask_tensor::<B>(spec.seed, spec.dropout, &shape, &like);
        probs = probs.mul(Tensor::from_primitive(TensorPrimitive::Float(mask)));
    }
    probs
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([d.batch, d.tokens, d.width])
}

/// A row-major matrix in a slice: element `(i, j)` at `offset + i · row + j · col`.
#[derive(Debug, Clone, Copy)]
struct Layout {
    offset: usize,
    row: usize,
    col: usize,
}

/// `c = alpha · a · b` (the views' `expect`s hold by construction: every layout is a head's
/// block of a slab or a `tokens × tokens` scratch buffer) for `a` (`m × k`, any [`Layout`]), `b` (`k × n`, rows of `n`
/// contiguous values `b_row` apart) and `c` (`m × n`, rows contiguous, `c_row` apart), through
/// `ndarray`'s GEMM (matrixmultiply). At a head's size (at most tokens × tokens × head width)
/// matrixmultiply's own threading stays off (its size rule), so the products run inside the
/// per-cell tasks without oversubscribing the cores.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    al: Layout,
    b: &[f32],
    b_offset: usize,
    b_row: usize,
    c: &mut [f32],
    c_offset: usize,
    c_row: usize,
) {
    let a = ArrayView2::from_shape((m, k).strides((al.row, al.col)), &a[al.offset..])
        .expect("a's layout lies in its slice");
    let b = ArrayView2::from_shape((k, n).strides((b_row, 1)), &b[b_offset..])
        .expect("b's layout lies in its slice");
    let mut c = ArrayViewMut2::from_shape((m, n).strides((c_row, 1)), &mut c[c_offset..])
        .expect("c's layout lies in its slice");
    general_mat_mul(alpha, &a, &b, 0.0, &mut c);
}

/// `out = blockᵀ` for the `tokens × head width` block of a slab at column `c0`: rows of
/// `tokens` contiguous values, one per column of the head.
#[inline(always)]
fn transpose_block(slab: &[f32], d: Dims, c0: usize, out: &mut [f32]) {
    let t = d.tokens;
    for (i, row) in slab.chunks_exact(d.width).enumerate() {
        for (j, &x) in row[c0..c0 + d.head_width].iter().enumerate() {
            out[j * t + i] = x;
        }
    }
}

/// Per-thread scratch of one head: the probabilities, the dropout factors (0 or 1 / (1 − p);
/// unused without dropout), the dropped probabilities and their gradient (each
/// `tokens × tokens`), and one head's keys and values transposed (`head width × tokens`).
struct Scratch {
    probs: Vec<f32>,
    mask: Vec<f32>,
    dropped: Vec<f32>,
    grad: Vec<f32>,
    keys_t: Vec<f32>,
    values_t: Vec<f32>,
}

impl Scratch {
    fn new(d: Dims) -> Self {
        let (tt, td) = (d.tokens * d.tokens, d.tokens * d.head_width);
        Scratch {
            probs: vec![0.0; tt],
            mask: vec![0.0; tt],
            dropped: vec![0.0; tt],
            grad: vec![0.0; tt],
            keys_t: vec![0.0; td],
            values_t: vec![0.0; td],
        }
    }

    /// The dropped probabilities of the last [`head_probabilities`] (the probabilities
    /// themselves without dropout).
    fn dropped(&self, spec: AttentionSpec) -> &[f32] {
        if spec.dropout > 0.0 {
            &self.dropped
        } else {
            &self.probs
        }
    }
}

/// Head `head` of cell `cell` (`qs`, `ks`: the cell's `[tokens, width]` slabs): the
/// probabilities `softmax(Q Kᵀ / √d)` into `sc.probs`, the dropout factors into `sc.mask` and
/// the dropped probabilities into `sc.dropped` (both untouched without dropout).
#[inline(always)]
fn head_probabilities(
    qs: &[f32],
    ks: &[f32],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    head: usize,
    sc: &mut Scratch,
) {
    let (t, c0) = (d.tokens, head * d.head_width);
    transpose_block(ks, d, c0, &mut sc.keys_t);
    let q = Layout {
        offset: c0,
        row: d.width,
        col: 1,
    };
    gemm(
        t,
        d.head_width,
        t,
        1.0,
        qs,
        q,
        &sc.keys_t,
        0,
        t,
        &mut sc.probs,
        0,
        t,
    );
    softmax_rows_plain(&mut sc.probs, t, (d.head_width as f32).sqrt());
    if spec.dropout > 0.0 {
        let scale = keep_scale(spec.dropout);
        let base = ((cell * d.heads + head) * t * t) as u64;
        for (j, m) in sc.mask.iter_mut().enumerate() {
            *m = if dropout_keeps(spec.seed, base + j as u64, spec.dropout) {
                scale
            } else {
                0.0
            };
        }
        for ((o, &p), &m) in sc.dropped.iter_mut().zip(&sc.probs).zip(&sc.mask) {
            *o = p * m;
        }
    }
}

/// One cell of the forward pass: every head's context into `out` (the cell's slab).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_cell_plain(
    qs: &[f32],
    ks: &[f32],
    vs: &[f32],
    out: &mut [f32],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    sc: &mut Scratch,
) {
    let t = d.tokens;
    let rows = Layout {
        offset: 0,
        row: t,
        col: 1,
    };
    for head in 0..d.heads {
        let c0 = head * d.head_width;
        head_probabilities(qs, ks, d, spec, cell, head, sc);
        let dropped = sc.dropped(spec);
        gemm(
            t,
            t,
            d.head_width,
            1.0,
            dropped,
            rows,
            vs,
            c0,
            d.width,
            out,
            c0,
            d.width,
        );
    }
}

/// One cell of the backward pass: every head's gradients of Q, K and V from the context's
/// (`gs`), recomputing the head's probabilities and mask.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_cell_plain(
    [qs, ks, vs, gs]: [&[f32]; 4],
    [dq, dk, dv]: [&mut [f32]; 3],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    sc: &mut Scratch,
) {
    let t = d.tokens;
    let hw = d.head_width;
    let inv_sqrt = 1.0 / (hw as f32).sqrt();
    let dropout = spec.dropout > 0.0;
    for head in 0..d.heads {
        let c0 = head * hw;
        head_probabilities(qs, ks, d, spec, cell, head, sc);
        transpose_block(vs, d, c0, &mut sc.values_t);
        let transposed = Layout {
            offset: 0,
            row: 1,
            col: t,
        };
        let rows = Layout {
            offset: 0,
            row: t,
            col: 1,
        };
        // dV = dropped probabilities ᵀ · dC
        gemm(
            t,
            t,
            hw,
            1.0,
            sc.dropped(spec),
            transposed,
            gs,
            c0,
            d.width,
            dv,
            c0,
            d.width,
        );
        // the dropped probabilities' gradient dC · Vᵀ
        let g = Layout {
            offset: c0,
            row: d.width,
            col: 1,
        };
        gemm(t, hw, t, 1.0, gs, g, &sc.values_t, 0, t, &mut sc.grad, 0, t);
        // the scores' gradient, in place: P ⊙ (dP − Σ dP ⊙ P), where dP = mask ⊙ d(dropped)
        // and Σ dP ⊙ P = Σ d(dropped) ⊙ dropped
        let dropped = if dropout { &sc.dropped } else { &sc.probs };
        for (((gr, pr), dr), mr) in sc
            .grad
            .chunks_exact_mut(t)
            .zip(sc.probs.chunks_exact(t))
            .zip(dropped.chunks_exact(t))
            .zip(sc.mask.chunks_exact(t))
        {
            let dot = sum_of_products(gr, dr);
            if dropout {
                for ((g, &p), &m) in gr.iter_mut().zip(pr).zip(mr) {
                    *g = p * (*g * m - dot);
                }
            } else {
                for (g, &p) in gr.iter_mut().zip(pr) {
                    *g = p * (*g - dot);
                }
            }
        }
        // dQ = dS · K / √d and dK = dSᵀ · Q / √d
        gemm(
            t, t, hw, inv_sqrt, &sc.grad, rows, ks, c0, d.width, dq, c0, d.width,
        );
        gemm(
            t, t, hw, inv_sqrt, &sc.grad, transposed, qs, c0, d.width, dk, c0, d.width,
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn forward_cell_avx512(
    qs: &[f32],
    ks: &[f32],
    vs: &[f32],
    out: &mut [f32],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    sc: &mut Scratch,
) {
    forward_cell_plain(qs, ks, vs, out, d, spec, cell, sc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn forward_cell_avx2(
    qs: &[f32],
    ks: &[f32],
    vs: &[f32],
    out: &mut [f32],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    sc: &mut Scratch,
) {
    forward_cell_plain(qs, ks, vs, out, d, spec, cell, sc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn backward_cell_avx512(
    inputs: [&[f32]; 4],
    outputs: [&mut [f32]; 3],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    sc: &mut Scratch,
) {
    backward_cell_plain(inputs, outputs, d, spec, cell, sc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn backward_cell_avx2(
    inputs: [&[f32]; 4],
    outputs: [&mut [f32]; 3],
    d: Dims,
    spec: AttentionSpec,
    cell: usize,
    sc: &mut Scratch,
) {
    backward_cell_plain(inputs, outputs, d, spec, cell, sc)
}

/// The forward kernel: one task per cell, its heads in turn, with this CPU's widest vectors
/// (the same bits at every width).
fn forward_cpu(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    d: Dims,
    spec: AttentionSpec,
) -> NdArrayTensor {
    let (q, k, v) = (values(q), values(k), values(v));
    let slab = d.tokens * d.width;
    let mut out = vec![0.0f32; d.batch * slab];
    let level = scssl_data::simd::level();
    out.par_chunks_mut(slab).enumerate().for_each_init(
        || Scratch::new(d),
        |sc, (cell, out)| {
            let range = cell * slab..(cell + 1) * slab;
            let (qs, ks, vs) = (&q[range.clone()], &k[range.clone()], &v[range]);
            #[cfg(target_arch = "x86_64")]
            match level {
                // SAFETY: each version runs only on a CPU that has its features.
                scssl_data::simd::Level::Avx512 => {
                    return unsafe { forward_cell_avx512(qs, ks, vs, out, d, spec, cell, sc) };
                }
                scssl_data::simd::Level::Avx2 => {
                    return unsafe { forward_cell_avx2(qs, ks, vs, out, d, spec, cell, sc) };
                }
                scssl_data::simd::Level::Baseline => {}
            }
            let _ = level;
            forward_cell_plain(qs, ks, vs, out, d, spec, cell, sc)
        },
    );
    cpu_tensor(out, &[d.batch, d.tokens, d.width])
}

/// The backward kernel: the gradients of Q, K and V from the context's.
fn backward_cpu(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    grad: &NdArrayTensor,
    d: Dims,
    spec: AttentionSpec,
) -> [NdArrayTensor; 3] {
    let (q, k, v, g) = (values(q), values(k), values(v), values(grad));
    let slab = d.tokens * d.width;
    let mut dq = vec![0.0f32; d.batch * slab];
    let mut dk = vec![0.0f32; d.batch * slab];
    let mut dv = vec![0.0f32; d.batch * slab];
    let level = scssl_data::simd::level();
    dq.par_chunks_mut(slab)
        .zip(dk.par_chunks_mut(slab))
        .zip(dv.par_chunks_mut(slab))
        .enumerate()
        .for_each_init(
            || Scratch::new(d),
            |sc, (cell, ((dq, dk), dv))| {
                let range = cell * slab..(cell + 1) * slab;
                let inputs = [
                    &q[range.clone()],
                    &k[range.clone()],
                    &v[range.clone()],
                    &g[range],
                ];
                let outputs = [dq, dk, dv];
                #[cfg(target_arch = "x86_64")]
                match level {
                    // SAFETY: each version runs only on a CPU that has its features.
                    scssl_data::simd::Level::Avx512 => {
                        return unsafe { backward_cell_avx512(inputs, outputs, d, spec, cell, sc) };
                    }
                    scssl_data::simd::Level::Avx2 => {
                        return unsafe { backward_cell_avx2(inputs, outputs, d, spec, cell, sc) };
                    }
                    scssl_data::simd::Level::Baseline => {}
                }
                let _ = level;
                backward_cell_plain(inputs, outputs, d, spec, cell, sc)
            },
        );
    let shape = [d.batch, d.tokens, d.width];
    [
        cpu_tensor(dq, &shape),
        cpu_tensor(dk, &shape),
        cpu_tensor(dv, &shape),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{CpuBackend, CpuTrainBackend};
    use burn::tensor::TensorData;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: [usize; 3], seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..shape.iter().product::<usize>())
            .map(|_| rng.random::<f32>() * 4.0 - 2.0)
            .collect()
    }

    fn tensor<B: Backend>(data: Vec<f32>, shape: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(data, shape), &Default::default())
    }

    fn vals<B: Backend>(t: Tensor<B, 3>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().expect("f32")
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    type T3 = Tensor<CpuTrainBackend, 3>;
    type AttentionFn = fn(T3, T3, T3, AttentionSpec) -> T3;

    /// The context and the gradients of Q, K and V of `Σ context ⊙ w` through `f`.
    fn run(f: AttentionFn, shape: [usize; 3], spec: AttentionSpec) -> [Vec<f32>; 4] {
        let q = tensor::<CpuTrainBackend>(random(shape, 1), shape).require_grad();
        let k = tensor::<CpuTrainBackend>(random(shape, 2), shape).require_grad();
        let v = tensor::<CpuTrainBackend>(random(shape, 3), shape).require_grad();
        let w = tensor::<CpuTrainBackend>(random(shape, 4), shape);
        let out = f(q.clone(), k.clone(), v.clone(), spec);
        let grads = out.clone().mul(w).sum().backward();
        let g = |t: &Tensor<CpuTrainBackend, 3>| vals(t.grad(&grads).expect("a gradient"));
        [vals(out), g(&q), g(&k), g(&v)]
    }

    #[test]
    fn fused_values_and_gradients_equal_burns_operations() {
        // 37 tokens: rows that are not a multiple of the sixteen summing lanes
        let shape = [3, 37, 24];
        for dropout in [0.0, 0.3] {
            let spec = AttentionSpec {
                heads: 3,
                dropout,
                seed: 11,
            };
            let fused = run(self_attention, shape, spec);
            let reference = run(reference_self_attention, shape, spec);
            for (what, (a, b)) in ["context", "dQ", "dK", "dV"]
                .iter()
                .zip(fused.iter().zip(&reference))
            {
                let d = max_diff(a, b);
                assert!(d < 2e-5, "{what} with dropout {dropout}: differs by {d}");
                assert!(a.iter().all(|x| x.is_finite()));
            }
        }
    }

    #[test]
    fn the_inference_backend_runs_the_same_kernel() {
        let shape = [2, 9, 16];
        let spec = AttentionSpec {
            heads: 4,
            dropout: 0.0,
            seed: 0,
        };
        let t = |seed| tensor::<CpuBackend>(random(shape, seed), shape);
        let fused = vals(self_attention(t(1), t(2), t(3), spec));
        let reference = vals(reference_self_attention(t(1), t(2), t(3), spec));
        assert!(max_diff(&fused, &reference) < 1e-5);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let shape = [5, 20, 16];
        let spec = AttentionSpec {
            heads: 2,
            dropout: 0.25,
            seed: 3,
        };
        let on = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool")
                .install(|| run(self_attention, shape, spec))
        };
        let (one, two) = (on(1), on(2));
        for (a, b) in one.iter().zip(&two) {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}
