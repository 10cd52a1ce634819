//! Operations fused into one kernel each on the CPU, with their own backward pass: multi-head
//! self-attention with attention dropout ([`attention`]), LayerNorm ([`layer_norm`]), exact
//! GELU ([`gelu`]), seeded inverted dropout ([`dropout`]) and the linear layer ([`linear`]).
//!
//! burn-ndarray runs each tensor operation as a fresh buffer, and autodiff keeps many of them
//! for the backward pass: attention built from burn's operations keeps a dozen
//! `[batch, heads, tokens, tokens]` tensors per layer, LayerNorm nine and GELU five of the
//! activations' size. On this project's CPUs the kernel's zeroing of those fresh pages took
//! about half of a scCLIP training step. A fused operation writes one output and keeps only
//! its inputs; its backward pass recomputes what it needs (attention's probabilities, the
//! dropout mask from its seed, LayerNorm's row statistics).
//!
//! Each operation is a [`FusedOp`]: a CPU forward and backward kernel on `NdArray<f32>`
//! tensors, and a reference built from burn's operations. [`run`] picks the kernels when the
//! backend is the CPU backend (`NdArray<f32>`, or `Autodiff` of it, where the operation goes on
//! the tape as one step) and the reference on any other backend (CUDA), so the networks stay
//! generic over the backend. The tests compare kernels and references, values and gradients.

pub(crate) mod attention;
pub(crate) mod dropout;
pub(crate) mod gelu;
pub(crate) mod layer_norm;
pub(crate) mod linear;
mod softmax;

use std::any::Any;
use std::borrow::Cow;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{FloatDType, TensorData, TensorMetadata};
use burn_ndarray::{NdArray, NdArrayTensor};

/// The CPU inference backend.
type Cpu = NdArray<f32>;

/// The CPU training backend's tensor, the one a fused operation records on the tape.
type TrainPrimitive = FloatTensor<Autodiff<Cpu>>;

/// One fused operation of `N` float inputs and one output.
pub(crate) trait FusedOp<const N: usize>: Clone + Send + std::fmt::Debug + 'static {
    /// The output of `inputs` on the CPU.
    fn forward(&self, inputs: &[NdArrayTensor; N]) -> NdArrayTensor;

    /// The gradient of every input from the output's (`grad`).
    fn backward(&self, inputs: &[NdArrayTensor; N], grad: &NdArrayTensor) -> [NdArrayTensor; N];

    /// The same operation from burn's tensor operations (any backend, autodiff through burn).
    fn reference<B: Backend>(&self, inputs: [FloatTensor<B>; N]) -> FloatTensor<B>;
}

/// `x` as a `U` when `T` is `U` (and `x` back otherwise): lets a function generic over the
/// backend take the fused path on the CPU backends without a trait bound on every network.
fn cast<T: 'static, U: 'static>(x: T) -> Result<U, T> {
    let mut slot = Some(x);
    let any: &mut dyn Any = &mut slot;
    if let Some(u) = any.downcast_mut::<Option<U>>().and_then(Option::take) {
        return Ok(u);
    }
    match slot {
        Some(x) => Err(x),
        None => unreachable!("the slot is emptied only by a successful cast"),
    }
}

/// `op` on `inputs`: the CPU kernels on the CPU backends, the reference elsewhere.
pub(crate) fn run<B: Backend, O: FusedOp<N>, const N: usize>(
    op: O,
    inputs: [FloatTensor<B>; N],
) -> FloatTensor<B> {
    let inputs = match cast::<_, [TrainPrimitive; N]>(inputs) {
        Ok(inputs) => return back::<B, _>(tracked(op, inputs)),
        Err(inputs) => inputs,
    };
    match cast::<_, [NdArrayTensor; N]>(inputs) {
        Ok(inputs) => back::<B, _>(like(op.forward(&inputs), &inputs[0])),
        Err(inputs) => op.reference::<B>(inputs),
    }
}

/// A kernel's output as the caller's backend's tensor (the inputs had the type, so the cast
/// cannot fail).
fn back<B: Backend, T: 'static>(out: T) -> FloatTensor<B> {
    match cast::<T, FloatTensor<B>>(out) {
        Ok(p) => p,
        Err(_) => unreachable!("the inputs were this backend's tensors"),
    }
}

/// The backward step of a fused operation: its inputs are its whole saved state.
#[derive(Debug)]
struct FusedStep<O>(O);

