//! # scssl-models
//!
//! Encoders trained by self-supervised objectives on single-cell data, on CPU (default) and
//! NVIDIA GPUs (feature `cuda`), built on [burn](https://burn.dev) 0.21.0.
//!
//! - [`config`]: the one declaration of a model's settings ([`ModelConfig`], in the reference's
//!   names) and of a training run's ([`TrainConfig`], device and seed included): the `model:`
//!   and `training:` sections of a scssl-bench config file and of a saved model's `model.json`;
//! - [`layers`]: the shared encoder (Linear(G,128) → BN → ReLU → Linear(128,h) → BN → Dropout),
//!   seeded PyTorch-default initialisation, BatchNorm with PyTorch's running statistics;
//! - [`methods`]: the method interface ([`Method`], [`Objective`], [`BatchNeeds`]) and the
//!   registry: one file per method (SimCLR, MoCo, SimSiam, NNCLR, BYOL, VICReg, Barlow Twins
//!   on the two-view family of [`methods::two_view`], optionally with domain-specific
//!   BatchNorm; PCA; scVI and totalVI as scvi-tools 1.1 builds them; the masked autoencoder);
//! - [`features`]: model inputs from AnnData (the benchmark's preprocessing, the protein block,
//!   raw counts), and a trained model's features rebuilt for new data ([`features::FeatureSpec`]);
//! - [`model`]: embedding outputs and the input checks all methods share;
//! - [`losses`]: NT-Xent (with and without memory bank), negative cosine, VICReg, Barlow Twins,
//!   CLIP;
//! - [`distributions`]: scvi-tools' NB / ZINB / Poisson / NB-mixture log-likelihoods, the
//!   Gaussian KLs and a differentiable `lgamma`;
//! - [`train()`]: the trainer, generic over an [`Objective`] (mini-batches of what the method
//!   needs come from the caller, so this crate does not depend on `scssl-augment`), the
//!   objective's [`TrainPlan`] (with an optional [`Validation`] rule: early stopping, LR on
//!   plateau), Adam/AdamW, LR schedules, global gradient-norm clipping, progress events, loud
//!   failure;
//! - [`runtime`]: device choice, backend-neutral [`TrainedModel`] and checkpoints that reload
//!   bit-identically.
//!
//! ```
//! use ndarray::Array2;
//! use scssl_models::{EmbeddingOutput, MethodRef, MiniBatch, ModelConfig, TrainConfig, fit};
//!
//! // 64 cells × 20 features; "augmentation" here is a fixed jitter of the data.
//! let x = Array2::from_shape_fn((64, 20), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0);
//! let model = ModelConfig { hidden_dim: 8, ..ModelConfig::new(MethodRef::parse("simclr")?, 20) };
//! let training = TrainConfig { epochs: 2, batch_size: 16, ..TrainConfig::default() };
//! let trained = fit(&model, &training, 64, |req| {
//!     let rows = x.select(ndarray::Axis(0), req.cells);
//!     Ok::<_, String>(MiniBatch::two_views(vec![rows.clone()], vec![rows * 0.9]))
//! }, |_| {})?;
//! let emb = trained.embed(&[x.view()], EmbeddingOutput::Backbone)?;
//! assert_eq!(emb.joint.dim(), (64, 8));
//! # Ok::<(), scssl_models::ModelError>(())
//! ```

pub mod config;
pub mod distributions;
pub mod error;
pub mod features;
mod fused;
pub mod gmm;
pub mod layers;
pub mod losses;
pub mod methods;
pub mod model;
pub mod runtime;
pub mod train;

pub use config::{
    Dispersion, DsbnSecondNorm, GeneLikelihood, Integration, LrSchedule, MaeOutput, MaeParams,
    Masking, ModelConfig, OptimizerKind, ScviParams, TotalviParams, TrainConfig, VicRegWeights,
    momentum_at,
};
pub use error::{ModelError, Result};
pub use layers::NamedTensor;
pub use methods::concerto::ConcertoParams;
pub use methods::scbutterfly::ScbutterflyParams;
pub use methods::scclip::ScclipParams;
pub use methods::sctel::SctelParams;
pub use methods::two_view::SslNetwork;
pub use methods::{
    BatchNeeds, BatchRequest, EmbedInputs, Fitted, LrPlateau, Method, MethodRef, MiniBatch,
    Objective, ObjectiveFamily, StepContext, StepInputs, TrainPlan, Validation,
};
pub use model::{EmbeddingOutput, Embeddings, EmbeddingsBuilder};
#[cfg(feature = "cuda")]
pub use runtime::CudaBackend;
pub use runtime::{ComputeDevice, CpuBackend, CpuTrainBackend, TrainedModel, fit};
pub use train::{EpochRecord, TrainEvent, TrainHistory, train};
