//! SimCLR (Chen et al. 2020): NT-Xent between the projections of two views (methods.md §2.4).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// SimCLR: NT-Xent between two views.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClr;

impl TwoViewMethod for SimClr {
    const NAME: &'static str = "simclr";
    const SUMMARY: &'static str = "SimCLR: NT-Xent between two views";
    const DEFAULT_FACTOR: usize = 1;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        (vec![S::hidden(h, h), S::linear_bn(h, h / f, true)], None)
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
        Ok(losses::nt_xent(z0, z1, config.temperature))
    }
}
