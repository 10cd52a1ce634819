//! # scssl-models
//!
//! Encoders trained by self-supervised objectives on single-cell data, on CPU (default) and
//! NVIDIA GPUs (feature `cuda`), built on [burn](https://burn.dev) 0.21.0.
//!
//! - [`layers`]: the shared encoder (Linear(G,128) → BN → ReLU → Linear(128,h) → BN → Dropout),
//!   seeded PyTorch-default initialisation, BatchNorm with PyTorch's running statistics;
//! - [`model`]: projection/prediction heads per method (methods.md §2.2), multimodal branches
//!   and integration (`add`, `mean`, `concat`, `clip`), eval-mode embedding;
//! - [`losses`]: NT-Xent (with and without memory bank), negative cosine, VICReg, Barlow Twins,
//!   CLIP;
//! - [`train()`]: the trainer (views come from the caller, so this crate does not depend on
//!   `scssl-augment`), Adam/AdamW, LR schedules, momentum targets, memory banks, progress
//!   events, loud failure;
//! - [`runtime`]: device choice, backend-neutral [`TrainedModel`] and checkpoints that reload
//!   bit-identically.
//!
//! ```
//! use ndarray::Array2;
//! use scssl_models::{ComputeDevice, EmbeddingOutput, Method, ModelConfig, TrainConfig, TwoViews, fit};
//!
//! // 64 cells × 20 features; "augmentation" here is a fixed jitter of the data.
//! let x = Array2::from_shape_fn((64, 20), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0);
//! let model = ModelConfig { hidden_dim: 8, ..ModelConfig::new(Method::SimClr, 20) };
//! let training = TrainConfig { epochs: 2, batch_size: 16, ..TrainConfig::default() };
//! let trained = fit(ComputeDevice::Cpu, &model, &training, 64, |req| {
//!     let rows = x.select(ndarray::Axis(0), req.cells);
//!     Ok::<_, String>(TwoViews { first: vec![rows.clone()], second: vec![rows * 0.9] })
//! }, |_| {})?;
//! let emb = trained.embed(&[x.view()], EmbeddingOutput::Backbone)?;
//! assert_eq!(emb.joint.dim(), (64, 8));
//! # Ok::<(), scssl_models::ModelError>(())
//! ```

pub mod config;
pub mod error;
pub mod layers;
pub mod losses;
pub mod model;
pub mod runtime;
pub mod train;

pub use config::{
    Integration, LrSchedule, Method, ModelConfig, OptimizerKind, TrainConfig, VicRegWeights,
    momentum_at,
};
pub use error::{ModelError, Result};
pub use layers::NamedTensor;
pub use model::{EmbeddingOutput, Embeddings, SslModel, SslNetwork};
#[cfg(feature = "cuda")]
pub use runtime::CudaBackend;
pub use runtime::{ComputeDevice, CpuBackend, CpuTrainBackend, TrainedModel, fit};
pub use train::{EpochRecord, TrainEvent, TrainHistory, TwoViews, ViewRequest, train};