impl<O: FusedOp<N>, const N: usize> Backward<Cpu, N> for FusedStep<O> {
    type State = ([NdArrayTensor; N], O);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (inputs, op) = ops.state;
        let grad = grads.consume::<Cpu>(&ops.node);
        let input_grads = op.backward(&inputs, &grad);
        for ((parent, g), input) in ops.parents.into_iter().zip(input_grads).zip(&inputs) {
            if let Some(node) = parent {
                grads.register::<Cpu>(node.id, like(g, input));
            }
        }
    }
}

/// `op` on the autodiff tape: the forward kernel now, the backward kernel when the gradients
/// are asked for.
fn tracked<O: FusedOp<N>, const N: usize>(op: O, inputs: [TrainPrimitive; N]) -> TrainPrimitive {
    let nodes = inputs.each_ref().map(|t| t.node.clone());
    let primitives = inputs.map(|t| t.primitive);
    match FusedStep(op.clone())
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = like(op.forward(&primitives), &primitives[0]);
            prep.finish((primitives, op), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(like(op.forward(&primitives), &primitives[0])),
    }
}

/// A CPU tensor's shape.
fn shape(t: &NdArrayTensor) -> Vec<usize> {
    t.shape().to_vec()
}

/// A CPU tensor's values in row-major order as f32 (borrowed when they already are).
fn values(t: &NdArrayTensor) -> Cow<'_, [f32]> {
    match t {
        NdArrayTensor::F32(storage) => {
            let view = storage.view();
            match view.to_slice() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(view.iter().copied().collect()),
            }
        }
        other => {
            let cast = Cpu::float_cast(other.clone(), FloatDType::F32);
            Cow::Owned(values(&cast).into_owned())
        }
    }
}

/// A kernel's f32 result in the float type of `input` (the kernels compute in f32; burn's
/// CPU device can default to f64 when a process also uses `NdArray<f64>`, and burn's binary
/// operations refuse mixed float types).
fn like(out: NdArrayTensor, input: &NdArrayTensor) -> NdArrayTensor {
    match input {
        NdArrayTensor::F64(_) => Cpu::float_cast(out, FloatDType::F64),
        _ => out,
    }
}

/// A CPU tensor of `data` in `shape`.
fn cpu_tensor(data: Vec<f32>, shape: &[usize]) -> NdArrayTensor {
    NdArrayTensor::from_data(TensorData::new(data, shape.to_vec()))
}

