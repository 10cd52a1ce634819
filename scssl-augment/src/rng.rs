//! Randomness keyed by (seed, epoch, cell, view, step, purpose): every random draw of a view
//! comes from its own xoshiro256++ stream, so a cell's views are the same whatever the batch
//! composition, the order of cells or the thread count.

use rand::SeedableRng;

/// The random number generator handed to augmentations: xoshiro256++ (fast, portable and
/// stable across platforms and versions of this crate), one independent stream per key.
pub type ViewRng = rand_xoshiro::Xoshiro256PlusPlus;

/// The identity of one view of one cell in one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The pipeline's seed.
    pub seed: u64,
    /// Training epoch.
    pub epoch: u64,
    /// Global index of the cell in the training matrix.
    pub cell: u64,
    /// 0 or 1.
    pub view: u8,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Purpose of a stream (keeps the coin flip independent of the augmentation's own draws).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Coin = 1,
    Apply = 2,
}

/// The RNG of `step` for `key` and `purpose`. With `shared_view`, both views get the same stream.
pub(crate) fn stream(key: ViewKey, step: usize, purpose: Purpose, shared_view: bool) -> ViewRng {
    let view = if shared_view { 0xFF } else { key.view as u64 };
    let h = mix(mix(mix(mix(key.seed ^ 0xA5A5_5A5A) ^ key.epoch) ^ key.cell)
        ^ (view << 8 | step as u64) << 8
        | purpose as u64);
    ViewRng::seed_from_u64(h)
}
