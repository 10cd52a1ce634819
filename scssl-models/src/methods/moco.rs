//! MoCo v2 as lightly builds it: NT-Xent of the query against the momentum key and a memory
//! bank of past keys (methods.md §2.4).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::two_view::{HeadSpecs, StepParts, TwoViewMethod};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{BlockSpec as S, Pass};
use crate::losses;

/// MoCo: NT-Xent against a memory bank of momentum keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct MoCo;

impl TwoViewMethod for MoCo {
    const NAME: &'static str = "moco";
    const SUMMARY: &'static str = "MoCo: NT-Xent against a memory bank of momentum keys";
    const DEFAULT_FACTOR: usize = 1;
    const MOMENTUM_TARGET: bool = true;
    const MEMORY_BANK: bool = true;

    fn heads(h: usize, f: usize) -> HeadSpecs {
        (
            vec![
                S {
                    relu: true,
                    ..S::linear(h, h)
                },
                S::linear(h, h / f),
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
        let (q, _) = parts.online(x0, pass[0])?;
        let k = parts.target(x1, pass[3])?;
        let bank = parts.bank()?;
        let loss = losses::nt_xent_bank(q, k.clone(), bank.rows.clone(), config.temperature);
        bank.enqueue(losses::l2_normalize(k));
        Ok(loss)
    }
}
