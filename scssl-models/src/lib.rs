//! # scssl-models
//!
//! Encoders trained by self-supervised objectives, on CPU and CUDA.
//!
//! **Contract** (from the project architecture; implementation tracked in the issue queue):
//! - framework: burn, one exact version pinned, CPU backend by default and a `cuda` feature that
//!   builds offline without a GPU (CUDA loaded at run time);
//! - the shared encoder (Linear(G,128) → BN → ReLU → Linear(128,h) → BN → Dropout), projection
//!   and prediction heads, losses (NT-Xent with and without memory bank, negative cosine,
//!   VICReg, Barlow Twins, CLIP), momentum encoders and the NNCLR memory bank;
//! - methods SimCLR, MoCo, SimSiam, NNCLR, BYOL, VICReg, BarlowTwins and their multimodal variants;
//! - a `Trainer` that takes batches of two views from the caller (closure or iterator), so this
//!   crate does not depend on `scssl-augment`; Adam/AdamW, LR schedules, seeded initialisation,
//!   progress callbacks and loud failure (a failed run is never evaluated);
//! - `embed()` in eval mode; checkpoints that reload bit-identically.
//!
//! This release ships only the contract: no model is implemented yet.
