//! Barlow Twins (Zbontar et al. 2021): the cross-correlation of two views' projections pulled
//! towards the identity (methods.md §2.4).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// Barlow Twins: cross-correlation towards the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct BarlowTwins;

impl TwoViewMethod for BarlowTwins {
    const NAME: &'static str = "barlowtwins";
    const SUMMARY: &'static str = "Barlow Twins: cross-correlation towards the identity";
    const DEFAULT_FACTOR: usize = 4;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        (
            vec![
                S::hidden(h, f * h),
                S::hidden(f * h, f * h),
                S::linear(f * h, f * h),
            ],
            None,
        )
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
        Ok(losses::barlow_twins(z0, z1, config.barlow_lambda))
    }
}