/// Whether element `index` (a flat row-major index) survives dropout with probability `p`
/// under `seed`: a SplitMix64 hash of seed and index, so any element's draw is known without
/// drawing the others (backward passes redraw the mask, and every backend draws the same one).
pub(crate) fn dropout_keeps(seed: u64, index: u64, p: f64) -> bool {
    let mut h = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    // the top 53 bits as a uniform number in [0, 1)
    ((h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) >= p
}

/// The factor a kept element is multiplied by (inverted dropout).
fn keep_scale(p: f64) -> f32 {
    (1.0 / (1.0 - p)) as f32
}

/// The dropout factors (0 or [`keep_scale`]) of a `shape` tensor, as a tensor of `like`'s
/// device and float type (the references' mask).
fn mask_tensor<B: Backend>(
    seed: u64,
    p: f64,
    shape: &[usize],
    like: &FloatTensor<B>,
) -> FloatTensor<B> {
    use rayon::prelude::*;
    let scale = keep_scale(p);
    let n: usize = shape.iter().product();
    let mask: Vec<f32> = (0..n as u64)
        .into_par_iter()
        .map(|i| {
            if dropout_keeps(seed, i, p) {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = B::float_from_data(
        TensorData::new(mask, shape.to_vec()),
        &B::float_device(like),
    );
    B::float_cast(mask, like.dtype().into())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! The shared check: a fused operation against its reference, values and gradients.
    use burn::tensor::ops::FloatTensorOps;
    use burn::tensor::{Tensor, TensorData, TensorPrimitive};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::FusedOp;
    use crate::runtime::CpuTrainBackend;

    type T = CpuTrainBackend;

    /// `n` uniform values in [−2, 2).
    pub(crate) fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect()
    }

    fn flat(x: burn::tensor::ops::FloatTensor<T>) -> Tensor<T, 1> {
        let n = burn::tensor::TensorMetadata::shape(&x).num_elements();
        Tensor::<T, 1>::from_primitive(TensorPrimitive::Float(T::float_reshape(x, [n].into())))
    }

    /// The output and every input's gradient of `Σ op(inputs) ⊙ w` (random inputs and `w`)
    /// through `fused` or the reference.
    fn values_and_gradients<O: FusedOp<N>, const N: usize>(
        op: &O,
        shapes: [&[usize]; N],
        fused: bool,
    ) -> Vec<Vec<f32>> {
        let inputs: [Tensor<T, 1>; N] = std::array::from_fn(|i| {
            let n = shapes[i].iter().product();
            Tensor::<T, 1>::from_data(
                TensorData::new(random(n, i as u64 + 1), [n]),
                &Default::default(),
            )
            .require_grad()
        });
        let primitives: [_; N] = std::array::from_fn(|i| {
            T::float_reshape(
                inputs[i].clone().into_primitive().tensor(),
                shapes[i].into(),
            )
        });
        let out = if fused {
            super::run::<T, O, N>(op.clone(), primitives)
        } else {
            op.reference::<T>(primitives)
        };
        let out = flat(out);
        let n = out.dims()[0];
        let w = Tensor::<T, 1>::from_data(TensorData::new(random(n, 99), [n]), &Default::default());
        let grads = out.clone().mul(w).sum().backward();
        let mut all = vec![out.into_data().convert::<f32>().to_vec().expect("f32")];
        for x in &inputs {
            let g = x.grad(&grads).expect("a gradient");
            all.push(g.into_data().convert::<f32>().to_vec().expect("f32"));
        }
        all
    }

    /// Asserts that the fused kernels and the reference agree within `tolerance` (values and
    /// gradients), and that the values are finite.
    pub(crate) fn assert_matches_reference<O: FusedOp<N>, const N: usize>(
        op: O,
        shapes: [&[usize]; N],
        tolerance: f32,
    ) {
        let fused = values_and_gradients(&op, shapes, true);
        let reference = values_and_gradients(&op, shapes, false);
        for (i, (a, b)) in fused.iter().zip(&reference).enumerate() {
            let what = if i == 0 {
                "the output".to_string()
            } else {
                format!("input {}'s gradient", i - 1)
            };
            assert!(
                a.iter().all(|x| x.is_finite()),
                "{what} of {op:?} is not finite"
            );
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(d <= tolerance, "{what} of {op:?} differs by {d}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_drops_the_asked_share_and_depends_on_the_seed() {
        let n = 200_000u64;
        let dropped = (0..n).filter(|&i| !dropout_keeps(7, i, 0.1)).count() as f64 / n as f64;
        assert!((dropped - 0.1).abs() < 0.003, "dropped {dropped}");
        let differ = (0..1000u64)
            .filter(|&i| dropout_keeps(7, i, 0.5) != dropout_keeps(8, i, 0.5))
            .count();
        assert!(differ > 400, "{differ} of 1000 draws differ between seeds");
        assert!((0..1000).all(|i| dropout_keeps(7, i, 0.0)));
    }

    #[test]
    fn f64_inputs_give_f64_outputs() {
        // burn's CPU device defaults to f64 once a process has used NdArray<f64> (as the
        // distributions tests do): the kernels' f32 results must follow their inputs' type
        let x = Cpu::float_cast(cpu_tensor(vec![0.5, -1.0, 2.0], &[1, 3]), FloatDType::F64);
        let out = run::<Cpu, _, 1>(gelu::Gelu, [x]);
        assert_eq!(out.dtype(), burn::tensor::DType::F64);
        let w = Cpu::float_cast(cpu_tensor(vec![1.0; 3], &[3]), FloatDType::F64);
        let b = Cpu::float_cast(cpu_tensor(vec![0.0; 3], &[3]), FloatDType::F64);
        let out = run::<Cpu, _, 3>(layer_norm::LayerNorm::new(1e-5), [out, w, b]);
        assert_eq!(out.dtype(), burn::tensor::DType::F64);
    }

    #[test]
    fn the_cpu_backends_take_the_fused_path() {
        use crate::runtime::{CpuBackend, CpuTrainBackend};
        let t =
            |n| Cpu::float_from_data(TensorData::new(vec![0.0f32; n], [n]), &Default::default());
        assert!(cast::<FloatTensor<CpuBackend>, NdArrayTensor>(t(3)).is_ok());
        let tracked = FloatTensor::<CpuTrainBackend>::from(Autodiff::<Cpu>::float_from_data(
            TensorData::new(vec![0.0f32; 3], [3]),
            &Default::default(),
        ));
        assert!(cast::<_, TrainPrimitive>(tracked).is_ok());
        assert!(cast::<NdArrayTensor, TrainPrimitive>(t(3)).is_err());
    }
}
