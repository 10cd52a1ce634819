//! Inverted dropout with a counter-hash mask ([`super::dropout_keeps`]): one output buffer,
//! no stored mask (the backward pass redraws it from the seed).

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use rayon::prelude::*;

use super::{FusedOp, cpu_tensor, dropout_keeps, keep_scale, mask_tensor, shape, values};
use crate::layers::Pass;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Dropout with probability `p` under `seed`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dropout {
    p: f64,
    seed: u64,
}

/// Inverted dropout of `x` with probability `p` in a training pass (`x` itself otherwise);
/// the mask is drawn from `pass.dropout_seed`.
pub(crate) fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    p: f64,
    pass: Pass,
) -> Tensor<B, D> {
    if !pass.train || p <= 0.0 {
        return x;
    }
    let op = Dropout {
        p,
        seed: pass.dropout_seed,
    };
    let out = super::run::<B, _, 1>(op, [x.into_primitive().tensor()]);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

impl Dropout {
    /// `x ⊙ mask` on the CPU.
    fn apply(&self, x: &NdArrayTensor) -> NdArrayTensor {
        let xs = values(x);
        let scale = keep_scale(self.p);
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (o, x))| {
                let first = (c * CHUNK) as u64;
                for (i, (o, &x)) in o.iter_mut().zip(x).enumerate() {
                    let keep = dropout_keeps(self.seed, first + i as u64, self.p);
                    *o = if keep { x * scale } else { 0.0 };
                }
            });
        cpu_tensor(out, &shape(x))
    }
}

impl FusedOp<1> for Dropout {
    fn forward(&self, [x]: &[NdArrayTensor; 1]) -> NdArrayTensor {
        self.apply(x)
    }

    fn backward(&self, _: &[NdArrayTensor; 1], grad: &NdArrayTensor) -> [NdArrayTensor; 1] {
        [self.apply(grad)]
    }

    fn reference<B: Backend>(&self, [x]: [FloatTensor<B>; 1]) -> FloatTensor<B> {
        let mask = mask_tensor::<B>(self.seed, self.p, &shape_of::<B>(&x), &x);
        B::float_mul(x, mask)
    }
}

fn shape_of<B: Backend>(x: &FloatTensor<B>) -> Vec<usize> {
    burn::tensor::TensorMetadata::shape(x).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::test_support::assert_matches_reference;

    #[test]
    fn fused_dropout_equals_the_reference() {
        assert_matches_reference(Dropout { p: 0.3, seed: 5 }, [&[4, 33, 17]], 0.0);
    }

    #[test]
    fn evaluation_passes_do_not_drop() {
        let x = Tensor::<super::super::Cpu, 1>::from_floats([1.0, 2.0, 3.0], &Default::default());
        let y = dropout(x.clone(), 0.5, Pass::EVAL);
        assert_eq!(
            y.into_data().convert::<f32>().to_vec::<f32>().expect("f32"),
            vec![1.0, 2.0, 3.0]
        );
    }
}
