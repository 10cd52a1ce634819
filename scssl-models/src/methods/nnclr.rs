//! NNCLR (Dwibedi et al. 2021): NT-Xent between a view's nearest memory-bank neighbour and
//! the other view's prediction, symmetrised (methods.md §2.4).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod, present};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// NNCLR: NT-Xent between a view's nearest bank neighbour and the other view's prediction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nnclr;

impl TwoViewMethod for Nnclr {
    const NAME: &'static str = "nnclr";
    const SUMMARY: &'static str =
        "NNCLR: NT-Xent between a view's nearest bank neighbour and the other view's prediction";
    const DEFAULT_FACTOR: usize = 1;
    const MEMORY_BANK: bool = true;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        {
            let out = h / f;
            (
                vec![S::hidden(h, h), S::hidden(h, h), S::linear_bn(h, out, true)],
                Some(vec![S::hidden(out, h), S::linear(h, out)]),
            )
        }
    }

    fn loss<B: AutodiffBackend>(
        config: &ModelConfig,
        parts: &mut StepParts<'_, B>,
        x0: Vec<Tensor<B, 2>>,
        x1: Vec<Tensor<B, 2>>,
        pass: [Pass; 4],
    ) -> Result<Tensor<B, 1>> {
        let (z0, p0) = parts.online(x0, pass[0])?;
        let (z1, p1) = parts.online(x1, pass[1])?;
        let pred = |p| present(p, "the predictor output");
        let bank = parts.bank()?;
        let nn0 = bank.nearest(z0.detach());
        let nn1 = bank.nearest(z1.clone().detach());
        bank.enqueue(z1.detach());
        Ok(losses::nt_xent(nn0, pred(p1)?, config.temperature)
            .add(losses::nt_xent(nn1, pred(p0)?, config.temperature))
            .mul_scalar(0.5))
    }
}
