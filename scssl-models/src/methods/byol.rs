//! BYOL (Grill et al. 2020): symmetric negative cosine between the online prediction and the
//! momentum target's projection (methods.md §2.4; the target is updated, unlike the
//! reference: DIV-9).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod, present};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// BYOL: symmetric negative cosine against a momentum (EMA) target network.
#[derive(Debug, Clone, Copy, Default)]
pub struct Byol;

impl TwoViewMethod for Byol {
    const NAME: &'static str = "byol";
    const SUMMARY: &'static str =
        "BYOL: symmetric negative cosine against a momentum (EMA) target network";
    const DEFAULT_FACTOR: usize = 4;
    const MOMENTUM_TARGET: bool = true;
    const EMBED_PREDICTION: bool = true;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        (
            vec![S::hidden(h, f * h), S::linear(f * h, h)],
            Some(vec![S::hidden(h, f * h), S::linear(f * h, h)]),
        )
    }

    fn loss<B: AutodiffBackend>(
        _config: &ModelConfig,
        parts: &mut StepParts<'_, B>,
        x0: Vec<Tensor<B, 2>>,
        x1: Vec<Tensor<B, 2>>,
        pass: [Pass; 4],
    ) -> Result<Tensor<B, 1>> {
        let (_, p0) = parts.online(x0.clone(), pass[0])?;
        let (_, p1) = parts.online(x1.clone(), pass[1])?;
        let z0 = parts.target(x0, pass[2])?;
        let z1 = parts.target(x1, pass[3])?;
        let pred = |p| present(p, "the predictor output");
        Ok(losses::symmetric_negative_cosine(
            pred(p0)?,
            z0,
            pred(p1)?,
            z1,
        ))
    }
}
