//! # scssl-augment
//!
//! Views of cells for self-supervised learning (scSSL-Bench's augmentations, with the
//! semantics the benchmark meant).
//!
//! **Contract** (from the project architecture; implementation tracked in the issue queue):
//! - one trait for an augmentation acting on a cell (or a batch of cells) given the cell's index
//!   and an RNG; implementations `Mask`, `GaussianNoise`, `InnerSwap`, `CrossOver`,
//!   `NeighbourMix` (CLAIRE-style MNN and BBKNN neighbours; interpolation with λ ~ U[α, 1] and
//!   per-gene exchange) and `GeneProgramMask`;
//! - a `Pipeline` of steps, each applied to each of the two views with its own probability,
//!   configured by validated serde structs;
//! - randomness keyed by (seed, epoch, cell, view), so views do not depend on batch composition
//!   or thread count; inputs are never mutated;
//! - usable alone on an `ndarray` matrix; neighbour lists can come from `scssl-data`.
//!
//! This release ships only the contract: no augmentation is implemented yet.
