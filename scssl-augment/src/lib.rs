//! # scssl-augment
//!
//! Views of cells for self-supervised learning: scSSL-Bench's augmentations with the semantics
//! the benchmark meant, reusable in any training loop.
//!
//! - [`Mask`], [`GaussianNoise`], [`InnerSwap`], [`CrossOver`], [`NeighbourMix`] (CLAIRE's MNN
//!   views or BBKNN neighbours; interpolation with λ ~ U[α, 1] or per-gene exchange) and
//!   [`GeneProgramMask`], all implementing [`Augmentation`];
//! - a [`Pipeline`] of steps, each applied to each of two views with its own probability,
//!   configured by validated serde structs ([`PipelineConfig`]) or presets (`clear`,
//!   `masking_only`, one per augmentation);
//! - randomness keyed by (seed, epoch, cell, view): a cell's views do not depend on the batch it
//!   is in, the order of cells or the thread count. Inputs are never mutated and the two views
//!   never share memory;
//! - with feature `neighbors`, [`NeighbourGraphs`] builds within-batch kNN, MNN and BBKNN
//!   lists with `scssl-data`; without it, pass your own lists in a [`Context`].
//!
//! ```
//! use ndarray::Array2;
//! use scssl_augment::{Context, Pipeline};
//!
//! // a log-normalised training matrix: 100 cells × 50 genes
//! let data = Array2::from_shape_fn((100, 50), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
//! let pipeline = Pipeline::preset("clear", 42)?;
//! let ctx = Context::new(data.view());
//! for epoch in 0..2 {
//!     for batch in (0..100usize).collect::<Vec<_>>().chunks(32) {
//!         let (view1, view2) = pipeline.views(batch, epoch, &ctx)?;
//!         assert_eq!(view1.dim(), (batch.len(), 50));
//!         // … feed (view1, view2) to the SSL loss …
//! #       let _ = view2;
//!     }
//! }
//! # Ok::<(), scssl_augment::Error>(())
//! ```

mod augment;
mod error;
#[cfg(feature = "neighbors")]
mod neighbors;
mod pipeline;
mod rng;
mod rows;

pub use augment::{
    Augmentation, Context, CrossOver, CrossOverMany, GaussianNoise, GeneProgramMask, InnerSwap,
    Mask, MixOp, NeighbourMix, NeighbourSource,
};
pub use error::{Error, Result};
#[cfg(feature = "neighbors")]
pub use neighbors::NeighbourGraphs;
pub use pipeline::{AugmentConfig, Coin, PRESETS, Pipeline, PipelineConfig, StepConfig};
pub use rng::{ViewKey, ViewRng};
pub use rows::{CellRows, CsrRows};
