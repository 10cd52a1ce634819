//! VICReg (Bardes et al. 2022): variance, invariance and covariance terms on two views'
//! projections (methods.md §2.4).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// VICReg: variance-invariance-covariance regularisation.
#[derive(Debug, Clone, Copy, Default)]
pub struct VicReg;

impl TwoViewMethod for VicReg {
    const NAME: &'static str = "vicreg";
    const SUMMARY: &'static str = "VICReg: variance-invariance-covariance regularisation";
    const DEFAULT_FACTOR: usize = 4;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        (vec![S::hidden(h, h), S::linear(h, f * h)], None)
    }

    fn loss<B: AutodiffBackend>(
        config: &ModelConfig,
        parts: &mut StepParts<'_, B>,
        x0: Vec<Tensor<B, 2>>,
        x1: Vec<Tensor<B, 2>>,
        pass: [Pass; 4],
    ) -> Result<Tensor<B, 1>> {
        let (z0, _) = parts.online(x0, pass[0])?;
        let (z1, _) = parts.online(x1, pass[1])?;
        let w = config.vicreg();
        Ok(losses::vicreg(
            z0,
            z1,
            w.invariance,
            w.variance,
            w.covariance,
        ))
    }
}
