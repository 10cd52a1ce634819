//! SimSiam (Chen & He 2021): negative cosine between one view's prediction and the other's
//! stopped projection, symmetrised (methods.md §2.4).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod, present};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// SimSiam: negative cosine with a predictor and stop-gradient.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimSiam;

impl TwoViewMethod for SimSiam {
    const NAME: &'static str = "simsiam";
    const SUMMARY: &'static str = "SimSiam: negative cosine with a predictor and stop-gradient";
    const DEFAULT_FACTOR: usize = 2;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        {
            let out = h / f;
            let mid = h / (2 * f);
            (
                vec![
                    S::hidden(h, h),
                    S::hidden(h, h),
                    S::linear_bn(h, out, false),
                ],
                Some(vec![S::hidden(out, mid), S::linear(mid, out)]),
            )
        }
    }

    fn loss<B: AutodiffBackend>(
        _config: &ModelConfig,
        parts: &mut StepParts<'_, B>,
        x0: Vec<Tensor<B, 2>>,
        x1: Vec<Tensor<B, 2>>,
        pass: [Pass; 4],
    ) -> Result<Tensor<B, 1>> {
        let (z0, p0) = parts.online(x0, pass[0])?;
        let (z1, p1) = parts.online(x1, pass[1])?;
        let pred = |p| present(p, "the predictor output");
        Ok(losses::negative_cosine(z0.detach(), pred(p1)?)
            .add(losses::negative_cosine(z1.detach(), pred(p0)?))
            .mul_scalar(0.5))
    }
}
